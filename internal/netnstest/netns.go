//go:build linux

// Package netnstest makes throwaway network namespaces and veth pairs for
// tests that need real packets (the kernel guard's XDP and sock_ops tests).
// Everything it creates is removed in t.Cleanup. It needs root and the `ip`
// command from iproute2.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace made with `ip netns add`.
type NS struct {
	Name string
}

// New creates a namespace named prefix plus a random suffix, with lo up,
// deleted in t.Cleanup.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	ns := &NS{Name: prefix + RandSuffix(t)}
	IP(t, "netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// Path is the namespace's file, for setns(2) or `nsenter --net=`.
func (ns *NS) Path() string { return filepath.Join("/var/run/netns", ns.Name) }

// IP runs `ip -n <ns> args...` and returns its output.
func (ns *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	return IP(t, append([]string{"-n", ns.Name}, args...)...)
}

// Do runs fn on an OS thread switched into ns. Sockets fn creates belong to
// ns for their whole life, whichever thread uses them later.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(ns.Path())
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with this goroutine
		// rather than reuse a thread in the wrong namespace.
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// DialFrom connects from src inside ns to addr. Use a timeout well under
// the 1 s initial SYN retransmission timeout (RFC 6298), so a dropped SYN
// shows as a timeout.
func (ns *NS) DialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	return c, err
}

// Veth links a (end aName) and b (end bName) with a veth pair, both up.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	IP(t, "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}

// IP runs `ip args...` and returns its output; a failure fails t.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WantDropped checks the result of a dial from src: a SYN the guard dropped
// is never answered, so the client sees a timeout, not a refusal.
func WantDropped(t testing.TB, src string, c net.Conn, err error) {
	t.Helper()
	if err == nil {
		c.Close()
		t.Fatalf("dial from %s connected, want its SYN dropped", src)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial from %s: %v, want a timeout", src, err)
	}
}

// RandSuffix returns 6 random hex digits for names that must not collide
// between concurrent test runs.
func RandSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
