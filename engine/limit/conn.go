package limit

import (
	"net/netip"
	"sync"
)

// Defaults of ConnConfig, used for zero fields.
const (
	// defaultMaxConns keeps the process well inside its open-file limit
	// (RLIMIT_NOFILE is 20,000 on the target hosts): half for clients, the
	// rest for upstream pools, cache files and listeners.
	defaultMaxConns = 10000
	// defaultMaxConnsPerIP: a browser opens at most 6 HTTP/1.1 connections
	// per host name (and one for HTTP/2), and an office, campus or carrier
	// NAT puts tens to hundreds of users behind one IPv4 address; 256 lets
	// about forty such users in at once, while one address can hold at most
	// 2.6% of the default total.
	defaultMaxConnsPerIP = 256
)

// ConnConfig configures a ConnLimiter. The zero value of each field selects
// its default.
type ConnConfig struct {
	// Max is the cap on open connections in total. If zero, 10000 is used;
	// if negative, there is no cap.
	Max int
	// MaxPerIP is the cap on open connections from one client address. If
	// zero, 256 is used; if negative, there is no cap.
	MaxPerIP int
	// IPv6Prefix is the prefix length by which IPv6 clients are counted,
	// as in RateConfig. If zero, 64 is used. Values outside 1..128 are
	// reported by Validate and replaced by the default in NewConnLimiter.
	IPv6Prefix int
}

// Validate reports a field out of range. Call it where configuration is
// loaded; NewConnLimiter does not fail.
func (c ConnConfig) Validate() error {
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		return ErrBadIPv6Prefix
	}
	return nil
}

// ConnLimiter counts open connections, in total and per client address, and
// refuses new ones over either cap. Acquire and Release are the primitives;
// Listener and Track wrap them for net.Listener-based transports. Safe for
// concurrent use.
//
// Per-address counts are deleted when they fall to zero, so the map holds
// only addresses with open connections and its size is bounded by Max (Go
// maps keep their high-water capacity, which is then bounded by Max too).
type ConnLimiter struct {
	max, maxPerIP int // negative: no cap
	mask          keyMask

	mu      sync.Mutex  // guards open, invalid and perIP
	open    int         // connections acquired and not released
	invalid int         // of which from invalid addresses (not in perIP)
	perIP   map[key]int // open connections per client key; no zero values
}

// NewConnLimiter returns a ConnLimiter for cfg.
func NewConnLimiter(cfg ConnConfig) *ConnLimiter {
	if cfg.Max == 0 {
		cfg.Max = defaultMaxConns
	}
	if cfg.MaxPerIP == 0 {
		cfg.MaxPerIP = defaultMaxConnsPerIP
	}
	if cfg.IPv6Prefix <= 0 || cfg.IPv6Prefix > 128 {
		cfg.IPv6Prefix = defaultIPv6Prefix
	}
	return &ConnLimiter{
		max:      cfg.Max,
		maxPerIP: cfg.MaxPerIP,
		mask:     newKeyMask(cfg.IPv6Prefix),
		perIP:    make(map[key]int),
	}
}

// Acquire counts a new connection from ip, or returns ErrTooManyConns or
// ErrTooManyConnsPerIP (and counts nothing) if it would exceed a cap. Each
// successful Acquire must be matched by one Release with the same address.
// Invalid addresses (such as Unix socket peers) are subject to Max only.
func (l *ConnLimiter) Acquire(ip netip.Addr) error {
	k := l.mask.keyOf(ip)
	l.mu.Lock()
	if l.max >= 0 && l.open >= l.max {
		l.mu.Unlock()
		connectionsRejectedAll.Inc()
		return ErrTooManyConns
	}
	if k != invalidKey {
		n := l.perIP[k]
		if l.maxPerIP >= 0 && n >= l.maxPerIP {
			l.mu.Unlock()
			connectionsRejectedIP.Inc()
			return ErrTooManyConnsPerIP
		}
		l.perIP[k] = n + 1
	} else {
		l.invalid++
	}
	l.open++
	l.mu.Unlock()
	connectionsOpen.Inc()
	return nil
}

// Release uncounts a connection from ip counted by Acquire. A Release for an
// address with no open connections does nothing, so the counts never go
// negative; but a second Release for one connection would free a slot held by
// another connection from the same address, so callers must release exactly
// once (Track and Listener do).
func (l *ConnLimiter) Release(ip netip.Addr) {
	l.release(l.mask.keyOf(ip))
}

func (l *ConnLimiter) release(k key) {
	l.mu.Lock()
	if k != invalidKey {
		n, ok := l.perIP[k]
		if !ok {
			l.mu.Unlock()
			return
		}
		if n <= 1 {
			delete(l.perIP, k)
		} else {
			l.perIP[k] = n - 1
		}
	} else {
		if l.invalid == 0 {
			l.mu.Unlock()
			return
		}
		l.invalid--
	}
	l.open--
	l.mu.Unlock()
	connectionsOpen.Dec()
}

// Open returns the number of connections acquired and not released.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// OpenFrom returns the number of open connections counted for ip's key.
func (l *ConnLimiter) OpenFrom(ip netip.Addr) int {
	k := l.mask.keyOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[k]
}
