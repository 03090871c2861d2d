package handlers

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/pool"
)

// A cached route follows the cache's outcome switch (package cache):
//
//   - Hit: the stored response is written from the cache (no allocation),
//     with Age and Cache-Status; an identity hit for a client accepting a
//     coding is coded once by the compression middleware and the coded
//     bytes stored as a variant (compressOnce).
//   - NotModified: the client's own validators match: 304 from the cache.
//   - Stale (stale-while-revalidate): served stale; one request per entry
//     starts a background conditional refresh.
//   - Revalidate: forwarded with If-None-Match / If-Modified-Since from the
//     stored response; a 304 refreshes the stored headers and the stored
//     body is served (RFC 9111 §4.3.3-4); an origin that is down or answers
//     5xx gets the stale copy when stale-if-error or the route's grace
//     allows (RFC 5861 §4).
//   - Miss: concurrent misses for a URL are coalesced: one request goes to
//     the origin, its body streams to its client and into the cache at the
//     same time, and the others wait (bounded) and are served from the
//     stored copy.
//   - Pass: forwarded as is; a successful unsafe method invalidates the URL
//     and its Location / Content-Location (RFC 9111 §4.4). A Range request
//     is served from a Hit or Stale copy, cut to its range (serveRange), and
//     otherwise passed on, its partial answer not stored.
//   - GatewayTimeout: only-if-cached and nothing usable: 504.
//
// Every response of a cached route carries Cache-Status (RFC 9211).

const (
	reasonOnlyIfCached   = "504 Gateway Timeout: not in cache (only-if-cached)\n"
	reasonPurgeForbidden = "403 Forbidden: PURGE is not allowed from this address\n"
	detailStaleIfError   = "stale-if-error"
)

var (
	hdrCacheStatus       = []byte("Cache-Status")
	hdrIfNoneMatch       = []byte("If-None-Match")
	hdrIfModifiedSince   = []byte("If-Modified-Since")
	hdrSurrogateKey      = []byte("Surrogate-Key")
	hdrCacheTag          = []byte("Cache-Tag")
	hdrAcceptEncodingReq = "Accept-Encoding"
	jsonType             = []byte("application/json")
)

// handleCached serves a request on a cached route.
func (p *Proxy) handleCached(ctx context.Context, c *app.RequestContext) {
	if pool.EqualFold(c.Request.Header.Method(), "PURGE") {
		p.purge(c)
		return
	}
	res := cache.AcquireResult()
	defer cache.ReleaseResult(res)
	p.serveOutcome(ctx, c, res, p.cache.Lookup(&c.Request, p.cacheRoute, res), false)
}

// serveOutcome acts on a Lookup outcome. waited is set after this request
// waited for another one's fill, so it does not coalesce a second time.
func (p *Proxy) serveOutcome(ctx context.Context, c *app.RequestContext, res *cache.Result, out cache.Outcome, waited bool) {
	switch out {
	case cache.Hit:
		if p.cache.Serve(res, &c.Response) == nil {
			if res.Ranged() {
				serveRange(c)
				return
			}
			p.compressOnce(ctx, c, res)
			return
		}
	case cache.NotModified:
		if p.cache.WriteNotModified(res, &c.Response) == nil {
			return
		}
	case cache.Stale:
		// Serve the stale copy before the refresh starts: a refresh that
		// finished first would replace the entry this request reads.
		f := res.TakeRefresh()
		served := p.cache.Serve(res, &c.Response) == nil
		if f != nil {
			p.refreshInBackground(c, f)
		}
		if served {
			if res.Ranged() {
				serveRange(c)
			}
			return
		}
	case cache.Revalidate:
		p.revalidate(ctx, c, res)
		return
	case cache.Pass:
		p.pass(ctx, c, res)
		return
	case cache.GatewayTimeout:
		p.fail(c, res, 504, reasonOnlyIfCached)
		return
	}
	// A miss, or the entry went away between Lookup and Serve.
	c.Response.Reset()
	if res.Head() {
		// A HEAD miss is forwarded and not stored: its response has no
		// body to store, and a GET will fill the entry.
		p.pass(ctx, c, res)
		return
	}
	if waited {
		p.fill(ctx, c, res, nil)
		return
	}
	f, leader := p.cache.Coalesce(res)
	if leader {
		p.fill(ctx, c, res, f)
		return
	}
	if stored, _ := f.Wait(ctx); stored {
		out := p.cache.Lookup(&c.Request, p.cacheRoute, res)
		res.Status().Collapsed = true
		p.serveOutcome(ctx, c, res, out, true)
		return
	}
	// Not stored (uncacheable, too big, origin error) or the wait timed
	// out: fetch by ourselves, so an uncacheable URL never serialises.
	p.fill(ctx, c, res, nil)
}

