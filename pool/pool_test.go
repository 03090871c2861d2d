package pool

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestNewUpstreamValidation(t *testing.T) {
	f := func(raw, wantAddr string, wantErr error) {
		t.Helper()
		u, err := NewUpstream(raw, UpstreamConfig{})
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Errorf("%q: err %v, want %v", raw, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		defer u.Close()
		if u.Addr() != wantAddr {
			t.Errorf("%q: addr %q, want %q", raw, u.Addr(), wantAddr)
		}
	}
	f("http://127.0.0.1:8080", "127.0.0.1:8080", nil)
	f("http://127.0.0.1", "127.0.0.1:80", nil)
	f("http://[::1]:81/", "[::1]:81", nil)
	f("https://127.0.0.1:443", "", ErrScheme)
	f("127.0.0.1:80", "", ErrBadURL)
	f("ftp://127.0.0.1:21", "", ErrScheme)
	f("http://127.0.0.1:80/path", "", ErrBadURL)
	f("http://user@127.0.0.1:80", "", ErrBadURL)
	f("http://127.0.0.1:0", "", ErrBadURL)
	f("http://127.0.0.1:x", "", ErrBadURL)
	f("http://:80", "", ErrBadURL)
	f("http://%zz", "", ErrBadURL)
}

func TestConfigDefaults(t *testing.T) {
	c := UpstreamConfig{}.withDefaults()
	if c.MaxIdleConns != 1024 || c.MaxConns != 0 || c.IdleTimeout != 90*time.Second || c.DialTimeout != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if c := (UpstreamConfig{MaxIdleConns: -1}).withDefaults(); c.MaxIdleConns != 0 {
		t.Fatalf("negative MaxIdleConns kept %d idle", c.MaxIdleConns)
	}
}

// serveOrigin serves each connection of a loopback listener with serve,
// in its own goroutine, and closes it after; it returns the origin's URL.
func serveOrigin(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// rawOrigin serves each connection by reading request heads and writing
// the next canned response from replies; it closes after the last one.
func rawOrigin(t *testing.T, replies ...string) string {
	return serveOrigin(t, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for _, r := range replies {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				return
			}
			io.WriteString(c, r)
		}
	})
}

