package fairpoll

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// pairs returns n connected loopback TCP pairs: server ends, client ends.
func pairs(t *testing.T, n int) (srv, cli []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		srv, cli = append(srv, s), append(cli, c)
		t.Cleanup(func() { c.Close(); s.Close() })
	}
	return srv, cli
}

func TestReadSemantics(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := NewReader(srv[0])
	if r == nil {
		t.Fatal("NewReader returned nil for a *net.TCPConn")
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}

	// Data that is already there, then data that arrives while waiting.
	cli[0].Write([]byte("hello"))
	time.Sleep(10 * time.Millisecond)
	buf := make([]byte, 16)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		cli[0].Write([]byte("world"))
	}()
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "world" {
		t.Fatalf("Read after waiting = %q, %v", buf[:n], err)
	}

	// A deadline gives a timeout error.
	srv[0].SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	srv[0].SetReadDeadline(time.Time{})

	// The peer's close is io.EOF.
	cli[0].Close()
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v, want io.EOF", n, err)
	}

	// Our own close is net.ErrClosed.
	srv[0].Close()
	if _, err := r.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed connection = %v, want net.ErrClosed", err)
	}
}

func TestReadReset(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := NewReader(srv[0])
	// SO_LINGER 0: the close sends a reset.
	cli[0].(*net.TCPConn).SetLinger(0)
	cli[0].Close()
	buf := make([]byte, 16)
	_, err := r.Read(buf)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Addr == nil {
		t.Fatalf("Read after a reset = %v (%T), want a *net.OpError for read", err, err)
	}
}

func TestNewReaderNeedsSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if NewReader(a) != nil {
		t.Fatal("NewReader of a net.Pipe end should be nil")
	}
}

// serveOrder parks one reader per connection, writes one byte to each
// client end in order from a single goroutine, and returns the order in
// which the readers got their bytes.
func serveOrder(t *testing.T, srv, cli []net.Conn, fair bool) []int {
	t.Helper()
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i, s := range srv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			var err error
			if fair {
				_, err = NewReader(s).Read(buf)
			} else {
				_, err = s.Read(buf)
			}
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
	}
	time.Sleep(100 * time.Millisecond) // every reader parked in the netpoller
	// Writes that keep the scheduler slot (Writer), so that no other
	// thread polls the network halfway through and every reader wakes in
	// the same netpoll round.
	for _, c := range cli {
		if _, err := NewWriter(c).Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	return order
}

// TestArrivalOrder: with one scheduler slot, readers woken by the same
// netpoll round are served in the order their data arrived.
func TestArrivalOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if !Enabled() {
		t.Fatal("Enabled() is false with GOMAXPROCS=1")
	}
	const n = 32
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	srv, cli := pairs(t, n)
	plain := serveOrder(t, srv, cli, false)
	t.Logf("runtime order: %v", plain)
	srv, cli = pairs(t, n)
	for round := range 5 {
		got := serveOrder(t, srv, cli, true)
		if raceEnabled {
			slices.Sort(got) // every reader served, in whatever order
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: served in %v, want arrival order %v", round, got, want)
		}
	}
}

func TestWriteSemantics(t *testing.T) {
	srv, cli := pairs(t, 1)
	w := NewWriter(srv[0])
	if w == nil {
		t.Fatal("NewWriter returned nil for a *net.TCPConn")
	}
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}

	// More than the socket buffers hold: the writer waits for the reader.
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cli[0], int64(len(big))))
		got <- b
	}()
	if n, err := w.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write(8 MiB) = %d, %v", n, err)
	}
	if b := <-got; !slices.Equal(b, big) {
		t.Fatalf("reader got %d bytes, not what was written", len(b))
	}

	// A deadline with nobody reading gives a timeout and the count
	// written (more than the socket buffers can take).
	huge := make([]byte, 64<<20)
	srv[0].SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := w.Write(huge)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(huge) {
		t.Fatalf("Write past the deadline = %d, %v; want a timeout", n, err)
	}
	srv[0].SetWriteDeadline(time.Time{})

	// The peer gone: an *net.OpError for write (EPIPE or ECONNRESET).
	cli[0].(*net.TCPConn).SetLinger(0)
	cli[0].Close()
	time.Sleep(20 * time.Millisecond)
	var oe *net.OpError
	for range 3 {
		if _, err = w.Write([]byte("x")); err != nil {
			break
		}
	}
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a closed peer = %v (%T), want a *net.OpError for write", err, err)
	}

	srv[0].Close()
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection = %v, want net.ErrClosed", err)
	}
}

func TestWriteTwo(t *testing.T) {
	srv, cli := pairs(t, 1)
	w := NewWriter(srv[0])
	head := []byte("HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n")
	body := make([]byte, 16<<20) // more than the socket takes at once
	for i := range body {
		body[i] = byte(i * 13)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cli[0], int64(len(head)+len(body))))
		got <- b
	}()
	if n, err := w.WriteTwo(head, body); n != len(head)+len(body) || err != nil {
		t.Fatalf("WriteTwo = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, append(append([]byte(nil), head...), body...)) {
		t.Fatalf("reader got %d bytes, not header then body", len(b))
	}
	// Either part empty.
	for _, c := range [][2][]byte{{nil, []byte("tail")}, {[]byte("head"), nil}} {
		if n, err := w.WriteTwo(c[0], c[1]); n != 4 || err != nil {
			t.Fatalf("WriteTwo(%q, %q) = %d, %v", c[0], c[1], n, err)
		}
	}
	buf := make([]byte, 8)
	cli[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cli[0], buf); err != nil || string(buf) != "tailhead" {
		t.Fatalf("read %q, %v", buf, err)
	}
}
