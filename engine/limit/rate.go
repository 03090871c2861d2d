package limit

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"
)

// Defaults of RateConfig, used for zero fields.
const (
	// defaultRate is the product default of 1000 requests per minute.
	defaultRate = 1000.0 / 60.0
	// defaultBurst lets a cold page load through unthrottled: a median web
	// page makes about 70 requests (HTTP Archive, 2024), nearly all in its
	// first second or two, so 100 covers it, while one address flooding is
	// held to 100 requests plus 16.7 per second.
	defaultBurst = 100
	// defaultMaxClients bounds memory to 65536 × 40 bytes = 2.5 MiB.
	defaultMaxClients = 65536
	// defaultIPv6Prefix: one host or end site owns at least a /64
	// (RFC 7421, RFC 6177) and can pick any address in it.
	defaultIPv6Prefix = 64
	// defaultOffenderThreshold and defaultOffenderWindow flag a client that
	// keeps going after being told to wait: 300 rejections in 30 s is ten
	// refused requests a second for half a minute, which no client honouring
	// Retry-After produces, and which a flood reaches in well under a second.
	defaultOffenderThreshold = 300
	defaultOffenderWindow    = 30 * time.Second
)

// RateConfig configures a RateLimiter. The zero value of each field selects
// its default.
type RateConfig struct {
	// Rate is the sustained rate in tokens (requests) per second. If zero,
	// 1000 per minute is used. At most 1e9 (one per nanosecond); the
	// interval between tokens is rounded to whole nanoseconds.
	Rate float64
	// Burst is the bucket size: how many requests a client with a full
	// bucket may make at once. If zero, 100 is used.
	Burst int
	// MaxClients bounds the number of clients tracked at once. If zero,
	// 65536 is used. It is rounded down to a multiple of the table's
	// geometry (no change for powers of two from 8192 up).
	MaxClients int
	// IPv6Prefix is the prefix length by which IPv6 clients are keyed. If
	// zero, 64 is used.
	IPv6Prefix int
	// OffenderThreshold and OffenderWindow: a client rejected at least
	// OffenderThreshold times within one OffenderWindow is reported to
	// OnOffender. If zero, 300 and 30s are used. The window is fixed: it
	// starts at the client's first rejection after the previous one ended.
	OffenderThreshold int
	OffenderWindow    time.Duration
	// OnOffender, if not nil, is called with the client's address (unmapped;
	// use ClientPrefix for the whole keyed prefix) at most once per window
	// per client, and never for the zero Addr. It runs on the goroutine calling Allow, without the
	// limiter's locks held, so it may call the limiter, but it should not
	// block: hand the address to a queue (for the kernel deny map).
	OnOffender func(netip.Addr)
}

// RateLimiter limits requests per client address with a token bucket per
// client, kept in a bounded table (see table.go). Safe for concurrent use.
//
// The bucket is implemented as GCRA, the generic cell rate algorithm (ITU-T
// I.371): one integer per client, the theoretical arrival time tat of the
// next request if the client sent at exactly Rate. A request at now is
// allowed if max(tat, now) + T − now ≤ Burst × T, where T = 1/Rate, and then
// advances tat by T. That is exactly a token bucket of Burst tokens refilled
// at Rate, in integer nanoseconds, so step tables are exact.
type RateLimiter struct {
	t         *table
	mask      keyMask
	interval  int64 // T, ns per token
	limit     int64 // Burst × T
	threshold int32
	window    int64
	prefix    int
	onOff     func(netip.Addr)
	closed    atomic.Bool
}

