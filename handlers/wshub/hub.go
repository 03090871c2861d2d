package wshub

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/network"
	"github.com/gorilla/websocket"
)

// Hub is a pub/sub route: clients subscribe to a channel by connecting to
// the route's path with the channel name in place of {channel}; Publish
// delivers a message to every subscriber of a channel.
//
// Publish never blocks on a subscriber: each connection has a bounded
// queue, drained by a writer goroutine started only while it holds
// messages; when the queue is full the SlowConsumer policy applies. Safe
// for concurrent use.
type Hub struct {
	*gate
	prefix, suffix string // the route path around {channel}

	mu       sync.RWMutex // guards channels, count and closed
	channels map[string]map[*conn]struct{}
	count    int
	closed   bool

	stop     chan struct{} // closed by Shutdown: stops the pinger
	stopOnce sync.Once
}

// NewHub returns the hub of a pub/sub route whose path (cfg.Route) holds
// one {channel}.
func NewHub(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	prefix, suffix, ok := strings.Cut(cfg.Route, "{channel}")
	if !ok {
		prefix = cfg.Route
	}
	h := &Hub{
		gate:     newGate(cfg),
		prefix:   prefix,
		suffix:   suffix,
		channels: make(map[string]map[*conn]struct{}),
		stop:     make(chan struct{}),
	}
	if cfg.PingInterval > 0 {
		go h.pinger(cfg.PingInterval)
	}
	return h, nil
}

// Handle upgrades GET requests to subscriptions and accepts POST publishes
// from PublishAllow networks.
func (h *Hub) Handle(_ context.Context, c *app.RequestContext) {
	ch, ok := h.channelOf(string(c.Request.URI().Path()))
	if !ok {
		reject(c, 404, "no such channel: want "+h.cfg.Route)
		return
	}
	if c.IsPost() {
		if !h.PublishAllowed(clientIP(c.RemoteAddr())) {
			reject(c, 403, "publishing is not allowed from your address")
			return
		}
		ServePublish(c, ch, h.cfg.MaxMessage, h.Publish)
		return
	}
	hs, ip, ok := h.admit(c)
	if !ok {
		return
	}
	// hertz writes nothing: the 101 is written on the detached socket.
	c.Response.HijackWriter(noWriter{})
	c.SetStatusCode(101)
	c.Hijack(func(nc network.Conn) {
		raw, err := detach(nc)
		switch {
		case err != nil:
			h.release(ip)
			h.m.disconnect(reasonNetwork)
		case raw == nil:
			// Not detachable (TLS): serve on hertz's goroutine.
			h.serve(nc, hs, ip, ch)
		default:
			go h.serve(raw, hs, ip, ch)
		}
	})
}

// channelOf extracts the channel name from a request path.
func (h *Hub) channelOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, h.prefix)
	if !ok {
		return "", false
	}
	ch, ok := strings.CutSuffix(rest, h.suffix)
	if !ok || ch == "" || len(ch) > 256 || strings.ContainsAny(ch, "/?#") || !utf8.ValidString(ch) {
		return "", false
	}
	return ch, true
}

// PublishAllowed reports whether ip may publish on the public port.
func (h *Hub) PublishAllowed(ip netip.Addr) bool {
	for _, p := range h.cfg.PublishAllow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Publish queues msg for every subscriber of channel and returns how many
// queued it (a subscriber closed by the disconnect policy is not counted).
// It never waits on a subscriber's socket. msg must not be modified
// afterwards. Valid UTF-8 is sent as a text message, anything else as
// binary (RFC 6455 §5.6).
func (h *Hub) Publish(channel string, msg []byte) (delivered int) {
	typ := websocket.BinaryMessage
	if utf8.Valid(msg) {
		typ = websocket.TextMessage
	}
	pm, err := websocket.NewPreparedMessage(typ, msg)
	if err != nil {
		return 0
	}
	m := &message{pm: pm, at: time.Now()}
	h.m.published.Inc()
	h.mu.RLock()
	for c := range h.channels[channel] {
		if c.enqueue(m) {
			delivered++
		}
	}
	h.mu.RUnlock()
	return delivered
}

// Conns returns the number of open connections.
func (h *Hub) Conns() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count
}

