package limit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
)

// Listener wraps ln so that Accept applies l's caps. A connection over a cap
// is reset at once (see Reset) and Accept goes on to the next one, so the
// server never sees it. Accepted connections release their slot when closed.
// Accept errors of ln are returned unchanged, so a server's shutdown logic
// ("use of closed network connection") still works.
//
// The caps apply after the kernel has completed the handshake; the kernel
// guard (package bpf) is what stops SYN floods before that.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, l: l}
}

type limitListener struct {
	net.Listener
	l *ConnLimiter
}

// Accept returns the next connection within the caps.
func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := ln.l.Track(c)
		if err == nil {
			return tc, nil
		}
		Reset(c)
	}
}

// Track counts c against the caps by its remote address. On success it
// returns c wrapped so that the first Close releases the slot (later and
// concurrent Closes do not release again). Over a cap it returns
// ErrTooManyConns or ErrTooManyConnsPerIP and leaves c open: the caller
// should Reset it.
//
// Transports that accept internally (netpoll) cannot swap the connection;
// there, call Acquire(RemoteIP(c)) from hertz's OnAccept, Reset on error,
// and Release from the connection's close callback.
func (l *ConnLimiter) Track(c net.Conn) (net.Conn, error) {
	ip := RemoteIP(c)
	if err := l.Acquire(ip); err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, l: l, k: l.mask.keyOf(ip)}, nil
}

// trackedConn is a connection whose slot in l is released on Close.
type trackedConn struct {
	net.Conn
	l        *ConnLimiter
	k        key
	released atomic.Bool
}

// Close closes the connection and, the first time, releases its slot.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.l.release(c.k)
	}
	return err
}

// NetConn returns the underlying connection, as crypto/tls.Conn.NetConn
// does, for code that needs the *net.TCPConn (socket options).
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets io.Copy into the connection keep the kernel fast paths of
// *net.TCPConn (sendfile, splice) that the wrapper would otherwise hide.
func (c *trackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// RemoteIP returns the address of c's peer, or the zero Addr if it has none
// (a Unix socket peer, for example).
func RemoteIP(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr()
	case nil:
		return netip.Addr{}
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr()
		}
		if ip, err := netip.ParseAddr(a.String()); err == nil {
			return ip
		}
		return netip.Addr{}
	}
}

// Reset closes c with a TCP reset rather than a FIN when it can set
// SO_LINGER: a *net.TCPConn (or a wrapper forwarding SetLinger), or a
// connection exposing its socket as Fd() int, as netpoll's connections do.
// With SO_LINGER on and a zero timeout, close(2) discards unsent data and
// sends an RST (socket(7)), so a refused connection leaves no TIME_WAIT on the
// server. Other connections are closed plainly.
func Reset(c net.Conn) error {
	var err error
	switch lc := c.(type) {
	case interface{ SetLinger(int) error }:
		err = lc.SetLinger(0)
	case interface{ Fd() int }:
		err = lingerZero(lc.Fd())
	default:
		err = errors.ErrUnsupported
	}
	if err == nil {
		connectionsReset.Inc()
	}
	return c.Close()
}
