package wshub

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/edgeloop/edgeloop/engine/limit"
)

// gate decides whether an upgrade request may become a connection. It runs
// in hertz's handler, before the hijack, so a refused client costs no
// goroutine and no buffer of ours. Safe for concurrent use.
type gate struct {
	cfg     Config
	conns   *limit.ConnLimiter
	m       *routeMetrics
	closing atomic.Bool
}

func newGate(cfg Config) *gate {
	return &gate{
		cfg:   cfg,
		conns: limit.NewConnLimiter(limit.ConnConfig{Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP}),
		m:     newRouteMetrics(cfg.Route, cfg.SlowConsumer),
	}
}

// admit checks the handshake, the Origin and the caps. On success it has
// counted the connection (release with g.release(ip)) and returns the
// handshake; otherwise it has written the error response.
func (g *gate) admit(c *app.RequestContext) (handshake, netip.Addr, bool) {
	var hs handshake
	if g.closing.Load() {
		g.m.refused(refusedDraining)
		reject(c, 503, "shutting down")
		return hs, netip.Addr{}, false
	}
	if !c.IsGet() {
		g.m.refused(refusedBad)
		c.Response.Header.Set("Allow", "GET")
		reject(c, 405, "WebSocket upgrades use GET")
		return hs, netip.Addr{}, false
	}
	h := &c.Request.Header
	if !hasToken(h.Peek("Connection"), "upgrade") || !hasToken(h.Peek("Upgrade"), "websocket") {
		g.m.refused(refusedBad)
		c.Response.Header.Set("Upgrade", "websocket")
		reject(c, 426, "this route speaks WebSocket (RFC 6455): send Connection: Upgrade and Upgrade: websocket")
		return hs, netip.Addr{}, false
	}
	if !hasToken(h.Peek("Sec-Websocket-Version"), "13") {
		g.m.refused(refusedBad)
		c.Response.Header.Set("Sec-WebSocket-Version", "13")
		reject(c, 400, "unsupported Sec-WebSocket-Version: want 13")
		return hs, netip.Addr{}, false
	}
	key := h.Peek("Sec-Websocket-Key")
	if len(key) != 24 {
		g.m.refused(refusedBad)
		reject(c, 400, "Sec-WebSocket-Key must be 16 bytes in base64")
		return hs, netip.Addr{}, false
	}
	if !g.originAllowed(h.Peek("Origin")) {
		g.m.refused(refusedOrigin)
		reject(c, 403, "origin not allowed")
		return hs, netip.Addr{}, false
	}
	ip := clientIP(c.RemoteAddr())
	switch g.conns.Acquire(ip) {
	case nil:
	case limit.ErrTooManyConnsPerIP:
		g.m.refused(refusedIPCap)
		c.Response.Header.Set("Retry-After", "5")
		reject(c, 429, "too many WebSocket connections from your address")
		return hs, netip.Addr{}, false
	default:
		g.m.refused(refusedCap)
		c.Response.Header.Set("Retry-After", "5")
		reject(c, 503, "WebSocket connection limit reached")
		return hs, netip.Addr{}, false
	}
	hs.key = string(key)
	if p := h.Peek("Sec-Websocket-Protocol"); len(p) > 0 {
		// Accept the client's first subprotocol (RFC 6455 §4.2.2 lets the
		// server pick one of the offered).
		first, _, _ := strings.Cut(string(p), ",")
		hs.protocol = strings.TrimSpace(first)
	}
	return hs, ip, true
}

func (g *gate) release(ip netip.Addr) { g.conns.Release(ip) }

// originAllowed implements AllowedOrigins (RFC 6455 §10.2).
func (g *gate) originAllowed(origin []byte) bool {
	if len(g.cfg.AllowedOrigins) == 0 || len(origin) == 0 {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, string(origin)) {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated header value v holds token,
// case-insensitively (RFC 9110 §5.6.1).
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		if strings.EqualFold(string(bytes.TrimSpace(part)), token) {
			return true
		}
	}
	return false
}

// clientIP returns the peer address, IPv4-mapped addresses unmapped.
func clientIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// reject answers with status and a one-line text reason.
func reject(c *app.RequestContext, status int, reason string) {
	c.Response.SetStatusCode(status)
	c.Response.Header.SetContentType("text/plain; charset=utf-8")
	c.Response.SetBodyString(reason + "\n")
}
