// Package cache is edgeloop's HTTP response cache: a shared cache in the
// sense of RFC 9111 on top of freecache, with request coalescing, stale
// serving (RFC 5861), pre-compressed variants, purge by URL, prefix and
// surrogate key, and Cache-Status (RFC 9211).
//
// A proxy handler uses it in three steps:
//
//	res := cache.AcquireResult(); defer cache.ReleaseResult(res)
//	switch c.Lookup(req, route, res) {
//	case cache.Hit, cache.Stale:   // Stale: if res.Refresher(), refresh in the background, then res.Done
//		c.Serve(res, resp)
//	case cache.NotModified:
//		c.WriteNotModified(res, resp)
//	case cache.Revalidate:         // res.SetConditionals(upstreamReq); 304 → c.Refresh + c.Serve;
//		...                        // error or 5xx with res.StaleOnError() → c.Serve
//	case cache.Miss:               // f, leader := c.Coalesce(res); leader fetches and Stores (or Fill)
//		...                        // and calls f.Done; the others f.Wait and Lookup again
//	case cache.Pass:               // forward; after an unsafe method, c.Invalidate
//	case cache.GatewayTimeout:     // only-if-cached: answer 504
//	}
//
// The hit path (Lookup + Serve) does not allocate.
package cache

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/coocood/freecache"
)

// Defaults for a zero Config.
const (
	defaultSize          = 256 << 20
	defaultDefaultTTL    = 300 * time.Second
	defaultMaxObjectSize = 64 << 20
	defaultCoalesceWait  = 5 * time.Second
	defaultRetain        = time.Hour
	defaultMaxURLs       = 1 << 18
	minSize              = 512 << 10 // freecache's minimum
)

// Config configures a Cache. The zero value is usable: every zero field
// takes the documented default.
type Config struct {
	// Size is the freecache memory in bytes. If zero, 256 MiB is used.
	// freecache holds entries up to Size/1024 bytes; larger bodies are
	// stored in chunks. Minimum 512 KiB.
	Size int
	// DefaultTTL is the freshness given to 200, 301 and 404 responses that
	// have neither explicit nor heuristic freshness, on routes that opt in
	// with Route.DefaultTTL (nginx proxy_cache_valid). If zero, 300s.
	DefaultTTL time.Duration
	// MaxObjectSize is the largest body stored; bigger ones pass uncached
	// and are counted. If zero, 64 MiB.
	MaxObjectSize int64
	// CoalesceWait bounds how long a request waits for another request's
	// fill of the same URL before fetching by itself. If zero, 5s.
	CoalesceWait time.Duration
	// StaleIfError is the default grace during which a stale response is
	// served when the origin is down or answers 5xx (a route may override
	// it). If zero, no grace beyond the response's stale-if-error.
	StaleIfError time.Duration
	// Retain is how long an entry with a validator is kept after it went
	// stale, so it can be revalidated with a conditional request instead of
	// refetched. freecache may evict it sooner. If zero, 1h.
	Retain time.Duration
	// MaxURLs bounds the URL index used by prefix and surrogate-key purge.
	// When it is full of live URLs, new URLs are not stored (counted) so that
	// nothing cached is unpurgeable. If zero, 262144.
	MaxURLs int
	// Shared selects shared-cache semantics. edgeloop always is a shared
	// cache (s-maxage, proxy-revalidate, no private responses); the value
	// is accepted for documentation and ignored.
	Shared bool

	// Now returns the current time. If nil, time.Now. For tests; it also
	// drives freecache's expiry clock.
	Now func() time.Time
	// After returns a channel that fires after d (the CoalesceWait timer).
	// If nil, time.After. For tests.
	After func(d time.Duration) <-chan time.Time
}

// Route is a route's cache policy, passed per request by the proxy. A nil
// *Route means the defaults.
type Route struct {
	// DefaultTTL enables Config.DefaultTTL for this route.
	DefaultTTL bool
	// TTL, when positive, is this route's own default TTL (it implies
	// DefaultTTL and replaces Config.DefaultTTL for the route).
	TTL time.Duration
	// StaleIfError overrides Config.StaleIfError when non-zero; negative
	// disables the grace.
	StaleIfError time.Duration
}

