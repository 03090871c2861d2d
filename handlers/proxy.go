package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/pool"
)

// Defaults for the zero value of ProxyConfig.
const (
	defaultProxyTimeout = 30 * time.Second
	defaultFailTimeout  = 10 * time.Second
	defaultMaxFails     = 1

	// HostPreserve sends the client's Host to the origin (Varnish, HAProxy).
	HostPreserve = "preserve"
	// HostUpstream sends the upstream's host[:port] (nginx's default).
	HostUpstream = "upstream"
)

// ProxyConfig configures one reverse-proxy route. Its zero value, apart
// from Upstreams, is the documented default of each field.
type ProxyConfig struct {
	// Route names the route in metrics.
	Route string
	// Upstreams are "http://host:port" URLs. Only these are ever dialled.
	Upstreams []string
	// Timeout bounds the wait for the upstream response head after the
	// request was sent, and each later wait for body bytes; after it the
	// client gets 504. If zero, 30s is used.
	Timeout time.Duration
	// FailTimeout is how long an upstream is skipped after MaxFails
	// consecutive failed connects (refused, unreachable, timed out).
	// If zero, 10s is used.
	FailTimeout time.Duration
	// MaxFails is the number of consecutive failed connects that mark an
	// upstream down. If zero, 1 is used.
	MaxFails int
	// HostHeader is HostPreserve (the default when empty) or HostUpstream.
	HostHeader string
	// Pool configures each upstream's connection pool.
	Pool pool.UpstreamConfig

	// Cache, when set, caches the route's responses (RFC 9111; see
	// proxy_cache.go). One Cache is shared by every cached route of a
	// process. Nil: the route does not cache.
	Cache *cache.Cache
	// CacheRoute is the route's cache policy. Nil: the cache's defaults.
	CacheRoute *cache.Route
	// PurgeAllow lists the client networks whose PURGE requests a cached
	// route honours. Empty: PURGE is answered 403.
	PurgeAllow []netip.Prefix
	// Compress, when set on a cached route, is the compression middleware
	// (engine/compress). A cache hit on a stored identity response for a
	// client that accepts a coding is coded by it once, in place, and the
	// coded bytes are stored as a variant, so later hits cost no
	// compression. Nil: hits are served as stored.
	Compress app.HandlerFunc
}

// Proxy is a reverse-proxy route: it forwards requests to its upstreams
// with keep-alive pools, streams bodies both ways, and answers 502/504 with
// a short reason when the origin is down or slow. It is safe for
// concurrent use.
type Proxy struct {
	route       string
	timeout     time.Duration
	hostUp      bool
	bal         balancer
	now         func() time.Time // testing
	headWriters sync.Pool        // *requestHeadWriter

	cache      *cache.Cache // nil: not cached
	cacheRoute *cache.Route
	purgeAllow []netip.Prefix
	compress   app.HandlerFunc
}

// NewProxy validates cfg and builds the route's upstream pools.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, ErrNoUpstreams
	}
	if cfg.Timeout < 0 || cfg.FailTimeout < 0 || cfg.MaxFails < 0 {
		return nil, fmt.Errorf("%w: negative timeout or max fails", ErrBadProxyConfig)
	}
	p := &Proxy{route: cfg.Route, timeout: cfg.Timeout, now: time.Now,
		cache: cfg.Cache, cacheRoute: cfg.CacheRoute, purgeAllow: cfg.PurgeAllow, compress: cfg.Compress}
	if p.timeout == 0 {
		p.timeout = defaultProxyTimeout
	}
	switch cfg.HostHeader {
	case "", HostPreserve:
	case HostUpstream:
		p.hostUp = true
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadHostHeader, cfg.HostHeader)
	}
	p.bal.maxFails = int32(cfg.MaxFails)
	if p.bal.maxFails == 0 {
		p.bal.maxFails = defaultMaxFails
	}
	p.bal.failTimeout = int64(cfg.FailTimeout)
	if cfg.FailTimeout == 0 {
		p.bal.failTimeout = int64(defaultFailTimeout)
	}
	for _, raw := range cfg.Upstreams {
		up, err := pool.NewUpstream(raw, cfg.Pool)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("route %q: %w", cfg.Route, err)
		}
		name := up.Addr()
		p.bal.backends = append(p.bal.backends, &backend{up: up, name: name,
			host: []byte(strings.TrimSuffix(name, ":80")), m: newBackendMetrics(cfg.Route, name)})
	}
	p.headWriters.New = func() any { return new(requestHeadWriter) }
	return p, nil
}

