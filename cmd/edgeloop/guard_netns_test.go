//go:build linux

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeloop/edgeloop/bpf"
)

// requireGuardBPF skips t when the kernel guard cannot run here (not root,
// no BPF, no ip or nsenter), or fails it when EDGELOOP_REQUIRE_BPF=1 (CI).
func requireGuardBPF(t *testing.T) {
	t.Helper()
	err := bpf.Supported()
	for _, tool := range []string{"ip", "nsenter"} {
		if err == nil {
			_, err = exec.LookPath(tool)
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
		t.Fatalf("kernel guard required (EDGELOOP_REQUIRE_BPF=1): %v", err)
	}
	t.Skipf("kernel guard unavailable: %v", err)
}

func guardRandSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// guardNS is a throwaway network namespace made with `ip netns add`.
type guardNS struct{ name string }

// newNetns creates a network namespace with lo up, deleted in t.Cleanup.
func newGuardNS(t *testing.T) *guardNS {
	t.Helper()
	ns := &guardNS{name: "elg-" + guardRandSuffix(t)}
	guardIPRun(t, "netns", "add", ns.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

func (ns *guardNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	return guardIPRun(t, append([]string{"-n", ns.name}, args...)...)
}

func guardIPRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// command is an exec.Cmd running the edgeloop binary inside ns. nsenter
// switches only the network namespace, so the binary sees the host's
// cgroup2 and bpffs mounts (`ip netns exec` would remount /sys).
func (ns *guardNS) command(args ...string) *exec.Cmd {
	full := append([]string{"--net=" + filepath.Join("/var/run/netns", ns.name), binPath}, args...)
	return exec.Command("nsenter", full...)
}

// do runs fn on an OS thread switched into ns; sockets fn creates belong
// to ns for their whole life, whichever thread uses them later.
func (ns *guardNS) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns.name))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with this goroutine.
		return fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// cliIn runs an edgeloop CLI command inside ns and returns its exit code
// and output.
func guardCLIIn(t *testing.T, ns *guardNS, args ...string) (int, string, string) {
	t.Helper()
	cmd := ns.command(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("edgeloop %v did not finish", args)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// dialFrom connects from src inside ns to addr with a short timeout: well
// under the 1 s initial SYN retransmission timeout (RFC 6298), so a dropped
// SYN shows as a timeout.
func guardDialFrom(ns *guardNS, src, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	return c, err
}

// httpGet sends one GET / on c and returns the status code.
func guardGet(c net.Conn, timeout time.Duration) (int, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: edgeloop\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
