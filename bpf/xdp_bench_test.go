//go:build linux

package bpf

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkXDP measures the XDP program in the kernel per packet through
// bpf_prog_test_run with a repeat count; "ns/pkt" is the figure to read
// (ns/op adds the test-run setup around it).
func BenchmarkXDP(b *testing.B) {
	if err := Supported(); err != nil {
		b.Skipf("kernel guard unavailable: %v", err)
	}
	pin := "/sys/fs/bpf/edgeloop-bench-" + randomSuffix(b)
	g, err := Load(Config{
		Ports: []uint16{80}, SYNRate: 1e6, SYNBurst: 1e6, MaxConnsPerIP: 1000, PPSPerIP: 1 << 31,
		Deny: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, PinPath: pin,
		ppsWindow: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		g.Close()
		RemovePins(pin)
	})
	for _, bc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"skipped port", pkt{src: "192.0.2.1", dport: 22, flags: tcpACK}.bytes(), xdpPass},
		{"ack checked", pkt{src: "192.0.2.1", dport: 80, flags: tcpACK}.bytes(), xdpPass},
		{"syn checked", pkt{src: "2001:db8::1", dport: 80, flags: tcpSYN}.bytes(), xdpPass},
		{"denied", pkt{src: "203.0.113.9", dport: 80, flags: tcpSYN}.bytes(), xdpDrop},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			verdict, perPkt, err := g.objs.XdpGuard.Benchmark(bc.frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			if verdict != bc.want {
				b.Fatalf("verdict %d, want %d", verdict, bc.want)
			}
			b.ReportMetric(float64(perPkt.Nanoseconds()), "ns/pkt")
		})
	}
}
