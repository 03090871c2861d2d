package wshub

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/network"
	"github.com/gorilla/websocket"
)

// Proxy relays WebSocket connections to ws:// upstreams. The upstream is
// dialed and its handshake completed before the client's upgrade is
// answered, so an upstream that is down gets the client a 502 rather than
// a 101 and an immediate close. Messages are streamed frame by frame
// through pooled buffers, so a connection's memory does not grow with
// message size, and a slow reader on one side stops the relay reading the
// other (TCP pushes back to the sender). Control frames (ping, pong,
// close with its code and reason) pass through. Safe for concurrent use.
type Proxy struct {
	*gate
	dialer    websocket.Dialer
	upstreams []string
	next      atomic.Uint32

	mu     sync.Mutex // guards live
	live   map[*relay]struct{}
	closed bool
}

// relay is one proxied connection.
type relay struct{ client, upstream *websocket.Conn }

// NewProxy returns a proxy for cfg.Upstreams (ws://host:port).
func NewProxy(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(cfg.Upstreams) == 0 {
		return nil, ErrNoUpstreams
	}
	ups := make([]string, len(cfg.Upstreams))
	for i, u := range cfg.Upstreams {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "ws" || pu.Host == "" {
			return nil, ErrBadUpstream
		}
		ups[i] = "ws://" + pu.Host
	}
	d := &net.Dialer{Timeout: cfg.DialTimeout}
	return &Proxy{
		gate: newGate(cfg),
		dialer: websocket.Dialer{
			NetDialContext:   d.DialContext,
			HandshakeTimeout: cfg.DialTimeout,
			ReadBufferSize:   readBufferSize,
			WriteBufferSize:  writeBufferSize,
			WriteBufferPool:  &writePool,
		},
		upstreams: ups,
		live:      make(map[*relay]struct{}),
	}, nil
}

// Handle dials the upstream, then upgrades the client.
func (p *Proxy) Handle(ctx context.Context, c *app.RequestContext) {
	hs, ip, ok := p.admit(c)
	if !ok {
		return
	}
	up, err := p.dial(ctx, c, ip)
	if err != nil {
		p.release(ip)
		p.m.refused(refusedUpstream)
		reject(c, 502, "Bad Gateway: "+err.Error())
		return
	}
	hs.protocol = up.Subprotocol()
	c.Response.HijackWriter(noWriter{})
	c.SetStatusCode(101)
	c.Hijack(func(nc network.Conn) {
		raw, err := detach(nc)
		switch {
		case err != nil:
			_ = up.Close()
			p.release(ip)
			p.m.disconnect(reasonNetwork)
		case raw == nil:
			p.serve(nc, hs, ip, up)
		default:
			go p.serve(raw, hs, ip, up)
		}
	})
}

// dial tries each upstream once, starting from the next in turn.
func (p *Proxy) dial(ctx context.Context, c *app.RequestContext, ip netip.Addr) (*websocket.Conn, error) {
	h := http.Header{}
	for _, k := range []string{"Origin", "Cookie", "Authorization", "User-Agent"} {
		if v := c.Request.Header.Peek(k); len(v) > 0 {
			h.Set(k, string(v))
		}
	}
	xff := ip.String()
	if prior := c.Request.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		xff = string(prior) + ", " + xff
	}
	h.Set("X-Forwarded-For", xff)
	d := p.dialer
	if v := c.Request.Header.Peek("Sec-Websocket-Protocol"); len(v) > 0 {
		for _, s := range strings.Split(string(v), ",") {
			d.Subprotocols = append(d.Subprotocols, strings.TrimSpace(s))
		}
	}
	uri := string(c.Request.URI().RequestURI())
	start := int(p.next.Add(1))
	var err error
	for i := range p.upstreams {
		u := p.upstreams[(start+i)%len(p.upstreams)] + uri
		var up *websocket.Conn
		var resp *http.Response
		up, resp, err = d.DialContext(ctx, u, h)
		if err == nil {
			return up, nil
		}
		if resp != nil {
			err = errors.New("upstream refused the upgrade with status " + strconv.Itoa(resp.StatusCode))
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return nil, errors.New("upstream unavailable")
	}
	return nil, err
}

