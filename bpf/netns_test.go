//go:build linux

package bpf

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireBPF skips t when the kernel guard cannot run here, or fails it when
// EDGELOOP_REQUIRE_BPF=1 (CI).
func requireBPF(t *testing.T) {
	t.Helper()
	err := Supported()
	if err == nil {
		if _, err = exec.LookPath("ip"); err == nil {
			return
		}
	}
	if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
		t.Fatalf("kernel guard required (EDGELOOP_REQUIRE_BPF=1): %v", err)
	}
	t.Skipf("kernel guard unavailable: %v", err)
}

func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPinPath is a per-test pin directory, removed in t.Cleanup.
func testPinPath(t *testing.T) string {
	t.Helper()
	dir := "/sys/fs/bpf/edgeloop-test-" + randomSuffix(t)
	t.Cleanup(func() {
		if err := RemovePins(dir); err != nil {
			t.Errorf("remove pins: %v", err)
		}
	})
	return dir
}

// loadTestGuard loads a guard on a per-test pin path and closes it in
// t.Cleanup.
func loadTestGuard(t *testing.T, cfg Config) *Guard {
	t.Helper()
	if cfg.PinPath == "" {
		cfg.PinPath = testPinPath(t)
	}
	g, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// NetNS is a throwaway network namespace made with `ip netns add`.
type NetNS struct {
	Name string
}

// NewNetNS creates a network namespace with lo up, deleted in t.Cleanup.
func NewNetNS(t *testing.T) *NetNS {
	t.Helper()
	ns := &NetNS{Name: "elt-" + randomSuffix(t)}
	ipCmd(t, "netns", "add", ns.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n <ns> args...`.
func (ns *NetNS) IP(t *testing.T, args ...string) {
	t.Helper()
	ipCmd(t, append([]string{"-n", ns.Name}, args...)...)
}

// Do runs fn on an OS thread switched into ns. Sockets fn creates belong to
// ns for their whole life, whichever thread uses them later.
func (ns *NetNS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns.Name))
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

// NewVeth links a (end aName) and b (end bName) with a veth pair, both up.
func NewVeth(t *testing.T, a *NetNS, aName string, b *NetNS, bName string) {
	t.Helper()
	ipCmd(t, "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