func (r *Route) defaultTTL(cfg time.Duration) time.Duration {
	switch {
	case r == nil:
		return 0
	case r.TTL > 0:
		return r.TTL
	case !r.DefaultTTL:
		return 0
	}
	return cfg
}

func (c *Cache) grace(r *Route) time.Duration {
	if r == nil || r.StaleIfError == 0 {
		return c.cfg.StaleIfError
	}
	if r.StaleIfError < 0 {
		return 0
	}
	return r.StaleIfError
}

// Cache is an HTTP response cache. It is safe for concurrent use.
type Cache struct {
	cfg        Config
	fc         *freecache.Cache
	now        func() time.Time
	entryLimit int           // largest key+value of one freecache entry
	gen        atomic.Uint64 // entry ids, chunk and index generations
	epoch      atomic.Uint64 // bumped by every purge; fills started before are dropped
	closed     atomic.Bool
	co         coalescer
	urls       *urlIndex
	hot        *hotBodies // nil for caches too small to spare the memory
}

type clockTimer struct{ now func() time.Time }

func (t clockTimer) Now() uint32 { return uint32(t.now().Unix()) }

// New validates cfg, applies defaults and returns a Cache.
func New(cfg Config) (*Cache, error) {
	switch {
	case cfg.Size < 0:
		return nil, fmt.Errorf("%w: size %d is negative", ErrBadConfig, cfg.Size)
	case cfg.Size > 0 && cfg.Size < minSize:
		return nil, fmt.Errorf("%w: size %d below freecache's minimum %d", ErrBadConfig, cfg.Size, minSize)
	case cfg.DefaultTTL < 0, cfg.CoalesceWait < 0, cfg.StaleIfError < 0, cfg.Retain < 0:
		return nil, fmt.Errorf("%w: negative duration", ErrBadConfig)
	case cfg.MaxObjectSize < 0, cfg.MaxURLs < 0:
		return nil, fmt.Errorf("%w: negative limit", ErrBadConfig)
	}
	if cfg.Size == 0 {
		cfg.Size = defaultSize
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = defaultDefaultTTL
	}
	if cfg.MaxObjectSize == 0 {
		cfg.MaxObjectSize = defaultMaxObjectSize
	}
	if cfg.CoalesceWait == 0 {
		cfg.CoalesceWait = defaultCoalesceWait
	}
	if cfg.Retain == 0 {
		cfg.Retain = defaultRetain
	}
	if cfg.MaxURLs == 0 {
		cfg.MaxURLs = defaultMaxURLs
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	c := &Cache{
		cfg:        cfg,
		fc:         freecache.NewCacheCustomTimer(cfg.Size, clockTimer{cfg.Now}),
		now:        cfg.Now,
		entryLimit: maxEntry(cfg.Size),
		urls:       newURLIndex(cfg.MaxURLs),
		hot:        newHotBodies(cfg.Size),
	}
	c.gen.Store(uint64(cfg.Now().UnixNano()))
	c.co.init(cfg.CoalesceWait, cfg.After)
	register(c)
	return c, nil
}

// Close drops all entries and stops reporting metrics for c. Lookups after
// Close miss; stores fail with ErrClosed.
func (c *Cache) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	unregister(c)
	c.fc.Clear()
	if c.hot != nil {
		c.hot.clear()
	}
	return nil
}

// EntryLimit is the largest body+headers stored as one freecache entry;
// larger objects are chunked.
func (c *Cache) EntryLimit() int { return c.entryLimit }

// Lookup finds the stored response for req (RFC 9111 §4) and decides how
// it may be used, filling res. It does not allocate on hits.
func (c *Cache) Lookup(req *protocol.Request, route *Route, res *Result) Outcome {
	res.reset(c, route)
	res.epoch = c.epoch.Load()
	out := c.lookup(req, res)
	res.out = out
	countOutcome(out)
	return out
}

