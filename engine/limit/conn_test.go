package limit

import (
	"errors"
	"net/netip"
	"testing"
)

// connOp is one Acquire (release false) or Release and what must follow.
type connOp struct {
	release bool
	ip      string // "" is the zero Addr
	err     error  // of Acquire
	open    int    // Open() afterwards
}

func runConnOps(t *testing.T, l *ConnLimiter, ops []connOp) {
	t.Helper()
	for i, op := range ops {
		var ip netip.Addr
		if op.ip != "" {
			ip = netip.MustParseAddr(op.ip)
		}
		if op.release {
			l.Release(ip)
		} else if err := l.Acquire(ip); !errors.Is(err, op.err) || (op.err == nil && err != nil) {
			t.Fatalf("op %d: Acquire(%s) = %v, want %v", i, op.ip, err, op.err)
		}
		if got := l.Open(); got != op.open {
			t.Fatalf("op %d (%+v): Open() = %d, want %d", i, op, got, op.open)
		}
	}
}

func TestConnLimiter(t *testing.T) {
	const a, b, c = "192.0.2.1", "192.0.2.2", "192.0.2.3"
	for _, tc := range []struct {
		name string
		cfg  ConnConfig
		ops  []connOp
	}{
		{"caps", ConnConfig{Max: 3, MaxPerIP: 2}, []connOp{
			{false, a, nil, 1},
			{false, a, nil, 2},
			{false, a, ErrTooManyConnsPerIP, 2},
			{false, b, nil, 3},
			{false, c, ErrTooManyConns, 3}, // total cap first
			{true, a, nil, 2},
			{false, c, nil, 3},
			{false, a, ErrTooManyConns, 3},
			{true, b, nil, 2},
			{true, b, nil, 2}, // nothing of b's left to release
			{true, "198.51.100.1", nil, 2},
			{false, a, nil, 3},
			{false, a, ErrTooManyConns, 3},
		}},
		{"mapped and ipv6 prefix", ConnConfig{Max: 10, MaxPerIP: 1}, []connOp{
			{false, a, nil, 1},
			{false, "::ffff:" + a, ErrTooManyConnsPerIP, 1},
			{false, "2001:db8::1", nil, 2},
			{false, "2001:db8::2", ErrTooManyConnsPerIP, 2}, // same /64
			{false, "2001:db8:0:1::2", nil, 3},
			{true, "::ffff:" + a, nil, 2},
			{false, a, nil, 3},
		}},
		{"invalid addresses: total cap only", ConnConfig{Max: 3, MaxPerIP: 1}, []connOp{
			{true, "", nil, 0}, // none open: no-op
			{false, "", nil, 1},
			{false, "", nil, 2},
			{false, a, nil, 3},
			{false, "", ErrTooManyConns, 3},
			{true, "", nil, 2},
			{true, "", nil, 1},
			{true, "", nil, 1}, // a's connection is not an invalid one
			{true, a, nil, 0},
		}},
		{"unlimited", ConnConfig{Max: -1, MaxPerIP: -1}, func() []connOp {
			var ops []connOp
			for i := range 20000 {
				ops = append(ops, connOp{false, a, nil, i + 1})
			}
			return ops
		}()},
		{"defaults", ConnConfig{}, func() []connOp {
			var ops []connOp
			for i := range defaultMaxConnsPerIP {
				ops = append(ops, connOp{false, a, nil, i + 1})
			}
			return append(ops, connOp{false, a, ErrTooManyConnsPerIP, defaultMaxConnsPerIP})
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewConnLimiter(tc.cfg)
			runConnOps(t, l, tc.ops)
		})
	}
}

// TestConnLimiterForgets checks that per-address counts are deleted at zero,
// so memory follows the open connections, not the addresses ever seen.
func TestConnLimiterForgets(t *testing.T) {
	l := NewConnLimiter(ConnConfig{Max: -1})
	openBefore := metricValue(t, connectionsOpen)
	for i := range uint32(10000) {
		ip := addrN(i)
		if err := l.Acquire(ip); err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(ip); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, connectionsOpen) - openBefore; got != 20000 {
		t.Errorf("connections_open rose by %v, want 20000", got)
	}
	for i := range uint32(10000) {
		l.Release(addrN(i))
		l.Release(addrN(i))
	}
	if l.Open() != 0 || len(l.perIP) != 0 {
		t.Errorf("after releasing everything: Open() = %d, %d addresses tracked; want 0, 0", l.Open(), len(l.perIP))
	}
	if got := metricValue(t, connectionsOpen) - openBefore; got != 0 {
		t.Errorf("connections_open is %v off after releasing everything", got)
	}
}

func TestConnConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  ConnConfig
		want error
	}{
		{ConnConfig{}, nil},
		{ConnConfig{IPv6Prefix: 128, Max: -1, MaxPerIP: -1}, nil},
		{ConnConfig{IPv6Prefix: 129}, ErrBadIPv6Prefix},
		{ConnConfig{IPv6Prefix: -3}, ErrBadIPv6Prefix},
	} {
		if err := tc.cfg.Validate(); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%+v.Validate() = %v, want %v", tc.cfg, err, tc.want)
		}
	}
	// An invalid prefix falls back to the default rather than failing.
	l := NewConnLimiter(ConnConfig{IPv6Prefix: 200, MaxPerIP: 1})
	runConnOps(t, l, []connOp{
		{false, "2001:db8::1", nil, 1},
		{false, "2001:db8::2", ErrTooManyConnsPerIP, 1},
	})
}
