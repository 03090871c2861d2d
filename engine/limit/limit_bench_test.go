package limit

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// The clock advances 1µs per call, so a client alternates between allowed
// and rejected requests the way a real one over its rate would.

func newBenchLimiter(b *testing.B) *RateLimiter {
	b.Helper()
	l, err := NewRateLimiter(RateConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Close)
	return l
}

// BenchmarkAllowHot: one client, one goroutine.
func BenchmarkAllowHot(b *testing.B) {
	l := newBenchLimiter(b)
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow(ip, t0.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkAllowRotating: four times as many clients as the table holds, so
// most calls are a new client evicting an old one.
func BenchmarkAllowRotating(b *testing.B) {
	l := newBenchLimiter(b)
	n := uint32(4 * l.Cap())
	b.ReportAllocs()
	for i := uint32(0); b.Loop(); i++ {
		l.Allow(addrN(i%n), t0.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkAllowHotParallel: every goroutine hits the same client (one
// shard lock): the worst case for contention.
func BenchmarkAllowHotParallel(b *testing.B) {
	l := newBenchLimiter(b)
	ip := netip.MustParseAddr("2001:db8::1")
	var clock atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(ip, t0.Add(time.Duration(clock.Add(1))*time.Microsecond))
		}
	})
}

// BenchmarkAllowRotatingParallel: goroutines each walk their own range of
// clients, spreading over the shards.
func BenchmarkAllowRotatingParallel(b *testing.B) {
	l := newBenchLimiter(b)
	n := uint32(4 * l.Cap())
	var seq atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(1) * 7919 * 1024
		now := t0
		for pb.Next() {
			i++
			now = now.Add(time.Microsecond)
			l.Allow(addrN(i%n), now)
		}
	})
}

// BenchmarkConnAcquireRelease: the accept-path cost of the connection caps.
func BenchmarkConnAcquireRelease(b *testing.B) {
	l := NewConnLimiter(ConnConfig{})
	var seq atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ip := addrN(seq.Add(1))
		for pb.Next() {
			if err := l.Acquire(ip); err != nil {
				b.Error(err)
				return
			}
			l.Release(ip)
		}
	})
}
