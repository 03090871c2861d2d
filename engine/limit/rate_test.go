package limit

import (
	"errors"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// step is one Allow call at t0+at and what it must return.
type step struct {
	at    time.Duration
	ip    string
	ok    bool
	retry time.Duration
}

func runSteps(t *testing.T, l *RateLimiter, steps []step) {
	t.Helper()
	for i, s := range steps {
		ok, retry := l.Allow(netip.MustParseAddr(s.ip), t0.Add(s.at))
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d: Allow(%s, t0+%v) = %v, %v; want %v, %v", i, s.ip, s.at, ok, retry, s.ok, s.retry)
		}
	}
}

func newLimiter(t *testing.T, cfg RateConfig) *RateLimiter {
	t.Helper()
	l, err := NewRateLimiter(cfg)
	if err != nil {
		t.Fatalf("NewRateLimiter(%+v): %v", cfg, err)
	}
	t.Cleanup(l.Close)
	return l
}

func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestAllowSteps(t *testing.T) {
	const a, b = "192.0.2.1", "192.0.2.2"
	l := newLimiter(t, RateConfig{Rate: 10, Burst: 3}) // one token per 100ms
	runSteps(t, l, []step{
		{0, a, true, 0},
		{0, a, true, 0},
		{0, a, true, 0},
		{0, a, false, 100 * time.Millisecond}, // burst exhausted
		{0, b, true, 0},                       // other clients are independent
		{50 * time.Millisecond, a, false, 50 * time.Millisecond},
		{100 * time.Millisecond, a, true, 0}, // one token refilled
		{100 * time.Millisecond, a, false, 100 * time.Millisecond},
		{250 * time.Millisecond, a, true, 0},
		{250 * time.Millisecond, a, false, 50 * time.Millisecond},
		{10 * time.Second, a, true, 0}, // idle: refilled to Burst, not beyond
		{10 * time.Second, a, true, 0},
		{10 * time.Second, a, true, 0},
		{10 * time.Second, a, false, 100 * time.Millisecond},
		{10 * time.Second, b, true, 0},
	})
}

func TestAllowDefaults(t *testing.T) {
	l := newLimiter(t, RateConfig{})
	const ip = "198.51.100.7"
	var steps []step
	for range defaultBurst {
		steps = append(steps, step{0, ip, true, 0})
	}
	// 1000 per minute is one token every 60ms, exactly.
	steps = append(steps,
		step{0, ip, false, 60 * time.Millisecond},
		step{59 * time.Millisecond, ip, false, time.Millisecond},
		step{60 * time.Millisecond, ip, true, 0},
		step{60 * time.Millisecond, ip, false, 60 * time.Millisecond},
		step{time.Minute, ip, true, 0},
	)
	runSteps(t, l, steps)
	if got := l.Cap(); got != defaultMaxClients {
		t.Errorf("Cap() = %d, want %d", got, defaultMaxClients)
	}
}

func TestAllowIPv6Prefix(t *testing.T) {
	l := newLimiter(t, RateConfig{Rate: 1, Burst: 2})
	runSteps(t, l, []step{
		{0, "2001:db8::1", true, 0},
		{0, "2001:db8::ffff:2", true, 0},                            // same /64
		{0, "2001:db8:0:0:abcd:ef01:2345:6789", false, time.Second}, // same /64, bucket empty
		{0, "fe80::1%eth0", true, 0},
		{0, "fe80::2%eth1", true, 0}, // zone ignored, same /64
		{0, "fe80::3", false, time.Second},
		{0, "2001:db8:0:1::1", true, 0}, // next /64
	})

	l = newLimiter(t, RateConfig{Rate: 1, Burst: 1, IPv6Prefix: 128})
	runSteps(t, l, []step{
		{0, "2001:db8::1", true, 0},
		{0, "2001:db8::2", true, 0},
		{0, "2001:db8::1", false, time.Second},
	})
	l = newLimiter(t, RateConfig{Rate: 1, Burst: 1, IPv6Prefix: 48})
	runSteps(t, l, []step{
		{0, "2001:db8:1:1::1", true, 0},
		{0, "2001:db8:1:2::1", false, time.Second},
		{0, "2001:db8:2::1", true, 0},
	})
}

