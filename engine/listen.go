package engine

import (
	"context"
	"net"
	"sync"
	"time"
)

// listenTCP opens a plain TCP listener. Go enables MPTCP on listeners by
// default since 1.24; reuseport steering and several socket options fail on
// MPTCP sockets, so it is turned off (see DESIGN.md).
func listenTCP(ctx context.Context, addr string) (*net.TCPListener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// trackingListener keeps the set of open connections so a graceful shutdown
// can close the idle ones, counts them, and applies the first request's read
// timeout and the write timeout, which hertz's standard transport does not. Safe for concurrent use.
type trackingListener struct {
	net.Listener
	readTimeout  time.Duration
	writeTimeout time.Duration
	set          *connSet
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// hertz's standard transport arms the read timeout only for TLS
	// handshakes and for the second and later requests of a connection;
	// without this, a client trickling the first request's header bytes
	// (slowloris) would hold the connection forever.
	if l.readTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(l.readTimeout))
	}
	tc := &trackedConn{Conn: c, writeTimeout: l.writeTimeout, set: l.set}
	l.set.add(tc)
	return tc, nil
}

// connSet is the set of open client connections of one server.
type connSet struct {
	mu    sync.Mutex // guards conns
	conns map[*trackedConn]struct{}
}

func newConnSet() *connSet { return &connSet{conns: make(map[*trackedConn]struct{})} }

func (s *connSet) add(c *trackedConn) {
	openConns.Add(1)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c *trackedConn) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		openConns.Add(-1)
	}
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll closes every connection still open: called once no request is in
// flight, so what remains are idle keep-alive connections.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	writeTimeout time.Duration
	set          *connSet
	once         sync.Once
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	return c.Conn.Write(p)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.set.remove(c) })
	return err
}
