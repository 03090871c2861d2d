package cache

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// Outcome is what Lookup found for a request.
type Outcome uint8

const (
	// Miss: nothing usable is stored. Coalesce, fetch, Store.
	Miss Outcome = iota
	// Hit: a fresh stored response (or one the client's max-stale accepts). Serve it.
	Hit
	// NotModified: a usable stored response matches the client's own
	// If-None-Match / If-Modified-Since. WriteNotModified.
	NotModified
	// Stale: stale within stale-while-revalidate. Serve it; if
	// res.Refresher(), refresh in the background and call res.Done.
	Stale
	// Revalidate: stored but must be validated. Forward with
	// res.SetConditionals; 304 → Refresh then Serve; 2xx → Store; origin
	// error or 5xx with res.StaleOnError() → Serve the stale response.
	Revalidate
	// Pass: the request is not served from cache (method, Range). Forward;
	// after an unsafe method, Invalidate.
	Pass
	// GatewayTimeout: only-if-cached and nothing usable (RFC 9111 §5.2.1.7): 504.
	GatewayTimeout
)

var outcomeNames = [...]string{"miss", "hit", "not_modified", "stale", "revalidate", "pass", "gateway_timeout"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Result carries one lookup's state between the cache calls for a request.
// It is owned by one request at a time; reuse it (AcquireResult /
// ReleaseResult) so the hit path does not allocate.
type Result struct {
	c       *Cache
	out     Outcome
	route   *Route
	epoch   uint64
	head    bool
	ranged  bool // the request has a Range header
	primary []byte
	ikey    []byte
	vkey    []byte
	idxBuf  []byte
	names   []byte
	m       meta
	etag    []byte
	dec     decision
	status  Status
	flight  *Flight
	lmBuf   []byte

	// serve state; the callbacks are bound once so GetFn does not allocate
	resp      *protocol.Response
	serve304  bool
	found     bool
	chunkWant int
	metaFn    func([]byte) error
	serveFn   func([]byte) error
	chunkFn   func([]byte) error
	numBuf    [24]byte
	csBuf     []byte
}

// NewResult returns an empty Result.
func NewResult() *Result {
	r := &Result{
		primary: make([]byte, 0, 128), ikey: make([]byte, 0, 128), vkey: make([]byte, 0, 160),
		idxBuf: make([]byte, 0, 256), etag: make([]byte, 0, 64), csBuf: make([]byte, 0, 96),
	}
	r.metaFn = r.onMeta
	r.serveFn = r.onServe
	r.chunkFn = r.onChunk
	return r
}

var resultPool = sync.Pool{New: func() any { return NewResult() }}

// AcquireResult returns a Result from a pool.
func AcquireResult() *Result { return resultPool.Get().(*Result) }

// ReleaseResult returns r to the pool. r must not be used afterwards, and
// r's refresh (if it was the Refresher) must have been Done.
func ReleaseResult(r *Result) {
	r.flight = nil
	r.resp = nil
	r.c = nil
	r.route = nil
	resultPool.Put(r)
}

// Outcome returns the outcome of the last Lookup.
func (r *Result) Outcome() Outcome { return r.out }

// Key returns the primary cache key (the normalised URL). Valid until the next Lookup.
func (r *Result) Key() []byte { return r.primary }

// Age is the stored response's current age at lookup (RFC 9111 §4.2.3).
func (r *Result) Age() time.Duration { return r.dec.age }

// TTL is freshness lifetime minus age: negative when stale.
func (r *Result) TTL() time.Duration { return r.dec.ttl }

// StaleOnError reports whether the stored response may be served if the
// origin fails or answers 5xx (stale-if-error, the route's grace; never
// with must-revalidate, proxy-revalidate or s-maxage).
func (r *Result) StaleOnError() bool { return r.found && r.dec.staleOnError }

// Refresher reports whether this request is the one to refresh a Stale
// entry in the background; it must call Done when the refresh ends.
func (r *Result) Refresher() bool { return r.flight != nil }

// Done ends this request's background refresh (if it was the Refresher).
func (r *Result) Done(stored bool) {
	if r.flight != nil {
		r.flight.Done(stored)
		r.flight = nil
	}
}

// Status returns the Cache-Status value being built for this request; the
// proxy completes it (FwdStatus, Stored) before Serve or on its own paths.
func (r *Result) Status() *Status { return &r.status }

// ETag returns the stored entity tag (for If-None-Match to the origin).
func (r *Result) ETag() []byte { return r.etag }

// LastModified returns the stored Last-Modified as an HTTP-date, or nil.
func (r *Result) LastModified() []byte {
	if !r.found || r.m.lastMod == 0 {
		return nil
	}
	r.lmBuf = time.Unix(r.m.lastMod, 0).UTC().AppendFormat(r.lmBuf[:0], http.TimeFormat)
	return r.lmBuf
}

// SetConditionals sets If-None-Match / If-Modified-Since on the origin
// request from the stored validators (RFC 9111 §4.3.1).
func (r *Result) SetConditionals(h *protocol.RequestHeader) {
	if len(r.etag) > 0 {
		h.SetCanonical(hdrIfNoneMatch, r.etag)
	}
	if lm := r.LastModified(); lm != nil {
		h.SetCanonical(hdrIfModifiedSince, lm)
	}
}

var (
	hdrIfNoneMatch     = []byte("If-None-Match")
	hdrIfModifiedSince = []byte("If-Modified-Since")
	hdrAge             = []byte("Age")
	hdrCacheStatus     = []byte("Cache-Status")
	hdrDate            = []byte("Date")
)

func (r *Result) reset(c *Cache, route *Route) {
	r.c, r.route, r.out, r.head, r.found, r.flight = c, route, Miss, false, false, nil
	r.ranged = false
	r.dec = decision{}
	r.status = Status{}
	r.names = nil
	r.etag = r.etag[:0]
}

// onMeta decodes the fixed part and the ETag of an entry (freecache GetFn).
func (r *Result) onMeta(v []byte) error {
	if !decodeMeta(v, &r.m) {
		return ErrCorrupt
	}
	r.etag = append(r.etag[:0], v[metaFixed:metaFixed+int(r.m.etagLen)]...)
	return nil
}

// onServe writes the stored status, headers and inline body to r.resp.
func (r *Result) onServe(v []byte) error {
	var m meta
	if !decodeMeta(v, &m) || m.id != r.m.id {
		return ErrNoEntry
	}
	resp := r.resp
	h := &resp.Header
	if r.serve304 {
		h.SetStatusCode(http.StatusNotModified)
	} else {
		h.SetStatusCode(int(m.status))
	}
	hb := v[metaFixed+int(m.etagLen) : m.bodyOffset()]
	for len(hb) > 0 {
		k, val, rest, ok := nextHeader(hb)
		if !ok {
			return ErrCorrupt
		}
		hb = rest
		if r.serve304 && !keep304(k) {
			continue
		}
		switch {
		case eqFold(k, "content-type"), eqFold(k, "content-encoding"), eqFold(k, "server"):
			h.SetCanonical(k, val)
		case eqFold(k, "date"):
			h.SetNoDefaultDate(true)
			h.SetArgBytes(hdrDate, val, false)
		default:
			h.AddArgBytes(k, val, false)
		}
	}
	age := int64(r.dec.age / time.Second)
	h.SetArgBytes(hdrAge, strconv.AppendInt(r.numBuf[:0], age, 10), false)
	r.csBuf = r.status.AppendTo(r.csBuf[:0])
	h.SetArgBytes(hdrCacheStatus, r.csBuf, false)
	if r.serve304 {
		return nil
	}
	if r.head {
		resp.SkipBody = true
		h.SetContentLength(int(m.bodyLen))
		return nil
	}
	if !m.chunked() {
		body := v[m.bodyOffset():]
		if hot := r.c.hot; hot != nil && len(body) >= hotMinBody {
			b := hot.get(m.id)
			if b == nil {
				b = append([]byte(nil), body...)
				hot.put(m.id, b)
			}
			resp.SetBodyRaw(b)
			return nil
		}
		resp.AppendBody(body)
	}
	return nil
}

// keep304 lists the fields a 304 carries (RFC 9110 §15.4.5).
func keep304(k []byte) bool {
	return eqFold(k, "cache-control") || eqFold(k, "content-location") || eqFold(k, "date") ||
		eqFold(k, "etag") || eqFold(k, "expires") || eqFold(k, "vary") || eqFold(k, "last-modified") ||
		eqFold(k, "cdn-cache-control")
}

// onChunk appends one body chunk.
func (r *Result) onChunk(v []byte) error {
	if len(v) != r.chunkWant {
		return ErrCorrupt
	}
	r.resp.AppendBody(v)
	return nil
}

// Serve writes the stored response found by Lookup (Hit, Stale, or after
// Refresh / on origin error for Revalidate) into resp: status, stored
// headers, Age, Cache-Status and body (HEAD: Content-Length only). On
// ErrNoEntry (evicted or replaced since Lookup) resp's body is reset and the
// caller fetches as on a miss.
func (c *Cache) Serve(res *Result, resp *protocol.Response) error {
	if !res.found {
		return ErrNoEntry
	}
	res.resp, res.serve304 = resp, false
	err := c.fc.GetFn(res.vkey, res.serveFn)
	if err == nil && res.m.chunked() && !res.head {
		if b := c.hotBody(res.m.id); b != nil {
			resp.SetBodyRaw(b)
		} else if err = c.readChunks(res); err == nil && c.hot != nil && res.m.bodyLen >= hotMinBody {
			b := append([]byte(nil), resp.Body()...)
			c.hot.put(res.m.id, b)
		}
	}
	res.resp = nil
	if err != nil {
		resp.ResetBody()
		return ErrNoEntry
	}
	return nil
}

// WriteNotModified writes a 304 for the stored response (NotModified).
func (c *Cache) WriteNotModified(res *Result, resp *protocol.Response) error {
	if !res.found {
		return ErrNoEntry
	}
	res.resp, res.serve304 = resp, true
	err := c.fc.GetFn(res.vkey, res.serveFn)
	res.resp, res.serve304 = nil, false
	if err != nil {
		return ErrNoEntry
	}
	return nil
}
