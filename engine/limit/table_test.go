package limit

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// addrN returns the n-th of a stream of distinct client keys: even n are
// IPv4 addresses, odd n are IPv6 addresses in distinct /64s.
func addrN(n uint32) netip.Addr {
	if n&1 == 0 {
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 15: 1})
}

// TestMemoryBound sends ten million distinct client keys through Allow. The
// table must stay at its capacity and the heap must not grow past the size of
// the table itself: Cap()×sizeof(entry) (2.5 MiB by default) plus the shard
// headers, with 512 KiB slack for the runtime's own bookkeeping (GC metadata,
// span rounding). Once the table is full the heap must not grow at all
// (64 KiB slack for span accounting noise). Under the race detector it
// sends one million, still fifteen times the capacity.
func TestMemoryBound(t *testing.T) {
	total := uint32(10_000_000)
	if raceEnabled {
		total = 1_000_000
	}
	base := heapInuse()
	l := newLimiter(t, RateConfig{})
	tableBytes := uint64(l.Cap())*uint64(unsafe.Sizeof(entry{})) + uint64(len(l.t.shards))*uint64(unsafe.Sizeof(shard{}))
	const slack = 512 << 10

	now := t0
	var warm uint64
	for i := uint32(0); i < total; i++ {
		if i%1024 == 0 {
			now = now.Add(time.Millisecond)
		}
		l.Allow(addrN(i), now)
		if i == total/10 {
			warm = heapInuse()
		}
	}
	end := heapInuse()
	if n := l.Len(); n != l.Cap() || n > defaultMaxClients {
		t.Errorf("Len() = %d after %d clients, want Cap() = %d ≤ MaxClients %d", n, total, l.Cap(), defaultMaxClients)
	}
	if end > base+tableBytes+slack {
		t.Errorf("heap in use grew by %d bytes, want ≤ %d (table %d + slack %d)", end-base, tableBytes+slack, tableBytes, slack)
	}
	if end > warm+64<<10 {
		t.Errorf("heap in use grew by %d bytes from %d to %d clients, want no growth", end-warm, total/10, total)
	}
	t.Logf("table %d bytes; heap in use +%d bytes at %d clients, +%d at %d", tableBytes, int64(warm-base), total/10, int64(end-base), total)
	runtime.KeepAlive(l)
}

func TestAllowZeroAllocs(t *testing.T) {
	l := newLimiter(t, RateConfig{MaxClients: 4096})
	hot := netip.MustParseAddr("192.0.2.1")
	if n := testing.AllocsPerRun(1000, func() { l.Allow(hot, t0) }); n != 0 {
		t.Errorf("Allow for a known client: %v allocs, want 0", n)
	}
	// Warm the table, then every call is a new client evicting an old one.
	var i uint32
	for ; i < 100_000; i++ {
		l.Allow(addrN(i), t0)
	}
	if n := testing.AllocsPerRun(1000, func() { i++; l.Allow(addrN(i), t0) }); n != 0 {
		t.Errorf("Allow for a new client in a warm table: %v allocs, want 0", n)
	}
	calls := 0
	l2 := newLimiter(t, RateConfig{Burst: 1, OffenderThreshold: 1, OnOffender: func(netip.Addr) { calls++ }})
	if n := testing.AllocsPerRun(1000, func() { i++; l2.Allow(addrN(i), t0); l2.Allow(addrN(i), t0) }); n != 0 {
		t.Errorf("Allow rejecting and reporting: %v allocs, want 0", n)
	}
	if calls == 0 {
		t.Error("OnOffender never called")
	}
}

// TestAllowConcurrent checks under -race that the table neither loses nor
// invents tokens: goroutines share one client at a fixed time, so exactly
// Burst requests pass in total, while others churn a small table.
func TestAllowConcurrent(t *testing.T) {
	const burst, workers, per = 100, 8, 2000
	l := newLimiter(t, RateConfig{Rate: 1, Burst: burst, MaxClients: 512})
	hot := netip.MustParseAddr("2001:db8::1")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if ok, _ := l.Allow(hot, t0); ok {
					allowed.Add(1)
				}
				// Churn the table, the hot client's set included. The
				// churn is an hour in the past, so its buckets owe less
				// than the hot one from its first request on, and the
				// hot client is never the victim (least debt goes first).
				l.Allow(addrN(uint32(w*per+i)*2), t0.Add(time.Duration(i)-time.Hour))
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != burst {
		t.Errorf("%d requests of one client allowed concurrently, want exactly %d", got, burst)
	}
	if n := l.Len(); n > l.Cap() || l.Cap() > 512 {
		t.Errorf("Len() = %d, Cap() = %d, want ≤ 512", n, l.Cap())
	}
}