func roundTrip(t *testing.T, u *Upstream, method string) (*Response, string) {
	t.Helper()
	c, err := u.Acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteRequestLine([]byte(method), []byte("/x"))
	c.WriteHeaderString("Host", "h")
	c.EndHead(NoBody)
	if err := c.SendBodyBytes(nil, time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ReadResponse(time.Second, method == "HEAD")
	if err != nil {
		c.Release()
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestResponseFramingAndReuse(t *testing.T) {
	origin := rawOrigin(t,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", // HEAD: no body follows
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	)
	for _, cfg := range []UpstreamConfig{{}, {ArrivalOrder: true}} {
		testFramingAndReuse(t, origin, cfg)
	}
}

func testFramingAndReuse(t *testing.T, origin string, cfg UpstreamConfig) {
	u, err := NewUpstream(origin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i, tc := range []struct {
		method string
		status int
		cl     int64
		body   string
	}{
		{"GET", 200, 5, "hello"},
		{"GET", 201, -1, "abcde"},
		{"GET", 204, -1, ""},
		{"HEAD", 200, 100, ""},
		{"GET", 200, 0, ""},
	} {
		resp, body := roundTrip(t, u, tc.method)
		if resp.StatusCode != tc.status || resp.ContentLength != tc.cl || body != tc.body {
			t.Errorf("%+v %d: got %d cl=%d %q, want %d cl=%d %q", cfg, i, resp.StatusCode, resp.ContentLength, body, tc.status, tc.cl, tc.body)
		}
	}
	if st := u.Stats(); st.Dials != 1 || st.Open != 1 || st.Idle != 1 {
		t.Errorf("%+v: stats %+v: want one connection reused for all five", cfg, st)
	}
}

func TestMalformedResponses(t *testing.T) {
	for _, reply := range []string{
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n",
	} {
		u, _ := NewUpstream(rawOrigin(t, reply), UpstreamConfig{})
		c, err := u.Acquire(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteRequestLine([]byte("GET"), nil)
		c.EndHead(NoBody)
		c.SendBodyBytes(nil, time.Second)
		if _, err := c.ReadResponse(time.Second, false); !errors.Is(err, ErrMalformedResponse) && !errors.Is(err, ErrHeaderTooLarge) {
			t.Errorf("%.40q: err %v, want malformed", reply, err)
		}
		c.Release()
		if st := u.Stats(); st.Open != 0 {
			t.Errorf("released connection still open: %+v", st)
		}
		u.Close()
	}
}

func TestDialRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	u, _ := NewUpstream("http://"+addr, UpstreamConfig{})
	defer u.Close()
	_, err := u.Acquire(context.Background(), false)
	var de *DialError
	if !errors.As(err, &de) || !errors.Is(err, ErrDial) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v: want a *DialError matching ErrDial and ECONNREFUSED", err)
	}
	if st := u.Stats(); st.Dials != 1 || st.DialErrors != 1 || st.Open != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdleLimitAndExpiry(t *testing.T) {
	origin := rawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	u, _ := NewUpstream(origin, UpstreamConfig{MaxIdleConns: 2, IdleTimeout: time.Minute})
	defer u.Close()
	t0 := time.Unix(1000, 0)
	now := t0
	u.now = func() time.Time { return now }
	var conns []*Conn
	for i := 0; i < 3; i++ {
		c, err := u.Acquire(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns { // put back at t0, t0+1s, t0+2s
		now = t0.Add(time.Duration(i) * time.Second)
		c.body = Body{c: c, done: true}
		c.resp.keepAlive = true
		c.body.Close()
	}
	if st := u.Stats(); st.Open != 2 || st.Idle != 2 {
		t.Fatalf("after 3 puts with MaxIdleConns 2: %+v", st)
	}
	if n := u.closeIdleBefore(t0.Add(500 * time.Millisecond)); n != 1 {
		t.Fatalf("expired %d, want the one put at t0", n)
	}
	if n := u.closeIdleBefore(t0.Add(10 * time.Second)); n != 1 {
		t.Fatalf("expired %d, want the last one", n)
	}
	if st := u.Stats(); st.Open != 0 || st.Idle != 0 {
		t.Fatalf("after expiry: %+v", st)
	}
}

func TestMaxConnsWaitsForAReturnedConnection(t *testing.T) {
	origin := rawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	u, _ := NewUpstream(origin, UpstreamConfig{MaxConns: 1})
	defer u.Close()
	c1, err := u.Acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = u.Acquire(ctx, false)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Acquire at MaxConns 1: %v, want to wait until its context ends", err)
	}
	got := make(chan *Conn)
	go func() {
		c, _ := u.Acquire(context.Background(), false)
		got <- c
	}()
	c1.body = Body{c: c1, done: true}
	c1.resp.keepAlive = true
	c1.body.Close()
	select {
	case c2 := <-got:
		if c2 != c1 {
			t.Fatal("waiter got a new connection instead of the returned one")
		}
		c2.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never got the returned connection")
	}
	if st := u.Stats(); st.Dials != 1 || st.Open != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStaleConnection(t *testing.T) {
	t.Run("net.Conn", func(t *testing.T) { testStaleConnection(t, UpstreamConfig{}) })
	// In arrival order the read waits for the netpoller first: the
	// origin's FIN must end that wait.
	t.Run("arrival order", func(t *testing.T) { testStaleConnection(t, UpstreamConfig{ArrivalOrder: true}) })
}

func testStaleConnection(t *testing.T, cfg UpstreamConfig) {
	// One response, then the origin closes without Connection: close.
	origin := rawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	u, _ := NewUpstream(origin, cfg)
	defer u.Close()
	roundTrip(t, u, "GET")
	c, err := u.Acquire(context.Background(), false)
	if err != nil || !c.Reused() {
		t.Fatalf("want the pooled connection: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // let the origin's FIN arrive
	c.WriteRequestLine([]byte("GET"), nil)
	c.EndHead(NoBody)
	err = c.SendBodyBytes(nil, time.Second)
	if err == nil {
		_, err = c.ReadResponse(time.Second, false)
	}
	c.Release()
	if !errors.Is(err, ErrStaleConn) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err %v, want ErrStaleConn", err)
	}
}

func TestTokens(t *testing.T) {
	f := func(list, tok string, want bool) {
		t.Helper()
		if got := HasToken([]byte(list), tok); got != want {
			t.Errorf("HasToken(%q, %q) = %v", list, tok, got)
		}
	}
	f("keep-alive, Close", "close", true)
	f(" X-Foo ,bar", "x-foo", true)
	f("closed", "close", false)
	f("", "close", false)
	if !lastTokenIs([]byte("gzip, chunked"), "chunked") || lastTokenIs([]byte("chunked, gzip"), "chunked") {
		t.Error("lastTokenIs")
	}
}

// TestArrivalOrderDeadlines checks the upstream timeouts when connections
// read and write through fairpoll, which sets deadlines lazily: a deadline
// armed for one exchange and expired while the connection sat idle must
// not fail the next exchange, and a slow origin still times out, not early.
func TestArrivalOrderDeadlines(t *testing.T) {
	delays := []time.Duration{20 * time.Millisecond, 0, 400 * time.Millisecond}
	origin := serveOrigin(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for _, d := range delays {
			if _, err := c.Read(buf); err != nil {
				return
			}
			time.Sleep(d)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		io.Copy(io.Discard, c)
	})
	u, err := NewUpstream(origin, UpstreamConfig{ArrivalOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	exchange := func(timeout time.Duration) error {
		c, err := u.Acquire(context.Background(), false)
		if err != nil {
			return err
		}
		if c.fr == nil || c.fw == nil {
			t.Fatal("ArrivalOrder set but the connection does not read and write through fairpoll")
		}
		c.WriteRequestLine([]byte("GET"), []byte("/"))
		c.EndHead(NoBody)
		if err := c.SendBodyBytes(nil, timeout); err != nil {
			c.Release()
			return err
		}
		resp, err := c.ReadResponse(timeout, false)
		if err != nil {
			c.Release()
			return err
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			return err
		}
		return resp.Body.Close()
	}
	// The first answer waits 20 ms, so the read arms its 50 ms deadline.
	if err := exchange(50 * time.Millisecond); err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	time.Sleep(120 * time.Millisecond) // that deadline expires while idle
	if err := exchange(time.Second); err != nil {
		t.Fatalf("exchange on a connection whose earlier deadline expired while idle: %v", err)
	}
	start := time.Now()
	err = exchange(100 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("exchange with an origin 400 ms late and a 100 ms timeout = %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("timed out after %v, before the 100 ms asked for", waited)
	}
	if st := u.Stats(); st.Dials != 1 {
		t.Errorf("stats %+v: want the first two exchanges on one connection", st)
	}
}

// TestIdleKeptUnderConcurrency: with the default idle cap, a pool that had
// 200 requests in flight keeps all 200 connections when they come back,
// and a second wave of 200 reuses them instead of dialling (a cap below
// the requests in flight closes connections under load only to redial).
func TestIdleKeptUnderConcurrency(t *testing.T) {
	origin := serveOrigin(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	u, err := NewUpstream(origin, UpstreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	const n = 200
	wave := func() {
		var wg sync.WaitGroup
		var held sync.WaitGroup // every request holds its connection until all have one
		held.Add(n)
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := u.Acquire(context.Background(), false)
				held.Done()
				if err != nil {
					errs <- err
					return
				}
				held.Wait()
				c.WriteRequestLine([]byte("GET"), []byte("/"))
				c.EndHead(NoBody)
				if err := c.SendBodyBytes(nil, time.Second); err != nil {
					c.Release()
					errs <- err
					return
				}
				resp, err := c.ReadResponse(5*time.Second, false)
				if err != nil {
					c.Release()
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	wave()
	if st := u.Stats(); st.Dials != n || st.Idle != n || st.Open != n {
		t.Fatalf("after %d concurrent requests: %+v, want %d dialled, open and idle", n, st, n)
	}
	wave()
	if st := u.Stats(); st.Dials != n {
		t.Fatalf("a second wave of %d dialled again: %+v", n, st)
	}
}