// NewRateLimiter returns a RateLimiter for cfg, or an error if a field is out
// of range.
func NewRateLimiter(cfg RateConfig) (*RateLimiter, error) {
	if cfg.Rate == 0 {
		cfg.Rate = defaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = defaultBurst
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = defaultMaxClients
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = defaultIPv6Prefix
	}
	if cfg.OffenderThreshold == 0 {
		cfg.OffenderThreshold = defaultOffenderThreshold
	}
	if cfg.OffenderWindow == 0 {
		cfg.OffenderWindow = defaultOffenderWindow
	}
	switch {
	case math.IsNaN(cfg.Rate) || cfg.Rate < 0 || cfg.Rate > 1e9:
		return nil, ErrBadRate
	case cfg.Burst < 0:
		return nil, ErrBadBurst
	case cfg.MaxClients < 0:
		return nil, ErrBadMaxClients
	case cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128:
		return nil, ErrBadIPv6Prefix
	case cfg.OffenderThreshold < 0 || cfg.OffenderWindow < 0 || cfg.OffenderThreshold > math.MaxInt32:
		return nil, ErrBadOffender
	}
	// Round, not truncate: 1e9 / (1000/60.0) is 59999999.99999999 in
	// floating point and must be 60ms.
	interval := math.Round(1e9 / cfg.Rate)
	// Keep Burst×T and now + Burst×T far from overflowing int64 (~292 years).
	if interval*float64(cfg.Burst) > float64(100*365*24*time.Hour) {
		return nil, ErrBadBucket
	}
	return &RateLimiter{
		t:         newTable(cfg.MaxClients),
		mask:      newKeyMask(cfg.IPv6Prefix),
		interval:  int64(interval),
		limit:     int64(interval) * int64(cfg.Burst),
		threshold: int32(cfg.OffenderThreshold),
		window:    int64(cfg.OffenderWindow),
		prefix:    cfg.IPv6Prefix,
		onOff:     cfg.OnOffender,
	}, nil
}

// Allow reports whether the client at ip may make a request at now, taking a
// token if so. If not, retryAfter is the time until one token is available
// (round it up to whole seconds for a Retry-After header, RFC 9110 section
// 10.2.3). Invalid addresses share one bucket. Allow does not allocate.
func (l *RateLimiter) Allow(ip netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	k := l.mask.keyOf(ip)
	h := l.t.hash(k)
	s := l.t.shardOf(h)
	n := now.UnixNano()

	s.mu.Lock()
	e, res := l.t.lookup(s, k, h, n)
	tat := max(e.tat, n) + l.interval
	if d := tat - n - l.limit; d > 0 {
		report := l.strike(e, n)
		s.mu.Unlock()
		countLookup(res)
		requestsRejected.Inc()
		if report {
			offendersReported.Inc()
			if l.onOff != nil && ip.IsValid() {
				l.onOff(ip.Unmap())
			}
		}
		return false, time.Duration(d)
	}
	e.tat = tat
	s.mu.Unlock()
	countLookup(res)
	return true, 0
}

// strike records a rejection of e at now and reports whether e has just
// reached the offender threshold in its window. The caller holds the lock.
func (l *RateLimiter) strike(e *entry, now int64) bool {
	if e.strikes == 0 || now-e.winStart >= l.window || now < e.winStart {
		e.winStart, e.strikes, e.reported = now, 0, false
	}
	if e.strikes < math.MaxInt32 {
		e.strikes++
	}
	if e.strikes >= l.threshold && !e.reported {
		e.reported = true
		return true
	}
	return false
}

// countLookup updates the table metrics after a lookup, outside the lock.
func countLookup(res int) {
	switch res {
	case lookupNew:
		clientsTracked.Inc()
	case lookupEvictedIdle:
		evictionsIdle.Inc()
	case lookupEvictedActive:
		evictionsActive.Inc()
	}
}

// ClientPrefix returns the prefix ip is keyed by: the address itself for
// IPv4 (and IPv4-mapped IPv6), the configured prefix for IPv6. Escalation to
// the kernel deny list should deny this prefix, not just the address.
func (l *RateLimiter) ClientPrefix(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	return netip.PrefixFrom(ip, l.prefix).Masked()
}

// Len returns the number of clients tracked.
func (l *RateLimiter) Len() int { return l.t.len() }

// Cap returns the most clients the limiter tracks at once (MaxClients after
// rounding).
func (l *RateLimiter) Cap() int { return l.t.capacity() }

// Close withdraws the limiter's clients from the clients_tracked gauge. Call
// it when a reload replaces the limiter; Allow must not be called after.
// Calls after the first do nothing.
func (l *RateLimiter) Close() {
	if l.closed.CompareAndSwap(false, true) {
		clientsTracked.Sub(float64(l.Len()))
	}
}
