package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

const headerRequestID = "X-Request-Id"

var bRequestID = []byte(headerRequestID)

// front is the first handler of every request: panic recovery, request id,
// the per-IP rate limit, then metrics and the access log once the rest of
// the chain has run. It is one handler rather than four so the request pays
// for one route lookup and one clock read at each end.
func (s *Server) front(ctx context.Context, c *app.RequestContext) {
	start := time.Now()
	rt := s.routes.match(c.Request.URI().Path())
	defer func() {
		if p := recover(); p != nil {
			metricPanics.Inc()
			s.log.Error("handler panic", "panic", p, "path", string(c.Request.URI().Path()),
				"stack", string(debug.Stack()))
			c.Abort()
			c.Response.Reset()
			writeError(c, consts.StatusInternalServerError, "internal error")
		}
		s.observe(c, rt, start)
	}()

	s.requestID(c)
	if s.cfg.Transport == "netpoll" {
		defer s.netpollRequestDeadlines(c)()
		defer netpollTrack(ctx, c)()
	}
	// In-flight requests are what a graceful shutdown waits for; while
	// draining, each response asks its client to close the connection.
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.draining.Load() {
		c.SetConnectionClose()
	}

	if s.rate != nil {
		ip := remoteIP(c.RemoteAddr())
		if ok, wait := s.rate.Allow(ip, start); !ok {
			rt.metrics.limited.Inc()
			secs := int((wait + time.Second - 1) / time.Second)
			if secs < 1 {
				secs = 1
			}
			c.Response.Header.Set("Retry-After", strconv.Itoa(secs))
			writeError(c, consts.StatusTooManyRequests, "rate limit exceeded")
			c.Abort()
			return
		}
	}
	if !s.limitBody(c) {
		c.Abort()
		return
	}
	c.Next(ctx)
	if lr, ok := c.Request.BodyStream().(*limitedBody); ok {
		// Give hertz its own stream back: it skips the unread rest of the
		// body only for that type, and must, or the rest would be parsed
		// as the next request on this connection.
		c.Request.SetBodyStream(lr.r, -1)
		if lr.tripped {
			// The handler read past the limit of a chunked body: whatever
			// it answered, the client gets 413 and the connection closes.
			c.Response.Reset()
			c.SetConnectionClose()
			writeError(c, consts.StatusRequestEntityTooLarge, "request body too large")
		}
	}
	// Handlers may replace the response headers wholesale (the proxy copies
	// the upstream's); the request id stays on the response.
	if len(c.Response.Header.Peek(headerRequestID)) == 0 {
		c.Response.Header.SetBytesV(headerRequestID, c.Request.Header.Peek(headerRequestID))
	}
	writeLargeBody(ctx, c)
}

// observe records metrics and the access log line for one finished request.
func (s *Server) observe(c *app.RequestContext, rt *mountedRoute, start time.Time) {
	d := time.Since(start)
	code := c.Response.StatusCode()
	m := rt.metrics
	m.requests(code).Inc()
	m.duration.Observe(d.Seconds())
	if n := c.Request.Header.ContentLength(); n > 0 {
		m.bytesIn.Add(float64(n))
	}
	out := c.Response.Header.ContentLength()
	if !c.Response.IsBodyStream() {
		out = len(c.Response.Body())
	}
	if out > 0 {
		m.bytesOut.Add(float64(out))
	}
	if s.accessLog {
		s.log.LogAttrs(context.Background(), slog.LevelInfo, "access",
			slog.String("method", string(c.Request.Method())),
			slog.String("uri", string(c.Request.RequestURI())),
			slog.Int("status", code),
			slog.Duration("duration", d),
			slog.Int("bytes", out),
			slog.String("client", remoteIP(c.RemoteAddr()).String()),
			slog.String("route", m.name),
			slog.String("request_id", string(c.Request.Header.Peek(headerRequestID))),
		)
	}
}

// requestIDs makes ids unique to this process: a random prefix, then a counter.
var (
	requestIDPrefix [8]byte
	requestIDSeq    atomic.Uint64
	// requestIDBufs holds the buffers ids are written in: hertz copies a
	// header value it is given, but the compiler cannot see that, so a
	// buffer on the stack would move to the heap, one allocation per request.
	requestIDBufs = sync.Pool{New: func() any { return new([25]byte) }}
)

func init() {
	var b [4]byte
	_, _ = rand.Read(b[:])
	hex.Encode(requestIDPrefix[:], b[:])
}

// requestID keeps a client's X-Request-Id when it is sane, or makes one, and
// sets it on the request (so the upstream sees it) and on the response.
func (s *Server) requestID(c *app.RequestContext) {
	if id := c.Request.Header.Peek(headerRequestID); validRequestID(id) {
		c.Response.Header.SetBytesV(headerRequestID, id)
		return
	}
	buf := requestIDBufs.Get().(*[25]byte)
	defer requestIDBufs.Put(buf)
	copy(buf[:], requestIDPrefix[:])
	buf[8] = '-'
	n := requestIDSeq.Add(1)
	const digits = "0123456789abcdef"
	for i := len(buf) - 1; i > 8; i-- {
		buf[i] = digits[n&0xf]
		n >>= 4
	}
	c.Request.Header.SetCanonical(bRequestID, buf[:])
	c.Response.Header.SetBytesV(headerRequestID, buf[:])
}

// validRequestID accepts 1–128 visible ASCII characters, so a client cannot
// inject header or log syntax through it.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, b := range id {
		if b <= ' ' || b > '~' || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// writeError answers with a status and a short plain-text reason.
func writeError(c *app.RequestContext, code int, reason string) {
	c.Response.SetStatusCode(code)
	c.Response.Header.SetContentType("text/plain; charset=utf-8")
	c.Response.SetBodyString(strconv.Itoa(code) + " " + consts.StatusMessage(code) + ": " + reason + "\n")
}

// remoteIP returns the client address of a connection, IPv4-mapped IPv6
// addresses unmapped so one client has one key.
func remoteIP(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