// Close closes the route's idle upstream connections and stops their
// sweepers; responses in flight finish on their connections.
func (p *Proxy) Close() error {
	for _, be := range p.bal.backends {
		be.up.Close()
	}
	return nil
}

// Stats returns the pool statistics of each upstream, by host:port.
func (p *Proxy) Stats() map[string]pool.Stats {
	m := make(map[string]pool.Stats, len(p.bal.backends))
	for _, be := range p.bal.backends {
		m[be.name] = be.up.Stats()
	}
	return m
}

// Handle is the route's hertz handler.
func (p *Proxy) Handle(ctx context.Context, c *app.RequestContext) {
	if p.cache != nil {
		p.handleCached(ctx, c)
		return
	}
	resp, status, reason := p.fetch(ctx, c)
	if resp == nil {
		writeError(c, status, reason)
		return
	}
	copyResponseHead(&c.Response.Header, resp)
	p.sendBody(c, resp)
}

// fetch sends the request to an upstream and reads the response head. On
// failure it returns a nil response and the status and reason for the
// client; nothing has been written to c.Response.
func (p *Proxy) fetch(ctx context.Context, c *app.RequestContext) (*pool.Response, int, string) {
	be, cc, status, reason := p.connect(ctx)
	if be == nil {
		return nil, status, reason
	}
	resp, err := p.exchange(ctx, c, be, cc)
	if err != nil {
		reason, status := readReason(err)
		if status == 504 {
			be.m.timeout.Inc()
		} else {
			be.m.failed.Inc()
		}
		return nil, status, reason
	}
	be.m.ok.Inc()
	if resp.StatusCode == 101 {
		resp.Body.Close()
		return nil, 502, reasonUpgrade
	}
	return resp, 0, ""
}

