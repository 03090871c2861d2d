//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// XDP verdicts (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
)

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpACK = 0x10
)

// pkt describes a hand-built frame: Ethernet, VLAN tags, IPv4 or IPv6, TCP.
type pkt struct {
	vlans     []uint16 // tag protocol ids, outermost first
	etherType uint16   // if zero, from src's family
	src       string
	dport     uint16
	flags     uint8
	proto     uint8  // if zero, TCP
	ipOptions int    // IPv4 option bytes (NOPs), a multiple of 4
	ihl       uint8  // if non-zero, overrides the IPv4 header length field
	fragOff   uint16 // IPv4 fragment offset in 8-byte units
	moreFrags bool
	hopByHop  bool // IPv6 hop-by-hop options header before TCP
}

func (p pkt) bytes() []byte {
	src := netip.MustParseAddr(p.src)
	proto := p.proto
	if proto == 0 {
		proto = 6
	}
	b := make([]byte, 12, 128) // dst and src MAC
	for _, tpid := range p.vlans {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 100) // TCI: VLAN 100
	}
	et := p.etherType
	if et == 0 {
		et = 0x0800
		if src.Is6() {
			et = 0x86DD
		}
	}
	b = binary.BigEndian.AppendUint16(b, et)

	if src.Is4() {
		ihl := uint8(5 + p.ipOptions/4)
		if p.ihl != 0 {
			ihl = p.ihl
		}
		frag := p.fragOff
		if p.moreFrags {
			frag |= 0x2000
		}
		ip := make([]byte, 20)
		ip[0] = 4<<4 | ihl
		binary.BigEndian.PutUint16(ip[2:], uint16(20+p.ipOptions+20))
		binary.BigEndian.PutUint16(ip[6:], frag)
		ip[8] = 64
		ip[9] = proto
		s4 := src.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], []byte{10, 77, 0, 1})
		b = append(b, ip...)
		for range p.ipOptions {
			b = append(b, 1) // NOP: read as a port it is 257, not guarded
		}
	} else {
		ip := make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], 20)
		ip[6] = proto
		ip[7] = 64
		s16 := src.As16()
		copy(ip[8:], s16[:])
		ip[39] = 1 // dst ::1
		b = append(b, ip...)
		if p.hopByHop {
			b[len(b)-40+6] = 0                        // next header: hop-by-hop
			b = append(b, proto, 0, 1, 4, 0, 0, 0, 0) // then TCP; PadN
		}
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], p.dport)
	tcp[12] = 5 << 4
	tcp[13] = p.flags
	return append(b, tcp...)
}

// run feeds frame to the XDP program and checks the verdict and exactly
// which counters moved.
func run(t *testing.T, g *Guard, frame []byte, wantVerdict uint32, wantDelta Stats) {
	t.Helper()
	before, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	verdict, _, err := g.objs.XdpGuard.Test(frame)
	if err != nil {
		t.Fatalf("Program.Test: %v", err)
	}
	after, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if verdict != wantVerdict {
		t.Errorf("verdict %d, want %d", verdict, wantVerdict)
	}
	if d := statsDelta(before, after); d != wantDelta {
		t.Errorf("counters moved by %+v, want %+v", d, wantDelta)
	}
}

func statsDelta(a, b Stats) Stats {
	return Stats{
		Passed: b.Passed - a.Passed, Allowed: b.Allowed - a.Allowed,
		Skipped: b.Skipped - a.Skipped, ParseErrors: b.ParseErrors - a.ParseErrors,
		DroppedDeny: b.DroppedDeny - a.DroppedDeny, DroppedSYNRate: b.DroppedSYNRate - a.DroppedSYNRate,
		DroppedConnCap: b.DroppedConnCap - a.DroppedConnCap, DroppedPPS: b.DroppedPPS - a.DroppedPPS,
	}
}