// fail answers status with a short reason and the Cache-Status.
func (p *Proxy) fail(c *app.RequestContext, res *cache.Result, status int, reason string) {
	writeError(c, status, reason)
	setCacheStatus(c, res)
}

func setCacheStatus(c *app.RequestContext, res *cache.Result) {
	c.Response.Header.SetCanonical(hdrCacheStatus, res.Status().AppendTo(nil))
}

// fill fetches a response for a miss and stores it while it streams to the
// client. The client's own validators are not forwarded, so the origin
// answers with a full, storable response (as nginx's proxy_cache does).
// flight, when set, is this request's coalesced fill: it is Done when the
// body has been stored or the fill was given up.
func (p *Proxy) fill(ctx context.Context, c *app.RequestContext, res *cache.Result, flight *cache.Flight) {
	c.Request.Header.DelBytes(hdrIfNoneMatch)
	c.Request.Header.DelBytes(hdrIfModifiedSince)
	reqTime := p.now()
	resp, status, reason := p.fetch(ctx, c)
	if resp == nil {
		if flight != nil {
			flight.Done(false)
		}
		p.fail(c, res, status, reason)
		return
	}
	p.deliver(c, res, resp, reqTime, p.now(), flight)
}

// deliver sends an origin response to the client and, when it may be
// stored, into the cache at the same time.
func (p *Proxy) deliver(c *app.RequestContext, res *cache.Result, resp *pool.Response, reqTime, respTime time.Time, flight *cache.Flight) {
	h := &c.Response.Header
	copyResponseHead(h, resp)
	if resp.ContentLength >= 0 && string(c.Request.Header.Method()) != "HEAD" {
		h.SetContentLength(int(resp.ContentLength))
	}
	st := res.Status()
	st.FwdStatus = resp.StatusCode
	fl, err := p.cache.BeginFill(res, &c.Request, h, reqTime, respTime)
	st.Stored = err == nil
	// Surrogate keys are for purging here, not for clients (Fastly strips
	// Surrogate-Key, Cloudflare Cache-Tag).
	h.DelBytes(hdrSurrogateKey)
	h.DelBytes(hdrCacheTag)
	setCacheStatus(c, res)
	if fl == nil {
		if flight != nil {
			flight.Done(false)
		}
		p.sendBody(c, resp)
		return
	}
	if resp.Body.Done() {
		resp.Body.Close()
		stored := fl.Commit() == nil
		if flight != nil {
			flight.Done(stored)
		}
		return
	}
	c.Response.SetBodyStream(&teeBody{body: resp.Body, fill: fl, flight: flight}, int(resp.ContentLength))
}

// teeBody copies the upstream body to the client (hertz reads it) and into
// a cache fill. A body that grows past the cache's max object size keeps
// streaming to the client; only the fill is dropped. The fill is committed
// when the body was read to its end, and aborted when the client went away
// or the origin broke off.
type teeBody struct {
	body   *pool.Body
	fill   *cache.Fill
	flight *cache.Flight
	ended  bool
}

func (t *teeBody) Read(b []byte) (int, error) {
	n, err := t.body.Read(b)
	if n > 0 && !t.ended {
		_, _ = t.fill.Write(b[:n])
	}
	if err == io.EOF {
		t.end(true)
	} else if err != nil {
		t.end(false)
	}
	return n, err
}