func TestAllowIPv4Mapped(t *testing.T) {
	l := newLimiter(t, RateConfig{Rate: 2, Burst: 1})
	runSteps(t, l, []step{
		{0, "192.0.2.1", true, 0},
		{0, "::ffff:192.0.2.1", false, 500 * time.Millisecond},
		{0, "::ffff:192.0.2.2", true, 0},
		{0, "192.0.2.2", false, 500 * time.Millisecond},
		// Neither shares a bucket with an IPv6 /64 around ::ffff:0:0.
		{0, "::1", true, 0},
		{0, "::ffff:0:1", true, 0}, // ::ffff:0:1 is IPv6, not mapped
	})
	// The zero Addr does not panic; all invalid addresses share a bucket.
	if ok, _ := l.Allow(netip.Addr{}, t0); !ok {
		t.Fatal("first invalid address rejected")
	}
	if ok, retry := l.Allow(netip.Addr{}, t0); ok || retry != 500*time.Millisecond {
		t.Fatalf("second invalid address = %v, %v; want false, 500ms", ok, retry)
	}
}

func TestClientPrefix(t *testing.T) {
	l := newLimiter(t, RateConfig{})
	f := func(in, want string) {
		t.Helper()
		var ip netip.Addr
		if in != "" {
			ip = netip.MustParseAddr(in)
		}
		got := l.ClientPrefix(ip)
		if (want == "" && got.IsValid()) || (want != "" && got != netip.MustParsePrefix(want)) {
			t.Errorf("ClientPrefix(%q) = %v, want %q", in, got, want)
		}
	}
	f("192.0.2.9", "192.0.2.9/32")
	f("::ffff:192.0.2.9", "192.0.2.9/32")
	f("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")
	f("fe80::1%eth0", "fe80::/64")
	f("", "")
}

func TestOffender(t *testing.T) {
	var mu sync.Mutex
	var reported []netip.Addr
	var l *RateLimiter
	l = newLimiter(t, RateConfig{
		Rate: 1, Burst: 1, OffenderThreshold: 3, OffenderWindow: 10 * time.Second,
		OnOffender: func(ip netip.Addr) {
			// No limiter lock is held here: Len takes every shard's lock.
			_ = l.Len()
			mu.Lock()
			reported = append(reported, ip)
			mu.Unlock()
		},
	})
	const a, b = "203.0.113.1", "::ffff:203.0.113.2"
	before := metricValue(t, offendersReported)
	f := func(at time.Duration, ip string, wantOK bool, wantReports int) {
		t.Helper()
		ok, _ := l.Allow(netip.MustParseAddr(ip), t0.Add(at))
		mu.Lock()
		n := len(reported)
		mu.Unlock()
		if ok != wantOK || n != wantReports {
			t.Fatalf("Allow(%s, t0+%v) = %v with %d reports; want %v with %d", ip, at, ok, n, wantOK, wantReports)
		}
	}
	ms := time.Millisecond
	f(0, a, true, 0)
	f(0, a, false, 0)    // strike 1, window opens at t0
	f(1*ms, a, false, 0) // strike 2
	f(2*ms, a, false, 1) // strike 3: reported
	f(3*ms, a, false, 1) // at most once per window
	f(4*ms, b, true, 1)
	f(5*ms, b, false, 1) // b counts separately
	f(6*ms, b, false, 1)
	f(7*ms, b, false, 2)
	f(5*time.Second, a, true, 2) // refilled
	f(5*time.Second, a, false, 2)
	f(9999*ms, a, true, 2)
	f(9999*ms, a, false, 2)        // still the first window: strike 6, already reported
	f(10*time.Second, a, false, 2) // window over: strike 1 of a new window
	f(10*time.Second+ms, a, false, 2)
	f(10*time.Second+2*ms, a, false, 3) // reported again in the new window
	f(30*time.Second, a, true, 3)       // refilled
	f(30*time.Second, a, false, 3)      // strike 1 of a third window
	f(30*time.Second+ms, a, false, 3)

	want := []netip.Addr{netip.MustParseAddr(a), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr(a)}
	for i := range want {
		if reported[i] != want[i] {
			t.Errorf("report %d = %v, want %v", i, reported[i], want[i])
		}
	}
	if got := metricValue(t, offendersReported) - before; got != 3 {
		t.Errorf("offenders_total rose by %v, want 3", got)
	}
}

