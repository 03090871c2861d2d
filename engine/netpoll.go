package engine

import (
	"context"
	"net"

	np "github.com/cloudwego/netpoll"
)

// netpollAccept applies the connection caps for the netpoll transport, which
// accepts inside its event loop rather than through a net.Listener we can
// wrap. A connection over a cap is closed before any request is read; a
// close callback releases the slot.
func (s *Server) netpollAccept(conn net.Conn) context.Context {
	ctx := context.Background()
	ip := remoteIP(conn.RemoteAddr())
	if err := s.conns.Acquire(ip); err != nil {
		_ = conn.Close()
		return ctx
	}
	openConns.Add(1)
	release := func(np.Connection) error {
		s.conns.Release(ip)
		openConns.Add(-1)
		return nil
	}
	if cc, ok := conn.(interface {
		AddCloseCallback(np.CloseCallback) error
	}); ok {
		if err := cc.AddCloseCallback(release); err == nil {
			return ctx
		}
	}
	// Without a close callback the slot could never be released; do not hold it.
	_ = release(nil)
	return ctx
}