// serve relays one connection until either side ends.
func (p *Proxy) serve(nc net.Conn, hs handshake, ip netip.Addr, up *websocket.Conn) {
	client, err := accept(nc, hs)
	if err != nil {
		_ = up.Close()
		p.release(ip)
		p.m.disconnect(reasonNetwork)
		return
	}
	r := &relay{client: client, upstream: up}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		r.goAway(p.hint())
		r.close()
		p.release(ip)
		p.m.disconnect(reasonShutdown)
		return
	}
	p.live[r] = struct{}{}
	p.mu.Unlock()
	p.m.open.Inc()

	client.SetReadLimit(int64(p.cfg.MaxMessage))
	done := make(chan string, 1)
	go func() { done <- p.pump(up, client, p.m.out, reasonUpstream) }()
	reason := p.pump(client, up, p.m.in, "")
	// One side has ended and its close was passed on; give the other a
	// moment to answer it, then close both.
	_ = up.SetReadDeadline(time.Now().Add(time.Second))
	_ = client.SetReadDeadline(time.Now().Add(time.Second))
	other := <-done
	if reason == reasonNetwork && other == reasonUpstream {
		reason = reasonUpstream
	}
	r.close()
	p.mu.Lock()
	delete(p.live, r)
	p.mu.Unlock()
	p.release(ip)
	p.m.open.Dec()
	p.m.disconnect(reason)
}

// pump copies messages and control frames from src to dst until src ends,
// and returns why it ended (fixed is returned for any end but a close
// frame when set).
func (p *Proxy) pump(src, dst *websocket.Conn, count interface{ Inc() }, fixed string) string {
	idle, wt := p.cfg.IdleTimeout, p.cfg.WriteTimeout
	_ = src.SetReadDeadline(time.Now().Add(idle))
	src.SetPingHandler(func(data string) error {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		return ignoreCloseSent(dst.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(wt)))
	})
	src.SetPongHandler(func(data string) error {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		return ignoreCloseSent(dst.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wt)))
	})
	src.SetCloseHandler(func(code int, text string) error {
		// Pass the close on; dst's answer comes back through the other
		// pump and answers src (RFC 6455 §5.5.1).
		_ = dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wt))
		return nil
	})
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			return p.srcEnded(src, dst, err, fixed)
		}
		_ = src.SetReadDeadline(time.Now().Add(idle))
		_ = dst.SetWriteDeadline(time.Now().Add(wt))
		w, err := dst.NextWriter(mt)
		if err != nil {
			return reasonWriteError
		}
		// The message writer reads into its pooled buffer (ReadFrom), one
		// buffer at a time: memory stays bounded whatever the size.
		if _, err = io.Copy(w, r); err != nil {
			_ = w.Close()
			return p.srcEnded(src, dst, err, fixed)
		}
		if err = w.Close(); err != nil {
			return reasonWriteError
		}
		count.Inc()
	}
}

// srcEnded tells dst why src ended, when src did not close it itself.
func (p *Proxy) srcEnded(src, dst *websocket.Conn, err error, fixed string) string {
	reason := readReason(err)
	deadline := time.Now().Add(time.Second)
	switch reason {
	case reasonClient:
		// The close handler passed it on.
		return reason
	case reasonTooBig:
		_ = dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), deadline)
	case reasonProtocol:
		_ = dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, ""), deadline)
	default:
		_ = dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "peer gone"), deadline)
	}
	if fixed != "" && reason != reasonTooBig && reason != reasonProtocol {
		return fixed
	}
	return reason
}

func ignoreCloseSent(err error) error {
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

func (r *relay) goAway(hint string) {
	deadline := time.Now().Add(time.Second)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, hint)
	_ = r.client.WriteControl(websocket.CloseMessage, msg, deadline)
	_ = r.upstream.WriteControl(websocket.CloseMessage, msg, deadline)
}

func (r *relay) close() {
	_ = r.client.Close()
	_ = r.upstream.Close()
}

// Conns returns the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// Shutdown refuses new connections and sends close 1001 with a jittered
// reconnect hint to both sides of every relay, then waits for them to end
// until ctx is done and closes the rest.
func (p *Proxy) Shutdown(ctx context.Context) {
	p.closing.Store(true)
	p.mu.Lock()
	p.closed = true
	all := make([]*relay, 0, len(p.live))
	for r := range p.live {
		all = append(all, r)
	}
	p.mu.Unlock()
	for _, r := range all {
		r.goAway(p.hint())
	}
	waitConns(ctx, p.Conns)
	p.mu.Lock()
	for r := range p.live {
		r.close()
	}
	p.mu.Unlock()
}

// Close shuts the proxy down, waiting at most a second.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.Shutdown(ctx)
	return nil
}
