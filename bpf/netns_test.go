//go:build linux

package bpf

import (
	"os"
	"os/exec"
	"testing"

	"github.com/edgeloop/edgeloop/internal/netnstest"
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

func randomSuffix(t testing.TB) string { return netnstest.RandSuffix(t) }

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

// NetNS is a throwaway network namespace (internal/netnstest).
type NetNS = netnstest.NS

// NewNetNS creates a network namespace with lo up, deleted in t.Cleanup.
func NewNetNS(t *testing.T) *NetNS { return netnstest.New(t, "elt-") }

// NewVeth links a (end aName) and b (end bName) with a veth pair, both up.
func NewVeth(t *testing.T, a *NetNS, aName string, b *NetNS, bName string) {
	netnstest.Veth(t, a, aName, b, bName)
}