func TestXDPParse(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80, 443}})
	passed, skipped, parseErr := Stats{Passed: 1}, Stats{Skipped: 1}, Stats{ParseErrors: 1}
	syn := func(src string) pkt { return pkt{src: src, dport: 80, flags: tcpSYN} }

	for _, tc := range []struct {
		name  string
		frame []byte
		want  Stats
	}{
		{"ipv4", syn("192.0.2.1").bytes(), passed},
		{"ipv4 second guarded port", pkt{src: "192.0.2.1", dport: 443, flags: tcpACK}.bytes(), passed},
		{"ipv6", syn("2001:db8::1").bytes(), passed},
		{"vlan", pkt{vlans: []uint16{0x8100}, src: "192.0.2.1", dport: 80}.bytes(), passed},
		{"qinq", pkt{vlans: []uint16{0x88A8, 0x8100}, src: "192.0.2.1", dport: 80}.bytes(), passed},
		{"qinq ipv6", pkt{vlans: []uint16{0x88A8, 0x8100}, src: "2001:db8::1", dport: 80}.bytes(), passed},
		{"three tags", pkt{vlans: []uint16{0x88A8, 0x8100, 0x8100}, src: "192.0.2.1", dport: 80}.bytes(), skipped},
		{"ipv4 options", pkt{src: "192.0.2.1", dport: 80, ipOptions: 12}.bytes(), passed},
		{"ipv4 max options", pkt{src: "192.0.2.1", dport: 80, ipOptions: 40}.bytes(), passed},
		{"first fragment", pkt{src: "192.0.2.1", dport: 80, moreFrags: true}.bytes(), passed},
		{"later fragment", pkt{src: "192.0.2.1", dport: 80, fragOff: 185, moreFrags: true}.bytes(), skipped},
		{"last fragment", pkt{src: "192.0.2.1", dport: 80, fragOff: 185}.bytes(), skipped},
		{"udp", pkt{src: "192.0.2.1", dport: 80, proto: 17}.bytes(), skipped},
		{"ipv6 hop-by-hop", pkt{src: "2001:db8::1", dport: 80, hopByHop: true}.bytes(), skipped},
		{"icmpv6", pkt{src: "2001:db8::1", dport: 80, proto: 58}.bytes(), skipped},
		{"arp", pkt{src: "192.0.2.1", etherType: 0x0806}.bytes(), skipped},
		{"port not guarded", pkt{src: "192.0.2.1", dport: 8080, flags: tcpSYN}.bytes(), skipped},
		{"ipv6 port not guarded", pkt{src: "2001:db8::1", dport: 22, flags: tcpSYN}.bytes(), skipped},
		{"ihl below 5", pkt{src: "192.0.2.1", dport: 80, ihl: 4}.bytes(), parseErr},
		{"options past the end", pkt{src: "192.0.2.1", dport: 80, ihl: 15}.bytes(), parseErr},
	} {
		t.Run(tc.name, func(t *testing.T) { run(t, g, tc.frame, xdpPass, tc.want) })
	}

	// Truncation at every layer: the frame is cut inside each header.
	truncated := []struct {
		name string
		p    pkt
		cut  int // frame length
	}{
		{"vlan tag", pkt{vlans: []uint16{0x8100}, src: "192.0.2.1", dport: 80}, 16},
		{"second vlan tag", pkt{vlans: []uint16{0x88A8, 0x8100}, src: "192.0.2.1", dport: 80}, 20},
		{"ipv4 header", pkt{src: "192.0.2.1", dport: 80}, 14 + 19},
		{"ipv4 options", pkt{src: "192.0.2.1", dport: 80, ipOptions: 8}, 14 + 24},
		{"ipv6 header", pkt{src: "2001:db8::1", dport: 80}, 14 + 39},
		{"tcp after ipv4", pkt{src: "192.0.2.1", dport: 80}, 14 + 20 + 19},
		{"tcp after ipv4 options", pkt{src: "192.0.2.1", dport: 80, ipOptions: 4}, 14 + 24 + 10},
		{"tcp after ipv6", pkt{src: "2001:db8::1", dport: 80}, 14 + 40 + 19},
		{"tcp after vlan", pkt{vlans: []uint16{0x8100}, src: "192.0.2.1", dport: 80}, 18 + 20 + 4},
	}
	for _, tc := range truncated {
		t.Run("truncated "+tc.name, func(t *testing.T) {
			run(t, g, tc.p.bytes()[:tc.cut], xdpPass, parseErr)
		})
	}
}

