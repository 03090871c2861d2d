package bpf

import (
	"errors"
	"math"
	"net/netip"
	"testing"
)

func TestPrefixEncoding(t *testing.T) {
	f := func(in string, wantBits uint32, wantAddr string, wantBack string) {
		t.Helper()
		e, err := encodePrefix(netip.MustParsePrefix(in))
		if err != nil {
			t.Fatalf("encodePrefix(%s): %v", in, err)
		}
		if e.bits != wantBits || netip.AddrFrom16(e.addr) != netip.MustParseAddr(wantAddr) {
			t.Errorf("encodePrefix(%s) = /%d %s, want /%d %s", in, e.bits, netip.AddrFrom16(e.addr), wantBits, wantAddr)
		}
		if back := decodePrefix(e); back != netip.MustParsePrefix(wantBack) {
			t.Errorf("decodePrefix(encodePrefix(%s)) = %s, want %s", in, back, wantBack)
		}
	}
	f("192.0.2.0/24", 120, "::ffff:192.0.2.0", "192.0.2.0/24")
	f("192.0.2.77/24", 120, "::ffff:192.0.2.0", "192.0.2.0/24") // masked
	f("10.0.0.1/32", 128, "::ffff:10.0.0.1", "10.0.0.1/32")
	f("0.0.0.0/0", 96, "::ffff:0.0.0.0", "0.0.0.0/0")
	f("2001:db8::/32", 32, "2001:db8::", "2001:db8::/32")
	f("2001:db8::1/128", 128, "2001:db8::1", "2001:db8::1/128")
	f("::/0", 0, "::", "::/0")
	// IPv4-mapped IPv6 is the same key as IPv4 (RFC 4291 2.5.5.2).
	f("::ffff:192.0.2.0/120", 120, "::ffff:192.0.2.0", "192.0.2.0/24")

	if _, err := encodePrefix(netip.Prefix{}); !errors.Is(err, ErrPrefix) {
		t.Errorf("encodePrefix(zero prefix) = %v, want ErrPrefix", err)
	}
	if a := decodeAddr(netip.MustParseAddr("192.0.2.1").As16()); a != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("decodeAddr = %s", a)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "native": ModeNative,
		"generic": ModeGeneric, "userspace": ModeUserspace, "off": ModeOff} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, m, err, want)
		}
	}
	if _, err := ParseMode("xdp"); !errors.Is(err, ErrMode) {
		t.Errorf("ParseMode(xdp) = %v, want ErrMode", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Ports: []uint16{80}, SYNRate: 2.5}.withDefaults()
	if c.MaxSources != defaultMaxSources || c.MaxPrefixes != defaultMaxPrefixes ||
		c.PinPath != defaultPinPath || c.SYNBurst != 3 || c.ppsWindow != defaultPPSWindow {
		t.Errorf("withDefaults = %+v", c)
	}
	if c := (Config{Ports: []uint16{80}, SYNRate: 0.1}).withDefaults(); c.SYNBurst != 1 {
		t.Errorf("burst for rate 0.1 = %d, want 1", c.SYNBurst)
	}
	if interval, burst := c.synSchedule(); interval != 400_000_000 || burst != 3 {
		t.Errorf("synSchedule = %d, %d; want 400ms, 3", interval, burst)
	}
	if interval, _ := (Config{}).synSchedule(); interval != 0 {
		t.Errorf("no rate: interval %d, want 0", interval)
	}
}

func TestConfigValidate(t *testing.T) {
	ports := []uint16{80}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Ports: ports}, true},
		{"everything", Config{Ports: []uint16{80, 443}, SYNRate: 100, SYNBurst: 200, MaxConnsPerIP: 50,
			PPSPerIP: 10000, MaxSources: 1 << 20, MaxPrefixes: 1024,
			Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			Deny:  []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, true},
		{"no ports", Config{}, false},
		{"port 0", Config{Ports: []uint16{0}}, false},
		{"too many ports", Config{Ports: make([]uint16, maxPorts+1)}, false},
		{"negative rate", Config{Ports: ports, SYNRate: -1}, false},
		{"NaN rate", Config{Ports: ports, SYNRate: math.NaN()}, false},
		{"infinite rate", Config{Ports: ports, SYNRate: math.Inf(1)}, false},
		{"tiny rate", Config{Ports: ports, SYNRate: 1e-9}, false},
		{"huge burst", Config{Ports: ports, SYNRate: 1, SYNBurst: maxSYNBurst + 1}, false},
		{"burst spans too long", Config{Ports: ports, SYNRate: 1e-5, SYNBurst: maxSYNBurst}, false},
		{"huge map", Config{Ports: ports, MaxSources: maxMapEntries + 1}, false},
		{"bad deny", Config{Ports: ports, Deny: []netip.Prefix{{}}}, false},
		{"bad allow", Config{Ports: ports, Allow: []netip.Prefix{{}}}, false},
	} {
		err := tc.cfg.withDefaults().validate()
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestStatsDropped(t *testing.T) {
	s := Stats{Passed: 9, DroppedDeny: 1, DroppedSYNRate: 2, DroppedConnCap: 3, DroppedPPS: 4}
	if s.Dropped() != 10 {
		t.Errorf("Dropped = %d, want 10", s.Dropped())
	}
}