// Close ends the fill (hertz may stop at Content-Length without reading
// EOF: the body's own Done tells whether it was read to its end).
func (t *teeBody) Close() error {
	t.end(t.body.Done())
	return t.body.Close()
}

func (t *teeBody) end(complete bool) {
	if t.ended {
		return
	}
	t.ended = true
	stored := false
	if complete {
		stored = t.fill.Commit() == nil
	} else {
		t.fill.Abort()
	}
	if t.flight != nil {
		t.flight.Done(stored)
	}
}

// revalidate forwards a request whose stored response must be validated.
func (p *Proxy) revalidate(ctx context.Context, c *app.RequestContext, res *cache.Result) {
	h := &c.Request.Header
	inm := append([]byte(nil), h.Peek("If-None-Match")...)
	ims := append([]byte(nil), h.Peek("If-Modified-Since")...)
	h.DelBytes(hdrIfNoneMatch)
	h.DelBytes(hdrIfModifiedSince)
	res.SetConditionals(h)
	restore := func() {
		h.DelBytes(hdrIfNoneMatch)
		h.DelBytes(hdrIfModifiedSince)
		if len(inm) > 0 {
			h.SetCanonical(hdrIfNoneMatch, inm)
		}
		if len(ims) > 0 {
			h.SetCanonical(hdrIfModifiedSince, ims)
		}
	}
	st := res.Status()
	reqTime := p.now()
	resp, status, reason := p.fetch(ctx, c)
	if resp == nil {
		restore()
		if res.StaleOnError() && p.serveStale(c, res) {
			return
		}
		p.fail(c, res, status, reason)
		return
	}
	respTime := p.now()
	st.FwdStatus = resp.StatusCode
	switch {
	case resp.StatusCode == 304:
		var hdr protocol.ResponseHeader
		copyResponseHead(&hdr, resp) // fields alias the connection until Close
		err := p.cache.Refresh(res, &hdr, reqTime, respTime)
		resp.Body.Close()
		restore()
		if err == nil {
			if len(inm)+len(ims) > 0 && p.cache.ClientNotModified(h, res) {
				if p.cache.WriteNotModified(res, &c.Response) == nil {
					return
				}
			} else if p.cache.Serve(res, &c.Response) == nil {
				return
			}
		}
		// A 304 for another representation, or the entry went away:
		// fetch the full response.
		c.Response.Reset()
		p.fill(ctx, c, res, nil)
	case resp.StatusCode >= 500 && res.StaleOnError():
		resp.Body.Close()
		restore()
		if !p.serveStale(c, res) {
			p.fail(c, res, 502, reasonClosed)
		}
	default:
		restore()
		p.deliver(c, res, resp, reqTime, respTime, nil)
	}
}

// serveStale serves the stored response because the origin failed.
func (p *Proxy) serveStale(c *app.RequestContext, res *cache.Result) bool {
	res.Status().Detail = detailStaleIfError
	c.Response.Reset()
	if p.cache.Serve(res, &c.Response) != nil {
		c.Response.Reset()
		return false
	}
	return true
}

// pass forwards a request the cache does not serve. After a successful
// unsafe method the stored responses it may have changed are invalidated.
func (p *Proxy) pass(ctx context.Context, c *app.RequestContext, res *cache.Result) {
	resp, status, reason := p.fetch(ctx, c)
	if resp == nil {
		p.fail(c, res, status, reason)
		return
	}
	h := &c.Response.Header
	copyResponseHead(h, resp)
	p.cache.Invalidate(&c.Request, resp.StatusCode, h)
	res.Status().FwdStatus = resp.StatusCode
	h.DelBytes(hdrSurrogateKey)
	h.DelBytes(hdrCacheTag)
	setCacheStatus(c, res)
	p.sendBody(c, resp)
}

