package engine

import (
	"context"
	"net"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	hnetpoll "github.com/cloudwego/hertz/pkg/network/netpoll"
	np "github.com/cloudwego/netpoll"

	"github.com/edgeloop/edgeloop/engine/limit"
	"github.com/edgeloop/edgeloop/tune"
)

// netpollAccept applies the connection caps for the netpoll transport, which
// accepts inside its event loop rather than through a net.Listener we can
// wrap. A connection over a cap is reset before any request is read; a
// close callback on netpoll's connection releases the slot.
func (s *Server) netpollAccept(set *connSet[*npConnState], conn net.Conn) context.Context {
	ctx := context.Background()
	npc := netpollConn(conn)
	if npc == nil {
		// Without a close callback a slot could never be released: do not
		// take one.
		s.log.Warn("netpoll connection without close callback; connection caps not applied")
		return ctx
	}
	ip := remoteIP(conn.RemoteAddr())
	if s.guardRefuses(ip) {
		_ = conn.Close()
		return ctx
	}
	if err := s.conns.Acquire(ip); err != nil {
		_ = limit.Reset(npc)
		return ctx
	}
	// netpoll turns TCP keepalive on with hertz's idle timeout; edgeloop
	// bounds idle connections with read deadlines instead and keeps
	// keepalive to tune.tcp_keepalive (off by default).
	if fc, ok := npc.(interface{ Fd() int }); ok {
		_ = tune.FDKeepAlive(fc.Fd(), s.cfg.Tune.TCPKeepalive.D())
	}
	st := &npConnState{npc: npc}
	set.add(st)
	// netpoll's read timeout bounds each wait for bytes, so a client
	// trickling header bytes would never be cut off: bound the whole first
	// request instead. SetReadTimeout (called by hertz and by front) clears it.
	if rt := s.cfg.Timeouts.Read.D(); rt > 0 {
		_ = npc.SetReadDeadline(time.Now().Add(rt))
	}
	_ = npc.AddCloseCallback(func(np.Connection) error {
		s.conns.Release(ip)
		set.remove(st)
		return nil
	})
	// The request context hertz gives handlers derives from this one, so
	// front finds the connection's drain state here.
	return context.WithValue(ctx, npStateKey{}, st)
}

// netpollConn returns the netpoll connection inside hertz's wrapper, or nil.
func netpollConn(conn any) np.Connection {
	if hc, ok := conn.(*hnetpoll.Conn); ok {
		npc, _ := hc.Conn.(np.Connection)
		return npc
	}
	return nil
}

// netpollRequestDeadlines runs around each request on the netpoll transport:
// the headers have been read, so the body gets the per-wait read timeout;
// after the response, the next request must arrive whole within idle+read.
func (s *Server) netpollRequestDeadlines(c *app.RequestContext) (after func()) {
	npc := netpollConn(c.GetConn())
	if npc == nil {
		return func() {}
	}
	read := s.cfg.Timeouts.Read.D()
	_ = npc.SetReadTimeout(read)
	return func() { _ = npc.SetReadDeadline(time.Now().Add(s.cfg.Timeouts.Idle.D() + read)) }
}
