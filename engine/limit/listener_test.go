package limit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// acceptLoop serves ln, handing accepted connections to the returned channel,
// until ln is closed (at cleanup).
func acceptLoop(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v", err)
				}
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	return ch
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next accepted connection, failing after 5s.
func next(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5s")
		return nil
	}
}

// dialRefused connects to addr from src and requires the server to reset
// the connection. On loopback the reset can arrive before the dialer has
// seen the handshake complete, so connect itself may report it.
func dialRefused(t *testing.T, src, addr string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp4", addr)
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection from %s over the cap: %v, want ECONNRESET", src, err)
	}
}

func remoteIs(t *testing.T, c net.Conn, want string) {
	t.Helper()
	if got := RemoteIP(c); got != netip.MustParseAddr(want) {
		t.Fatalf("accepted connection from %v, want %s", got, want)
	}
}

func TestListenerPerIPCap(t *testing.T) {
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewConnLimiter(ConnConfig{MaxPerIP: 2})
	accepted := acceptLoop(t, l.Listener(inner))
	addr := inner.Addr().String()
	rejectedBefore := metricValue(t, connectionsRejectedIP)
	resetBefore := metricValue(t, connectionsReset)

	dialFrom(t, "127.0.0.2", addr)
	s1 := next(t, accepted)
	remoteIs(t, s1, "127.0.0.2")
	dialFrom(t, "127.0.0.2", addr)
	s2 := next(t, accepted)
	remoteIs(t, s2, "127.0.0.2")
	// The third from 127.0.0.2 completes the kernel handshake but is reset
	// by Accept; the server's next connection is the one from 127.0.0.3.
	dialRefused(t, "127.0.0.2", addr)
	dialFrom(t, "127.0.0.3", addr)
	remoteIs(t, next(t, accepted), "127.0.0.3")

	if l.Open() != 3 || l.OpenFrom(netip.MustParseAddr("127.0.0.2")) != 2 {
		t.Fatalf("Open() = %d, OpenFrom(127.0.0.2) = %d; want 3, 2", l.Open(), l.OpenFrom(netip.MustParseAddr("127.0.0.2")))
	}
	if got := metricValue(t, connectionsRejectedIP) - rejectedBefore; got != 1 {
		t.Errorf("per_ip rejections rose by %v, want 1", got)
	}
	if got := metricValue(t, connectionsReset) - resetBefore; got != 1 {
		t.Errorf("resets rose by %v, want 1", got)
	}

	// Closing frees the slot exactly once, however many Closes race.
	s1.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); s2.Close() }()
	}
	wg.Wait()
	s1.Close()
	if l.Open() != 1 {
		t.Fatalf("Open() = %d after closing two connections, want 1", l.Open())
	}

	c5 := dialFrom(t, "127.0.0.2", addr)
	s5 := next(t, accepted)
	remoteIs(t, s5, "127.0.0.2")
	// The wrapped connection carries data both ways.
	if _, err := s5.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	c5.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c5, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v; want hello", buf, err)
	}
	if tc, ok := s5.(interface{ NetConn() net.Conn }); !ok {
		t.Error("accepted connection has no NetConn")
	} else if _, ok := tc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() is %T, want *net.TCPConn", tc.NetConn())
	}
}

func TestListenerTotalCap(t *testing.T) {
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewConnLimiter(ConnConfig{Max: 1})
	accepted := acceptLoop(t, l.Listener(inner))
	addr := inner.Addr().String()
	rejectedBefore := metricValue(t, connectionsRejectedAll)

	dialFrom(t, "127.0.0.2", addr)
	s1 := next(t, accepted)
	dialRefused(t, "127.0.0.3", addr)
	if got := metricValue(t, connectionsRejectedAll) - rejectedBefore; got != 1 {
		t.Errorf("total rejections rose by %v, want 1", got)
	}
	s1.Close()
	dialFrom(t, "127.0.0.3", addr)
	remoteIs(t, next(t, accepted), "127.0.0.3")
}

// TestTrackUnix covers peers without an IP address: only the total cap
// applies, and Reset closes them plainly.
func TestTrackUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptLoop(t, inner)
	l := NewConnLimiter(ConnConfig{Max: 2, MaxPerIP: 1})
	var tracked []net.Conn
	for i := range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s := next(t, accepted)
		if RemoteIP(s).IsValid() {
			t.Fatalf("RemoteIP of a unix peer = %v, want the zero Addr", RemoteIP(s))
		}
		tc, err := l.Track(s)
		if i < 2 {
			if err != nil {
				t.Fatalf("Track %d: %v", i, err)
			}
			tracked = append(tracked, tc)
			continue
		}
		if !errors.Is(err, ErrTooManyConns) {
			t.Fatalf("Track over the total cap = %v, want ErrTooManyConns", err)
		}
		if err := Reset(s); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after Reset of a unix conn: %v, want EOF", err)
		}
	}
	for _, c := range tracked {
		c.Close()
	}
	if l.Open() != 0 {
		t.Fatalf("Open() = %d after closing all, want 0", l.Open())
	}
}

// fdConn exposes a socket only as Fd() int, as netpoll's connections do.
type fdConn struct {
	net.Conn
	fd int
}

func (c fdConn) Fd() int { return c.fd }

func TestResetByFd(t *testing.T) {
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptLoop(t, inner)
	resetBefore := metricValue(t, connectionsReset)
	c := dialFrom(t, "127.0.0.4", inner.Addr().String())
	s := next(t, accepted).(*net.TCPConn)
	rc, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	if err := Reset(fdConn{Conn: s, fd: fd}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Reset by fd: %v, want ECONNRESET", err)
	}
	if got := metricValue(t, connectionsReset) - resetBefore; got != 1 {
		t.Errorf("resets rose by %v, want 1", got)
	}
}