func TestXDPDenyAllow(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{
		Ports: []uint16{80},
		Deny:  []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8:1::/48")},
	})
	deny, allowed, passed := Stats{DroppedDeny: 1}, Stats{Allowed: 1}, Stats{Passed: 1}
	f := func(src string, flags uint8, verdict uint32, want Stats) {
		t.Helper()
		run(t, g, pkt{src: src, dport: 80, flags: flags}.bytes(), verdict, want)
	}
	f("192.0.2.9", tcpSYN, xdpDrop, deny)
	f("192.0.2.9", tcpACK, xdpDrop, deny)
	f("2001:db8:ffff::5", tcpSYN, xdpDrop, deny)
	f("192.0.2.7", tcpSYN, xdpPass, allowed)
	f("2001:db8:1::9", tcpSYN, xdpPass, allowed)
	f("198.51.100.1", tcpSYN, xdpPass, passed)
	f("2001:db9::1", tcpSYN, xdpPass, passed)
	// A denied source to a port that is not guarded is not touched.
	run(t, g, pkt{src: "192.0.2.9", dport: 22, flags: tcpSYN}.bytes(), xdpPass, Stats{Skipped: 1})

	// Runtime entries, and allow over a runtime deny.
	p := netip.MustParsePrefix("198.51.100.0/24")
	if err := g.Deny(p, 0); err != nil {
		t.Fatal(err)
	}
	f("198.51.100.1", tcpSYN, xdpDrop, deny)
	if err := g.Allow(netip.MustParsePrefix("198.51.100.1/32")); err != nil {
		t.Fatal(err)
	}
	f("198.51.100.1", tcpSYN, xdpPass, allowed)
	if err := g.Unallow(netip.MustParsePrefix("198.51.100.1/32")); err != nil {
		t.Fatal(err)
	}
	f("198.51.100.1", tcpSYN, xdpDrop, deny)
	if err := g.Undeny(p); err != nil {
		t.Fatal(err)
	}
	f("198.51.100.1", tcpSYN, xdpPass, passed)
	if err := g.Undeny(p); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Undeny: %v, want ErrNotFound", err)
	}

	// A deny with a ttl is listed with its expiry.
	if err := g.Deny(netip.MustParsePrefix("203.0.113.0/24"), time.Hour); err != nil {
		t.Fatal(err)
	}
	f("203.0.113.5", tcpSYN, xdpDrop, deny)
	list, err := g.DenyList()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range list {
		if d.Prefix == netip.MustParsePrefix("203.0.113.0/24") {
			found = true
			if left := time.Until(d.Expires); left < 59*time.Minute || left > time.Hour {
				t.Errorf("expires in %v, want about an hour", left)
			}
		}
	}
	if !found || len(list) != 3 {
		t.Errorf("deny list %v: want the 2 config prefixes and 203.0.113.0/24", list)
	}
}