// compressOnce codes an identity hit for a client that accepts a coding
// by running the compression middleware in place (its Next finds no
// handler after the route's), then stores the coded bytes as a variant:
// the next client accepting that coding is served them by Lookup without
// compression CPU. The middleware's own pass over the response then sees
// Content-Encoding and leaves it alone. Concurrent first hits may each code
// the body; the last store wins, and from then on none does.
func (p *Proxy) compressOnce(ctx context.Context, c *app.RequestContext, res *cache.Result) {
	if p.compress == nil || !res.Identity() || res.Head() ||
		len(c.Request.Header.Peek(hdrAcceptEncodingReq)) == 0 {
		return
	}
	p.compress(ctx, c)
	ce := c.Response.Header.ContentEncoding()
	if len(ce) == 0 || c.Response.IsBodyStream() {
		return
	}
	_ = p.cache.StoreEncoded(res, string(ce), c.Response.Body())
}

// refreshInBackground revalidates a stale-while-revalidate entry off the
// request path; f is Done when it ends.
func (p *Proxy) refreshInBackground(c *app.RequestContext, f *cache.Flight) {
	rc := app.NewContext(0)
	c.Request.CopyToSkipBody(&rc.Request)
	rc.Request.Header.SetMethod("GET") // a HEAD's stale entry is a GET's
	go p.refresh(rc, f)
}

func (p *Proxy) refresh(rc *app.RequestContext, f *cache.Flight) {
	stored := false
	defer func() { f.Done(stored) }()
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	res := cache.AcquireResult()
	defer cache.ReleaseResult(res)
	p.cache.Lookup(&rc.Request, p.cacheRoute, res)
	h := &rc.Request.Header
	h.DelBytes(hdrIfNoneMatch)
	h.DelBytes(hdrIfModifiedSince)
	if res.Found() {
		res.SetConditionals(h)
	}
	reqTime := p.now()
	resp, _, _ := p.fetch(ctx, rc)
	if resp == nil {
		return
	}
	respTime := p.now()
	var hdr protocol.ResponseHeader
	copyResponseHead(&hdr, resp)
	if resp.StatusCode == 304 {
		resp.Body.Close()
		stored = res.Found() && p.cache.Refresh(res, &hdr, reqTime, respTime) == nil
		return
	}
	if resp.ContentLength >= 0 {
		hdr.SetContentLength(int(resp.ContentLength))
	}
	fl, err := p.cache.BeginFill(res, &rc.Request, &hdr, reqTime, respTime)
	if err != nil {
		resp.Body.Close()
		return
	}
	_, err = io.Copy(fl, resp.Body)
	complete := err == nil && resp.Body.Done()
	resp.Body.Close()
	if !complete {
		fl.Abort()
		return
	}
	stored = fl.Commit() == nil
}

// purge answers PURGE on the public port (Varnish and Fastly style): only
// from PurgeAllow networks (403 otherwise). Without a Surrogate-Key request
// field it purges the request's URL; with one, every response tagged with
// one of its space-separated keys. 200 with {"purged":N} when something was
// removed, 404 with {"purged":0} when nothing was.
func (p *Proxy) purge(c *app.RequestContext) {
	if !p.purgeAllowed(c.RemoteAddr()) {
		writeError(c, 403, reasonPurgeForbidden)
		return
	}
	n := 0
	if keys := c.Request.Header.Peek("Surrogate-Key"); len(keys) > 0 {
		for _, k := range splitFields(string(keys)) {
			n += p.cache.PurgeTag(k)
		}
	} else {
		var err error
		if n, err = p.cache.PurgeURL(string(cache.AppendKey(nil, &c.Request))); err != nil {
			writeError(c, 400, "400 Bad Request: "+err.Error()+"\n")
			return
		}
	}
	c.Response.Reset()
	if n == 0 {
		c.Response.SetStatusCode(404)
	} else {
		c.Response.SetStatusCode(200)
	}
	c.Response.Header.SetContentTypeBytes(jsonType)
	c.Response.SetBodyString(`{"purged":` + strconv.Itoa(n) + "}\n")
}

func (p *Proxy) purgeAllowed(a net.Addr) bool {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr().Unmap()
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return false
		}
		ip = ap.Addr().Unmap()
	}
	for _, pf := range p.purgeAllow {
		if pf.Contains(ip) {
			return true
		}
	}
	return false
}

// splitFields splits on spaces and commas.
func splitFields(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' || s[i] == ',' || s[i] == '\t' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}
