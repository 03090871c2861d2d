// Package wshub serves WebSockets (RFC 6455) for edgeloop: pub/sub channels
// fed by a publish API or Postgres NOTIFY, and proxied WebSocket routes.
//
// Connections are taken off hertz after the upgrade: the socket is detached
// from hertz's connection (a duplicate descriptor), so hertz's goroutine,
// its 4 KiB read buffer and the request context are released, and the
// connection is served by one reader goroutine with a small stack and a
// 512-byte read buffer. A writer goroutine exists only while a connection
// has messages queued; write buffers come from a shared pool.
package wshub

import (
	"errors"
	"net/netip"
	"time"
)

// Errors returned by NewHub and NewProxy.
var (
	ErrBadSlowConsumer = errors.New("wshub: slow_consumer must be disconnect or drop_oldest")
	ErrNoUpstreams     = errors.New("wshub: proxy route has no ws:// upstreams")
	ErrBadUpstream     = errors.New("wshub: upstream must be ws://host:port")
	ErrClosed          = errors.New("wshub: hub is shut down")
)

// Slow-consumer policies: what happens when a connection's send queue is full.
const (
	// Disconnect closes the connection (the default): a client that cannot
	// keep up reconnects and resynchronises instead of silently missing
	// messages.
	Disconnect = "disconnect"
	// DropOldest drops the oldest queued message to make room.
	DropOldest = "drop_oldest"
)

// Defaults used for zero Config fields.
const (
	defaultMaxConns        = 100000
	defaultMaxConnsPerIP   = 100
	defaultSendQueue       = 256
	defaultMaxMessage      = 64 << 10
	defaultPingInterval    = 30 * time.Second
	defaultIdleTimeout     = 120 * time.Second
	defaultWriteTimeout    = 10 * time.Second
	defaultReconnectSpread = 10 * time.Second
	defaultDialTimeout     = 5 * time.Second
	defaultRelayBuffer     = 4 << 10
	// readBufferSize is each connection's bufio.Reader: large enough for a
	// frame header and a control frame (125 bytes, RFC 6455 §5.5); data
	// payloads bigger than it are read straight into the caller's buffer.
	readBufferSize = 512
	// writeBufferSize is the size of pooled write buffers (used for
	// control frames and proxied messages; prepared broadcast frames are
	// written without one).
	writeBufferSize = 4 << 10
)

// Config configures a pub/sub route (Hub) or a proxied route (Proxy). The
// zero value of each field selects its default.
type Config struct {
	// Route names the route in metrics (its configured path).
	Route string
	// MaxConns caps open WebSocket connections on the route. If zero,
	// 100,000.
	MaxConns int
	// MaxConnsPerIP caps open connections from one client address (IPv6 by
	// /64). If zero, 100.
	MaxConnsPerIP int
	// SendQueue is each connection's outgoing queue length (messages). If
	// zero, 256. The queue's memory is allocated as it fills, not up front.
	SendQueue int
	// SlowConsumer is Disconnect (if empty) or DropOldest.
	SlowConsumer string
	// MaxMessage is the largest message accepted from a client (and, on a
	// pub/sub route, published); larger client messages close the
	// connection with 1009 (RFC 6455 §7.4.1). If zero, 64 KiB.
	MaxMessage int
	// PingInterval between server pings. If zero, 30s; negative: no pings.
	PingInterval time.Duration
	// IdleTimeout closes a connection from which nothing (not even a pong)
	// arrived for this long. If zero, 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a client. If zero, 10s.
	WriteTimeout time.Duration
	// AllowedOrigins lists the Origin header values (scheme://host[:port],
	// compared case-insensitively, "*" for any) a browser may upgrade from;
	// others get 403. Empty allows any. Requests without Origin (non-browser
	// clients) are allowed: Origin checks protect browsers from cross-site
	// WebSocket hijacking, they do not authenticate.
	AllowedOrigins []string
	// PublishAllow lists the networks whose clients may publish with a POST
	// on the public port. Empty: none.
	PublishAllow []netip.Prefix
	// ReconnectSpread is the range of the reconnect hint sent with close
	// 1001 at shutdown ("reconnect in N s", N uniform in 1..spread), so that
	// clients do not all come back in the same second. If zero, 10s.
	ReconnectSpread time.Duration

	// Upstreams (proxy routes only) are ws://host:port URLs, tried in turn.
	Upstreams []string
	// DialTimeout (proxy routes) bounds connecting to an upstream and its
	// handshake. If zero, 5s.
	DialTimeout time.Duration
	// RelayBuffer (proxy routes) is the copy buffer per direction. If zero,
	// 4 KiB.
	RelayBuffer int
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = defaultMaxConnsPerIP
	}
	if c.SendQueue <= 0 {
		c.SendQueue = defaultSendQueue
	}
	switch c.SlowConsumer {
	case "":
		c.SlowConsumer = Disconnect
	case Disconnect, DropOldest:
	default:
		return c, ErrBadSlowConsumer
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = defaultMaxMessage
	}
	if c.PingInterval == 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.ReconnectSpread < time.Second {
		c.ReconnectSpread = defaultReconnectSpread
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.RelayBuffer <= 0 {
		c.RelayBuffer = defaultRelayBuffer
	}
	return c, nil
}