func TestEvictionPolicy(t *testing.T) {
	// Eight slots: one shard, one set.
	l := newLimiter(t, RateConfig{Rate: 1, Burst: 5, MaxClients: 8})
	if l.Cap() != 8 {
		t.Fatalf("Cap() = %d, want 8", l.Cap())
	}
	heavy := netip.MustParseAddr("192.0.2.1")
	for range 5 {
		if ok, _ := l.Allow(heavy, t0); !ok {
			t.Fatal("burst rejected")
		}
	}
	activeBefore := metricValue(t, evictionsActive)
	idleBefore := metricValue(t, evictionsIdle)
	// A flood of fresh addresses, each one request in debt, evicts its own
	// kind and never the client that owes five tokens.
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if ok, _ := l.Allow(ip, t0); !ok {
			t.Fatalf("fresh address %v rejected", ip)
		}
		if ok, retry := l.Allow(heavy, t0); ok || retry != time.Second {
			t.Fatalf("after %d fresh addresses the limited client got %v, %v", i+1, ok, retry)
		}
	}
	if n := l.Len(); n != 8 {
		t.Errorf("Len() = %d, want 8", n)
	}
	if got := metricValue(t, evictionsActive) - activeBefore; got != 1000-7 {
		t.Errorf("active evictions = %v, want 993", got)
	}
	// Once every bucket has refilled, evictions are of idle clients.
	l.Allow(netip.MustParseAddr("10.1.0.1"), t0.Add(time.Hour))
	if got := metricValue(t, evictionsIdle) - idleBefore; got != 1 {
		t.Errorf("idle evictions = %v, want 1", got)
	}
}

func TestNewRateLimiterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RateConfig
		want error
	}{
		{"negative rate", RateConfig{Rate: -1}, ErrBadRate},
		{"NaN rate", RateConfig{Rate: math.NaN()}, ErrBadRate},
		{"infinite rate", RateConfig{Rate: math.Inf(1)}, ErrBadRate},
		{"rate above 1e9", RateConfig{Rate: 2e9}, ErrBadRate},
		{"negative burst", RateConfig{Burst: -1}, ErrBadBurst},
		{"negative max clients", RateConfig{MaxClients: -5}, ErrBadMaxClients},
		{"prefix 129", RateConfig{IPv6Prefix: 129}, ErrBadIPv6Prefix},
		{"negative prefix", RateConfig{IPv6Prefix: -1}, ErrBadIPv6Prefix},
		{"negative threshold", RateConfig{OffenderThreshold: -1}, ErrBadOffender},
		{"negative window", RateConfig{OffenderWindow: -time.Second}, ErrBadOffender},
		{"bucket too long", RateConfig{Rate: 1e-9, Burst: 10}, ErrBadBucket},
		{"tiny rate", RateConfig{Rate: 1e-300}, ErrBadBucket},
		{"ok: one per nanosecond", RateConfig{Rate: 1e9, Burst: 1}, nil},
		{"ok: one client", RateConfig{MaxClients: 1}, nil},
		{"ok: prefix 1", RateConfig{IPv6Prefix: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewRateLimiter(tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				l.Allow(netip.MustParseAddr("192.0.2.1"), t0)
				l.Close()
			}
		})
	}
}

func TestTableGeometry(t *testing.T) {
	f := func(maxClients, wantCap int) {
		t.Helper()
		tb := newTable(maxClients)
		if got := tb.capacity(); got != wantCap {
			t.Errorf("newTable(%d).capacity() = %d, want %d", maxClients, got, wantCap)
		}
	}
	f(1, 1)
	f(7, 7)
	f(8, 8)
	f(100, 96)
	f(1000, 896)
	f(8192, 8192)
	f(65536, 65536)
	f(100000, 98304)
}
