//go:build linux

package bpf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestRestartKeepsState: a clean Close detaches but keeps the pinned maps,
// and the next Load sees the runtime deny entries and counters again.
func TestRestartKeepsState(t *testing.T) {
	requireBPF(t)
	pin := testPinPath(t)
	cfg := Config{Ports: []uint16{80}, PinPath: pin}
	g, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	denied := netip.MustParsePrefix("198.51.100.0/24")
	if err := g.Deny(denied, 0); err != nil {
		t.Fatal(err)
	}
	run(t, g, pkt{src: "198.51.100.1", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedDeny: 1})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	g = loadTestGuard(t, cfg)
	list, err := g.DenyList()
	if err != nil || len(list) != 1 || list[0].Prefix != denied || !list[0].Expires.IsZero() {
		t.Errorf("DenyList after restart = %v, %v; want %s", list, err, denied)
	}
	if s, err := g.Stats(); err != nil || s.DroppedDeny != 1 {
		t.Errorf("Stats after restart = %+v, %v; want the earlier drop", s, err)
	}
	run(t, g, pkt{src: "198.51.100.1", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedDeny: 1})
}

// TestRestartResized: pinned maps that no longer fit the config are
// recreated, the compatible ones kept.
func TestRestartResized(t *testing.T) {
	requireBPF(t)
	pin := testPinPath(t)
	g, err := Load(Config{Ports: []uint16{80}, PinPath: pin, MaxSources: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Deny(netip.MustParsePrefix("2001:db8::/48"), 0); err != nil {
		t.Fatal(err)
	}
	g.Close()

	g = loadTestGuard(t, Config{Ports: []uint16{80}, PinPath: pin, MaxSources: 2048})
	if n := g.objs.Sources.MaxEntries(); n != 2048 {
		t.Errorf("sources map has %d entries, want the new 2048", n)
	}
	if list, err := g.DenyList(); err != nil || len(list) != 1 {
		t.Errorf("deny list after resize of other maps = %v, %v; want kept", list, err)
	}
}

// TestCrashLeavesAttachable: a process that dies leaves its pinned XDP link
// attached (the guard keeps guarding); the next start replaces it.
func TestCrashLeavesAttachable(t *testing.T) {
	requireBPF(t)
	ns := NewNetNS(t)
	pin := testPinPath(t)
	cfg := Config{Ports: []uint16{80}, PinPath: pin}

	g1, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mode Mode
	if err := ns.Do(func() (err error) { mode, err = g1.AttachXDP("lo", ModeAuto); return err }); err != nil {
		t.Fatalf("AttachXDP(lo, auto): %v", err)
	}
	if mode != ModeGeneric {
		t.Errorf("lo attached in %q, want generic (lo has no native XDP)", mode)
	}
	// Crash: descriptors go, pins stay.
	for _, l := range g1.links {
		l.Close()
	}
	g1.objs.Close()

	linkPin := filepath.Join(pin, "link_xdp_lo_generic")
	if _, err := os.Stat(linkPin); err != nil {
		t.Fatalf("pinned link after crash: %v", err)
	}
	g2 := loadTestGuard(t, cfg)
	if err := ns.Do(func() (err error) { mode, err = g2.AttachXDP("lo", ModeGeneric); return err }); err != nil {
		t.Fatalf("AttachXDP after crash: %v", err)
	}
	if id := pinnedProgram(t, linkPin); !g2.ownsProgram(id) {
		t.Errorf("attached program %d, want the new guard's", id)
	}

	if err := g2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(linkPin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link pin after clean Close: %v, want gone", err)
	}
	if _, err := g2.AttachXDP("lo", ModeGeneric); !errors.Is(err, ErrClosed) {
		t.Errorf("AttachXDP after Close: %v, want ErrClosed", err)
	}
}

// TestHandOver: during a reload the new Guard takes the attached links
// over while the old one is still open (no unguarded gap), and closing the
// old one leaves them attached.
func TestHandOver(t *testing.T) {
	requireBPF(t)
	ns := NewNetNS(t)
	pin := testPinPath(t)
	cfg := Config{Ports: []uint16{80}, PinPath: pin}
	cg, err := JoinCgroup("edgeloop-test-" + randomSuffix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { LeaveCgroup(cg) })

	attach := func(g *Guard) {
		t.Helper()
		var mode Mode
		if err := ns.Do(func() (err error) { mode, err = g.AttachXDP("lo", ModeAuto); return err }); err != nil || mode != ModeGeneric {
			t.Fatalf("AttachXDP = %q, %v", mode, err)
		}
		if err := g.AttachSockOps(cg); err != nil {
			t.Fatalf("AttachSockOps: %v", err)
		}
	}
	old, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	attach(old)
	attach(old) // again: the same links, updated in place
	g := loadTestGuard(t, cfg)
	attach(g)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	pins, err := filepath.Glob(filepath.Join(pin, "link_*"))
	if err != nil || len(pins) != 2 {
		t.Fatalf("link pins after the old guard closed: %v, %v; want 2", pins, err)
	}
	for _, p := range pins {
		if id := pinnedProgram(t, p); !g.ownsProgram(id) {
			t.Errorf("%s runs program %d, want the new guard's", p, id)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if pins, _ := filepath.Glob(filepath.Join(pin, "link_*")); len(pins) != 0 {
		t.Errorf("link pins after the last Close: %v", pins)
	}
	// Explicit mode after a clean Close: a fresh attach.
	g3 := loadTestGuard(t, cfg)
	if err := ns.Do(func() error { _, err := g3.AttachXDP("lo", ModeGeneric); return err }); err != nil {
		t.Fatalf("AttachXDP after Close: %v", err)
	}
}

// pinnedProgram is the id of the program the link pinned at path runs.
func pinnedProgram(t *testing.T, path string) ebpf.ProgramID {
	t.Helper()
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Program
}

func TestAttachBadInput(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80}})
	for _, m := range []Mode{ModeOff, ModeUserspace, "bogus"} {
		if _, err := g.AttachXDP("lo", m); !errors.Is(err, ErrMode) {
			t.Errorf("AttachXDP(lo, %q) = %v, want ErrMode", m, err)
		}
	}
	if _, err := g.AttachXDP("no-such-if0", ModeAuto); err == nil {
		t.Error("AttachXDP on a missing interface succeeded")
	}
	if err := g.AttachSockOps("/sys/fs/cgroup/unified/no-such-cgroup"); err == nil {
		t.Error("AttachSockOps on a missing cgroup succeeded")
	}
	if _, err := Load(Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("Load(no ports) = %v, want ErrConfig", err)
	}
}

// TestRestartDropsFormerConfigLists: an allow or deny entry that the
// previous config listed and the new one does not is gone after the next
// Load, while entries added at runtime and entries both configs list stay.
func TestRestartDropsFormerConfigLists(t *testing.T) {
	requireBPF(t)
	pin := testPinPath(t)
	a1, a2 := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")
	d1, d2 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.7/32")
	byHand := netip.MustParsePrefix("203.0.113.128/25")
	g, err := Load(Config{Ports: []uint16{80}, PinPath: pin, Allow: []netip.Prefix{a1, a2}, Deny: []netip.Prefix{d1, d2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Deny(byHand, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// The next config keeps a1 and d1 and drops a2 and d2.
	g = loadTestGuard(t, Config{Ports: []uint16{80}, PinPath: pin, Allow: []netip.Prefix{a1}, Deny: []netip.Prefix{d1}})
	allow, err := g.AllowList()
	if err != nil || len(allow) != 1 || allow[0] != a1 {
		t.Errorf("allow list after the new config = %v, %v; want [%s]", allow, err, a1)
	}
	deny, err := g.DenyList()
	got := map[netip.Prefix]bool{}
	for _, d := range deny {
		got[d.Prefix] = true
	}
	if err != nil || len(deny) != 2 || !got[d1] || !got[byHand] {
		t.Errorf("deny list after the new config = %v, %v; want %s (config) and %s (by hand)", deny, err, d1, byHand)
	}
	run(t, g, pkt{src: "203.0.113.7", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
}

// TestConfigListsConcurrent: workers starting together all open the one
// pinned record of config entries, whoever pins it first.
func TestConfigListsConcurrent(t *testing.T) {
	requireBPF(t)
	pin := testPinPath(t)
	if err := ensurePinDir(pin); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			m, err := openConfigLists(pin, 64)
			if err == nil {
				m.Close()
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("openConfigLists beside others: %v", err)
		}
	}
}

// TestLoadFailsCleanly: an error after the programs are loaded (here the
// config record's pin path taken by a directory) is returned, not a panic,
// and releases what was loaded.
func TestLoadFailsCleanly(t *testing.T) {
	requireBPF(t)
	pin := testPinPath(t)
	if err := ensurePinDir(pin); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(pin, configListsPin), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(pin, configListsPin)) })
	g, err := Load(Config{Ports: []uint16{80}, PinPath: pin})
	if err == nil {
		g.Close()
		t.Fatal("Load with the record's path taken: no error")
	}
}