// sendBody hands the upstream body to hertz (the head is already copied).
func (p *Proxy) sendBody(c *app.RequestContext, resp *pool.Response) {
	if resp.Body.Done() {
		// No body (HEAD, 204, 304, empty): keep the declared length for
		// HEAD and give the connection back now.
		if string(c.Request.Header.Method()) == "HEAD" && resp.ContentLength >= 0 {
			c.Response.Header.SetContentLength(int(resp.ContentLength))
		}
		resp.Body.Close()
		return
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= smallBodyMax {
		readSmallBody(c, resp)
		return
	}
	// hertz copies the stream to the client and closes it when done or
	// when the client went away; Close returns or drops the connection.
	c.Response.SetBodyStream(resp.Body, int(resp.ContentLength))
}

// smallBodyMax is the largest body with a declared length that is read
// whole before the response goes out. hertz then writes head and body in
// one write instead of flushing the head and copying a stream (one syscall
// per response instead of two or more: measured as the proxy's main cost
// with 1 KiB bodies), and an origin that stops mid-body gets the client a
// clean 502 instead of a cut response. Larger bodies stream, so memory per
// request stays bounded by this.
const smallBodyMax = 32 << 10

// readSmallBody reads a declared-length body into hertz's pooled response
// buffer and gives the upstream connection back.
func readSmallBody(c *app.RequestContext, resp *pool.Response) {
	n := int(resp.ContentLength)
	buf := c.Response.BodyBuffer()
	b := buf.B[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	var err error
	for len(b) < n && err == nil {
		var m int
		m, err = resp.Body.Read(b[len(b):n])
		b = b[:len(b)+m]
	}
	buf.B = b
	resp.Body.Close()
	if len(b) < n {
		reason, status := readReason(err)
		writeError(c, status, reason)
	}
}

// connect picks a backend and gets a connection to it, retrying once on
// another backend when the connect failed: nothing reached the origin, so
// this is safe whatever the method. On failure it returns a nil backend and
// the client's status and reason.
func (p *Proxy) connect(ctx context.Context) (*backend, *pool.Conn, int, string) {
	var skip *backend
	for attempt := 0; attempt < 2; attempt++ {
		var now int64 // healthy backends have downUntil 0
		if p.bal.anyDown() {
			now = p.now().UnixNano()
		}
		be := p.bal.pick(now, skip)
		if be == nil {
			break
		}
		cc, err := be.up.Acquire(ctx, false)
		if err == nil {
			p.bal.succeeded(be)
			return be, cc, 0, ""
		}
		if !errors.Is(err, pool.ErrDial) {
			be.m.failed.Inc()
			return nil, nil, 502, reasonPoolBusy
		}
		be.m.dialError.Inc()
		p.bal.failed(be, p.now().UnixNano())
		if attempt == 1 || len(p.bal.backends) == 1 {
			return nil, nil, 502, dialReason(err)
		}
		skip = be
	}
	return nil, nil, 502, reasonUnreachable
}

// exchange sends the request on cc and reads the response head. A pooled
// connection the origin had already closed is replaced by a fresh one once,
// when the request body can be sent again (none, or held in memory).
func (p *Proxy) exchange(ctx context.Context, c *app.RequestContext, be *backend, cc *pool.Conn) (*pool.Response, error) {
	req := &c.Request
	bodyLen := int64(req.Header.ContentLength())
	streamed := req.IsBodyStream()
	var mem []byte
	switch {
	case bodyLen == -1: // hertz: Transfer-Encoding: chunked
		bodyLen = pool.Chunked
	case bodyLen <= 0: // 0, or hertz's -2: neither Content-Length nor chunked
		streamed = false
		bodyLen = pool.NoBody
		if methodHasBody(req.Header.Method()) {
			bodyLen = 0
		}
	case !streamed:
		mem = req.Body()
		bodyLen = int64(len(mem))
	}
	replayable := !streamed || bodyLen == pool.NoBody || bodyLen == 0
	isHead := string(req.Header.Method()) == "HEAD"
	host := req.Header.Host()
	if p.hostUp || len(host) == 0 {
		host = be.host
	}
	for retried := false; ; retried = true {
		w := p.headWriters.Get().(*requestHeadWriter)
		w.cc = cc
		w.writeRequestHead(c, host, bodyLen)
		w.cc, w.connList = nil, nil
		p.headWriters.Put(w)
		var err error
		if streamed && bodyLen != pool.NoBody {
			err = cc.SendBody(req.BodyStream(), bodyLen, 0)
		} else {
			err = cc.SendBodyBytes(mem, 0)
		}
		sent := p.now()
		var resp *pool.Response
		if err == nil {
			resp, err = cc.ReadResponse(p.timeout, isHead)
		}
		if err == nil {
			be.m.seconds.Observe(p.now().Sub(sent).Seconds())
			return resp, nil
		}
		stale := cc.Reused() && (errors.Is(err, pool.ErrStaleConn) || isWriteErr(err))
		cc.Release()
		if retried || !stale || !replayable {
			if !errors.Is(err, pool.ErrStaleConn) && isWriteErr(err) {
				return nil, errWrite
			}
			return nil, err
		}
		if cc, err = be.up.Acquire(ctx, true); err != nil {
			return nil, err
		}
	}
}

var errWrite = errors.New("handlers: upstream write failed")

func isWriteErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "write"
}

// methodHasBody reports whether an empty body must still be framed with
// Content-Length: 0 (RFC 9110 §8.6: a user agent should send it for methods
// that define a body).
func methodHasBody(m []byte) bool {
	s := string(m)
	return s == "POST" || s == "PUT" || s == "PATCH"
}