// TestXDPDenyExpiry checks that the program deletes expired entries by
// itself, also when a live shorter prefix lies under the expired one.
func TestXDPDenyExpiry(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80}})
	now := g.now()
	expired := netip.MustParsePrefix("203.0.113.0/24")
	if err := g.denyUntil(expired, now-1); err != nil {
		t.Fatal(err)
	}
	v6 := netip.MustParsePrefix("2001:db8::/64")
	if err := g.denyUntil(v6, now-1); err != nil {
		t.Fatal(err)
	}
	if list, err := g.DenyList(); err != nil || len(list) != 0 {
		t.Errorf("DenyList = %v, %v; want expired entries left out", list, err)
	}
	run(t, g, pkt{src: "203.0.113.5", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	run(t, g, pkt{src: "2001:db8::5", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	for _, p := range []netip.Prefix{expired, v6} {
		if err := g.Undeny(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Undeny(%s) after expiry: %v, want ErrNotFound (deleted by the program)", p, err)
		}
	}

	// Expired /24 above a live /8: the /24 goes, the /8 still denies.
	if err := g.Deny(netip.MustParsePrefix("203.0.0.0/8"), 0); err != nil {
		t.Fatal(err)
	}
	if err := g.denyUntil(expired, now-1); err != nil {
		t.Fatal(err)
	}
	run(t, g, pkt{src: "203.0.113.5", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedDeny: 1})
	if err := g.Undeny(expired); !errors.Is(err, ErrNotFound) {
		t.Errorf("Undeny(/24) after expiry: %v, want ErrNotFound", err)
	}
}

func TestXDPSYNRate(t *testing.T) {
	requireBPF(t)
	// One SYN per 1000 s: nothing refills during the test.
	g := loadTestGuard(t, Config{Ports: []uint16{80}, SYNRate: 0.001, SYNBurst: 3})
	flood, other := "192.0.2.66", "2001:db8::77"
	for i := range 3 {
		t.Logf("SYN %d", i+1)
		run(t, g, pkt{src: flood, dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	}
	run(t, g, pkt{src: flood, dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedSYNRate: 1})
	run(t, g, pkt{src: flood, dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedSYNRate: 1})
	// Segments of established connections are not SYNs; SYN-ACKs neither.
	run(t, g, pkt{src: flood, dport: 80, flags: tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	run(t, g, pkt{src: flood, dport: 80, flags: tcpSYN | tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	run(t, g, pkt{src: flood, dport: 80, flags: tcpFIN | tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	// Another source has its own bucket.
	run(t, g, pkt{src: other, dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})

	top, err := g.TopSources(10, BySYNs)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 || top[0].Addr != netip.MustParseAddr(flood) || top[0].SYNs != 5 || top[0].Drops != 2 ||
		top[1].Addr != netip.MustParseAddr(other) || top[1].SYNs != 1 || top[1].Drops != 0 {
		t.Errorf("TopSources(BySYNs) = %+v", top)
	}
	if top, err := g.TopSources(1, ByDrops); err != nil || len(top) != 1 || top[0].Addr != netip.MustParseAddr(flood) {
		t.Errorf("TopSources(1, ByDrops) = %+v, %v", top, err)
	}
}

func TestXDPPPS(t *testing.T) {
	requireBPF(t)
	// A window of an hour makes the ceiling independent of test speed.
	g := loadTestGuard(t, Config{Ports: []uint16{80}, PPSPerIP: 5, ppsWindow: time.Hour})
	for range 5 {
		run(t, g, pkt{src: "192.0.2.5", dport: 80, flags: tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	}
	run(t, g, pkt{src: "192.0.2.5", dport: 80, flags: tcpACK}.bytes(), xdpDrop, Stats{DroppedPPS: 1})
	run(t, g, pkt{src: "192.0.2.5", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedPPS: 1})
	run(t, g, pkt{src: "192.0.2.6", dport: 80, flags: tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	// Not guarded: not counted against the ceiling.
	run(t, g, pkt{src: "192.0.2.5", dport: 81, flags: tcpACK}.bytes(), xdpPass, Stats{Skipped: 1})
}

func TestXDPConnCap(t *testing.T) {
	requireBPF(t)
	g := loadTestGuard(t, Config{Ports: []uint16{80}, MaxConnsPerIP: 3})
	setConns := func(addr string, n uint64) {
		t.Helper()
		a := netip.MustParseAddr(addr)
		if err := g.objs.ConnCount.Put(guardAddr{B: a.As16()}, n); err != nil {
			t.Fatal(err)
		}
	}
	setConns("192.0.2.8", 3)
	setConns("2001:db8::8", 4)
	run(t, g, pkt{src: "192.0.2.8", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedConnCap: 1})
	run(t, g, pkt{src: "2001:db8::8", dport: 80, flags: tcpSYN}.bytes(), xdpDrop, Stats{DroppedConnCap: 1})
	// Established connections keep flowing.
	run(t, g, pkt{src: "192.0.2.8", dport: 80, flags: tcpACK}.bytes(), xdpPass, Stats{Passed: 1})
	setConns("192.0.2.8", 2)
	run(t, g, pkt{src: "192.0.2.8", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	run(t, g, pkt{src: "192.0.2.9", dport: 80, flags: tcpSYN}.bytes(), xdpPass, Stats{Passed: 1})
	if n, err := g.Conns(netip.MustParseAddr("2001:db8::8")); err != nil || n != 4 {
		t.Errorf("Conns = %d, %v; want 4", n, err)
	}
}
