package wshub

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// message is one published message, shared by all its subscribers' queues:
// the frame is encoded once (server frames are unmasked, RFC 6455 §5.1).
type message struct {
	pm *websocket.PreparedMessage
	at time.Time // when published, for the fan-out histogram
}

// pingMsg in a queue asks the writer for a ping frame.
var pingMsg = &message{}

// conn is one subscriber. The reader goroutine (serve) owns reads; the
// writer goroutine exists only while the queue holds messages.
type conn struct {
	hub *Hub
	raw net.Conn // the socket, for closing it during the handshake

	mu      sync.Mutex      // guards the fields below
	ws      *websocket.Conn // set once the 101 is written; read freely by the reader and writer, which start after
	q       []*message      // ring buffer, grown on demand up to SendQueue
	head, n int
	writing bool   // a writer goroutine is running
	closed  bool   // no more writes: the socket is closing
	reason  string // why edgeloop closed it, if it did
}

// enqueue queues m, applying the slow-consumer policy when the queue is
// full, and starts the writer if none runs. It reports whether m was
// queued. It never blocks on the socket.
func (c *conn) enqueue(m *message) bool {
	cfg := &c.hub.cfg
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if c.n == len(c.q) {
		switch {
		case len(c.q) < cfg.SendQueue:
			c.grow(min(max(4, 2*len(c.q)), cfg.SendQueue))
		case cfg.SlowConsumer == DropOldest:
			c.q[c.head] = nil
			c.head = (c.head + 1) % len(c.q)
			c.n--
			c.hub.m.drops.Inc()
		default:
			c.closed, c.reason = true, reasonSlowConsumer
			c.mu.Unlock()
			c.hub.m.drops.Inc()
			// The socket is full, so a close frame would not get through;
			// closing it wakes the writer and the reader.
			c.closeSocket()
			return false
		}
	}
	c.q[(c.head+c.n)%len(c.q)] = m
	c.n++
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

// ping queues a ping unless the queue is full (then data is pending and
// the client is being dealt with by the policy).
func (c *conn) ping() {
	c.mu.Lock()
	full := c.n == len(c.q) && len(c.q) >= c.hub.cfg.SendQueue
	c.mu.Unlock()
	if !full {
		c.enqueue(pingMsg)
	}
}

func (c *conn) grow(size int) {
	q := make([]*message, size)
	for i := range c.n {
		q[i] = c.q[(c.head+i)%len(c.q)]
	}
	c.q, c.head = q, 0
}

// writeLoop drains the queue, then exits.
func (c *conn) writeLoop() {
	wt := c.hub.cfg.WriteTimeout
	for {
		c.mu.Lock()
		if c.closed || c.n == 0 {
			c.writing = false
			if c.n == 0 && len(c.q) > 16 {
				c.q, c.head = nil, 0 // give a burst's queue back
			}
			c.mu.Unlock()
			return
		}
		m := c.q[c.head]
		c.q[c.head] = nil
		c.head = (c.head + 1) % len(c.q)
		c.n--
		c.mu.Unlock()

		deadline := time.Now().Add(wt)
		var err error
		if m == pingMsg {
			err = c.ws.WriteControl(websocket.PingMessage, nil, deadline)
		} else {
			_ = c.ws.SetWriteDeadline(deadline)
			if err = c.ws.WritePreparedMessage(m.pm); err == nil {
				c.hub.m.out.Inc()
				c.hub.m.fanout.Observe(time.Since(m.at).Seconds())
			}
		}
		if err != nil {
			c.fail(reasonWriteError)
			return
		}
	}
}

// fail marks the connection closed for reason (unless already closed) and
// closes the socket, which ends the reader.
func (c *conn) fail(reason string) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason = true, reason
	}
	c.mu.Unlock()
	_ = c.ws.NetConn().Close()
}

// readLoop reads (and discards) client messages, enforcing MaxMessage and
// IdleTimeout, until the connection ends; it returns the reason.
func (c *conn) readLoop() string {
	cfg := &c.hub.cfg
	ws := c.ws
	ws.SetReadLimit(int64(cfg.MaxMessage))
	idle := cfg.IdleTimeout
	_ = ws.SetReadDeadline(time.Now().Add(idle))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(idle)) })
	for {
		_, r, err := ws.NextReader()
		if err == nil {
			_ = ws.SetReadDeadline(time.Now().Add(idle))
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			return c.ended(err)
		}
		c.hub.m.in.Inc()
	}
}

// ended names why the reader stopped.
func (c *conn) ended(err error) string {
	c.mu.Lock()
	reason := c.reason
	if !c.closed {
		c.closed = true
	}
	c.mu.Unlock()
	if reason != "" {
		return reason
	}
	r := readReason(err)
	if r == reasonIdle {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "idle timeout"), time.Now().Add(time.Second))
	}
	return r
}

// readReason classifies a read error.
func readReason(err error) string {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return reasonClient
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonTooBig // gorilla/websocket has sent 1009
	case errors.As(err, &ne) && ne.Timeout():
		return reasonIdle
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		return reasonNetwork
	}
	// gorilla/websocket reports protocol violations as plain errors after
	// sending close 1002.
	return reasonProtocol
}

// goAway marks the connection closed for shutdown and sends close 1001
// with the reconnect hint. The client's answering close ends the reader.
func (c *conn) goAway(hint string) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.reason = true, reasonShutdown
	} else if c.reason == "" {
		c.reason = reasonShutdown
	}
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return // in its handshake: serve sends 1001 once the 101 is out
	}
	_ = ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseGoingAway, hint), time.Now().Add(time.Second))
}

// closeSocket closes the connection's socket, which ends its reader and
// writer (or its handshake).
func (c *conn) closeSocket() {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = ws.NetConn().Close()
		return
	}
	_ = c.raw.Close()
}

// hint returns a close reason asking the client to come back after a
// random delay in 1..ReconnectSpread seconds.
func (g *gate) hint() string {
	n := 1 + rand.IntN(int(g.cfg.ReconnectSpread/time.Second))
	return "reconnect in " + strconv.Itoa(n) + "s"
}