// serve runs one connection from the handshake to its end.
//
// The connection subscribes before its 101 goes out, so a client that has
// its 101 receives every message published after it: messages published
// during the handshake wait in the queue, whose writer starts only once
// the 101 is written (writing is held by the handshake until then).
func (h *Hub) serve(nc net.Conn, hs handshake, ip netip.Addr, ch string) {
	c := &conn{hub: h, raw: nc, writing: true}
	subscribed := h.add(c, ch)
	ws, err := accept(nc, hs)
	if err != nil {
		if subscribed {
			h.remove(c, ch)
		}
		h.release(ip)
		h.m.disconnect(reasonNetwork)
		return
	}
	c.mu.Lock()
	c.ws = ws
	closed, reason := c.closed || !subscribed, c.reason
	start := !closed && c.n > 0
	c.writing = start
	c.mu.Unlock()
	if closed {
		// The hub shut down (or the slow-consumer policy struck) during
		// the handshake.
		if reason == "" || reason == reasonShutdown {
			reason = reasonShutdown
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, h.hint()), time.Now().Add(time.Second))
		}
		if subscribed {
			h.remove(c, ch)
		}
		_ = ws.Close()
		h.release(ip)
		h.m.disconnect(reason)
		return
	}
	if start {
		go c.writeLoop()
	}
	h.m.open.Inc()
	reason = c.readLoop()
	h.remove(c, ch)
	_ = ws.Close()
	h.release(ip)
	h.m.open.Dec()
	h.m.disconnect(reason)
}

func (h *Hub) add(c *conn, ch string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	subs := h.channels[ch]
	if subs == nil {
		subs = make(map[*conn]struct{})
		h.channels[ch] = subs
	}
	subs[c] = struct{}{}
	h.count++
	return true
}

func (h *Hub) remove(c *conn, ch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.channels[ch]
	if _, ok := subs[c]; !ok {
		return
	}
	delete(subs, c)
	if len(subs) == 0 {
		delete(h.channels, ch)
	}
	h.count--
}

// pinger queues a ping on every connection each interval; the pong (or
// any frame) pushes the connection's idle deadline back.
func (h *Hub) pinger(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.RLock()
		for _, subs := range h.channels {
			for c := range subs {
				c.ping()
			}
		}
		h.mu.RUnlock()
	}
}

// Shutdown refuses new connections, sends every connection close 1001
// (going away, RFC 6455 §7.4.1) with a jittered "reconnect in N s" hint,
// and waits until the clients have closed or ctx is done, when it closes
// the remaining sockets.
func (h *Hub) Shutdown(ctx context.Context) {
	h.closing.Store(true)
	h.stopOnce.Do(func() { close(h.stop) })
	h.mu.Lock()
	h.closed = true
	var all []*conn
	for _, subs := range h.channels {
		for c := range subs {
			all = append(all, c)
		}
	}
	h.mu.Unlock()
	goAwayAll(all, h.hint)
	waitConns(ctx, h.Conns)
	h.mu.RLock()
	for _, subs := range h.channels {
		for c := range subs {
			c.closeSocket()
		}
	}
	h.mu.RUnlock()
}

// Close shuts the hub down, waiting at most a second for clients.
func (h *Hub) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.Shutdown(ctx)
	return nil
}

// ServePublish reads a POST body of at most max bytes and publishes it,
// answering {"channel":..., "delivered": n}. It is the public port's publish
// endpoint; the admin listener has its own on net/http.
func ServePublish(c *app.RequestContext, channel string, max int, publish func(string, []byte) int) {
	var body []byte
	if s := c.Request.BodyStream(); s != nil && c.Request.IsBodyStream() {
		b, err := io.ReadAll(io.LimitReader(s, int64(max)+1))
		if err != nil {
			reject(c, 400, "reading the body: "+err.Error())
			return
		}
		body = b
	} else {
		body = append([]byte(nil), c.Request.Body()...)
	}
	if len(body) > max {
		reject(c, 413, "message larger than max_message")
		return
	}
	n := publish(channel, body)
	c.Response.Header.SetContentType("application/json")
	c.Response.SetBodyString(PublishResult(channel, n))
}

// PublishResult is the JSON answer to a publish.
func PublishResult(channel string, delivered int) string {
	b := []byte(`{"channel":`)
	b = appendJSONString(b, channel)
	b = append(b, `,"delivered":`...)
	b = appendInt(b, delivered)
	return string(append(b, "}\n"...))
}