func (c *Cache) lookup(req *protocol.Request, res *Result) Outcome {
	h := &req.Header
	method := h.Method()
	switch {
	case eqFold(method, "get"):
	case eqFold(method, "head"):
		res.head = true
	default:
		res.status.Fwd = FwdMethod
		return Pass
	}
	res.ranged = len(h.Peek("Range")) > 0
	res.primary = AppendKey(res.primary[:0], req)
	var rd Directives
	rd.Reset()
	cc := h.Peek("Cache-Control")
	rd.Parse(cc)
	reqNoCache := rd.Has(FlagNoCache) || (len(cc) == 0 && hasToken(h.Peek("Pragma"), "no-cache"))
	miss := func(f Fwd) Outcome {
		res.status.Fwd = f
		if rd.Has(FlagOnlyIfCached) {
			return GatewayTimeout
		}
		if res.ranged {
			// A partial answer is not stored: pass the range on.
			res.status.Fwd, res.status.Detail = FwdBypass, "range"
			return Pass
		}
		return Miss
	}
	if c.closed.Load() {
		return miss(FwdURIMiss)
	}
	res.ikey = append(append(res.ikey[:0], 'i'), res.primary...)
	v, err := c.fc.GetWithBuf(res.ikey, res.idxBuf[:cap(res.idxBuf)])
	if err != nil {
		return miss(FwdURIMiss)
	}
	res.idxBuf = v
	var ix index
	if !decodeIndex(v, &ix, false) {
		return miss(FwdURIMiss)
	}
	res.names = ix.names
	res.vkey = appendEntryKey(res.vkey[:0], res.primary, ix.gen, nil)
	codingAt := len(res.vkey)
	res.vkey = appendVaryValues(append(res.vkey, 0), h, ix.names)
	accepted, _ := acceptedCodings(h.Peek("Accept-Encoding"))
	for cd := uint8(0); cd < numCodings && !res.found; cd++ {
		if ix.codings&(1<<cd) == 0 || (accepted&(1<<cd) == 0 && cd != codingIdentity) {
			continue
		}
		res.vkey[codingAt] = cd
		res.found = c.fc.GetFn(res.vkey, res.metaFn) == nil
	}
	if !res.found {
		return miss(FwdVaryMiss)
	}
	res.dec = decide(&res.m.fresh, &rd, reqNoCache, c.now(), c.grace(res.route))
	res.status.TTL, res.status.HasTTL = int64(res.dec.ttl/time.Second), true
	switch res.dec.kind {
	case decHit:
		res.status.Hit = true
		if res.dec.maxStale {
			res.status.Detail = "max-stale"
		}
		if c.clientNotModified(h, res) {
			return NotModified
		}
		return Hit
	case decSWR:
		res.status.Hit, res.status.Detail = true, "stale-while-revalidate"
		res.flight = c.co.tryRefresh(res.vkey)
		if c.clientNotModified(h, res) {
			return NotModified
		}
		return Stale
	}
	if res.dec.byRequest {
		res.status.Fwd = FwdRequest
	} else {
		res.status.Fwd = FwdStale
	}
	if rd.Has(FlagOnlyIfCached) {
		return GatewayTimeout
	}
	if res.ranged {
		res.status.Fwd, res.status.Detail = FwdBypass, "range"
		return Pass
	}
	return Revalidate
}

// clientNotModified evaluates the client's own conditionals against the
// stored response (RFC 9110 §13.2.2): If-None-Match with weak comparison
// first; otherwise If-Modified-Since against Last-Modified.
func (c *Cache) clientNotModified(h *protocol.RequestHeader, res *Result) bool {
	if inm := h.Peek("If-None-Match"); len(inm) > 0 {
		return etagListMatch(inm, res.etag)
	}
	ims := h.Peek("If-Modified-Since")
	if len(ims) == 0 || res.m.lastMod == 0 {
		return false
	}
	t := parseHTTPDate(ims)
	return !t.IsZero() && res.m.lastMod <= t.Unix()
}

// etagListMatch reports whether the If-None-Match list matches etag by weak
// comparison (RFC 9110 §8.8.3.2); "*" matches any stored response.
func etagListMatch(list, etag []byte) bool {
	if len(trimOWS(list)) == 1 && trimOWS(list)[0] == '*' {
		return true
	}
	if len(etag) == 0 {
		return false
	}
	want := weakless(etag)
	for len(list) > 0 {
		i := indexByte(list, ',')
		if i < 0 {
			i = len(list)
		}
		if string(weakless(trimOWS(list[:i]))) == string(want) {
			return true
		}
		if i == len(list) {
			break
		}
		list = list[i+1:]
	}
	return false
}

func weakless(t []byte) []byte {
	if len(t) > 2 && t[0] == 'W' && t[1] == '/' {
		return t[2:]
	}
	return t
}
