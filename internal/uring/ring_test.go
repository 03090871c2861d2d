package uring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testRing returns the ring for the tests, or skips when the kernel
// refuses io_uring (fails instead under EDGELOOP_REQUIRE_BPF=1, which CI
// sets: the CI machine allows it).
func testRing(t testing.TB) *Ring {
	t.Helper()
	ringOnce.Do(func() { sharedRing, sharedErr = New() })
	if sharedErr != nil {
		if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
			t.Fatalf("io_uring: %v", sharedErr)
		}
		t.Skipf("io_uring: %v", sharedErr)
	}
	return sharedRing
}

var (
	ringOnce   sync.Once
	sharedRing *Ring
	sharedErr  error
)

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func fdOf(t testing.TB, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return buf
}

func TestSendsArriveInOrder(t *testing.T) {
	r := testRing(t)
	c, s := pair(t)
	snd := r.NewSend(fdOf(t, s), s)
	var want bytes.Buffer
	for i := range 200 {
		a := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*37%5000)
		b := bytes.Repeat([]byte{byte('A' + i%26)}, i*53%3000)
		if err := snd.Wait(); err != nil {
			t.Fatalf("send %d: %v", i-1, err)
		}
		if err := snd.Start(a, b, time.Second, time.Time{}); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		want.Write(a)
		want.Write(b)
		if i%7 == 0 { // the peer reads meanwhile, sometimes
			got := readN(t, c, want.Len())
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("after send %d: bytes differ", i)
			}
			want.Reset()
		}
	}
	if err := snd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, want.Len()); !bytes.Equal(got, want.Bytes()) {
		t.Fatal("last bytes differ")
	}
}

// Many connections sending at once share batches, and each peer gets its
// own bytes only.
func TestConcurrentSendsStayOnTheirConnections(t *testing.T) {
	r := testRing(t)
	const conns, rounds = 32, 50
	before := r.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c, s := pair(t)
		snd := r.NewSend(fdOf(t, s), s)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for k := range rounds {
				msg := []byte{byte(i), byte(k), 'x', 'y'}
				if err := snd.Start(msg, nil, time.Second, time.Time{}); err != nil {
					errs <- err
					return
				}
				if err := snd.Wait(); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 4*rounds)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				errs <- err
				return
			}
			for k := range rounds {
				if buf[4*k] != byte(i) || buf[4*k+1] != byte(k) {
					errs <- errors.New("bytes of another connection or out of order")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after := r.Stats()
	if sends := after.Sends - before.Sends; sends < conns*rounds {
		t.Fatalf("ring counted %d sends, want at least %d", sends, conns*rounds)
	}
	if after.Submissions == before.Submissions {
		t.Fatal("no submissions counted")
	}
}

// A send that cannot complete because the peer reads nothing is cancelled
// after its timeout, and Wait reports a timeout.
func TestSendTimesOutWhenPeerDoesNotRead(t *testing.T) {
	r := testRing(t)
	_, s := pair(t)
	_ = s.SetWriteBuffer(4096)
	snd := r.NewSend(fdOf(t, s), s)
	chunk := make([]byte, MaxSend)
	start := time.Now()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		if err = snd.Start(chunk, nil, 200*time.Millisecond, time.Time{}); err != nil {
			t.Fatal(err)
		}
		err = snd.Wait()
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a timeout", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a net.Error timeout", err)
	}
	if since := time.Since(start); since < 200*time.Millisecond {
		t.Fatalf("timed out after %v, before the 200ms timeout", since)
	}
	if r.Stats().TimedOut == 0 {
		t.Fatal("no timed-out send counted")
	}
}

// A send to a peer that is gone fails with the error write(2) would give.
func TestSendErrorIsReported(t *testing.T) {
	r := testRing(t)
	c, s := pair(t)
	_ = c.SetLinger(0)
	c.Close() // RST
	time.Sleep(50 * time.Millisecond)
	snd := r.NewSend(fdOf(t, s), s)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		if err = snd.Start([]byte("hello"), nil, time.Second, time.Time{}); err != nil {
			t.Fatal(err)
		}
		err = snd.Wait()
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || (errno != syscall.ECONNRESET && errno != syscall.EPIPE) {
		t.Fatalf("got %v, want ECONNRESET or EPIPE", err)
	}
}

// Close submits a queued send, so the descriptor can be closed and its
// number reused at once: the bytes go to the old peer, never the new one.
func TestCloseSubmitsBeforeDescriptorReuse(t *testing.T) {
	r := testRing(t)
	for round := range 20 {
		c1, s1 := pair(t)
		fd := fdOf(t, s1)
		snd := r.NewSend(fd, s1)
		if err := snd.Start([]byte("for-the-first-peer"), nil, time.Second, time.Time{}); err != nil {
			t.Fatal(err)
		}
		snd.Close()
		s1.Close()
		if err := snd.Start([]byte("late"), nil, time.Second, time.Time{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("start after close: %v, want ErrClosed", err)
		}
		c2, s2 := pair(t) // likely takes the descriptor number just freed
		reused := fdOf(t, s2) == fd
		if got := string(readN(t, c1, len("for-the-first-peer"))); got != "for-the-first-peer" {
			t.Fatalf("round %d: first peer got %q", round, got)
		}
		_ = c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var b [64]byte
		if n, err := c2.Read(b[:]); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d (descriptor reused: %v): second peer read %q, %v", round, reused, b[:n], err)
		}
	}
}

func TestStartRejectsBadSends(t *testing.T) {
	r := testRing(t)
	_, s := pair(t)
	snd := r.NewSend(fdOf(t, s), s)
	if err := snd.Start(nil, nil, 0, time.Time{}); err == nil {
		t.Fatal("empty send accepted")
	}
	if err := snd.Start(make([]byte, MaxSend+1), nil, 0, time.Time{}); err == nil {
		t.Fatal("oversize send accepted")
	}
	if err := snd.Start([]byte("x"), nil, 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := snd.Start([]byte("y"), nil, 0, time.Time{}); err == nil {
		t.Fatal("second send accepted before Wait")
	}
	if err := snd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSend(b *testing.B) {
	r := testRing(b)
	c, s := pair(b)
	go func() { _, _ = io.Copy(io.Discard, c) }()
	snd := r.NewSend(fdOf(b, s), s)
	msg := make([]byte, 1200)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := snd.Start(msg, nil, time.Second, time.Time{}); err != nil {
			b.Fatal(err)
		}
		if err := snd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// When the kernel refuses a submission, the queued sends fail with its
// error instead of waiting forever.
func TestSubmitFailureFailsSends(t *testing.T) {
	testRing(t) // skips where io_uring is unavailable
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, s := pair(t)
	snd := r.NewSend(fdOf(t, s), s)
	syscall.Close(r.fd) // io_uring_enter now fails with EBADF
	if err := snd.Start([]byte("lost"), nil, time.Second, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := snd.Wait(); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Wait after a refused submission: %v, want EBADF", err)
	}
	if err := snd.Start([]byte("again"), nil, time.Second, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := snd.Wait(); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("second send: %v, want EBADF", err)
	}
}

// A short send (as kernels that ignore MSG_WAITALL on sends complete them
// when the socket has room for part) is finished in later batches: the
// peer gets every byte in order and Wait reports success.
func TestShortSendsAreFinished(t *testing.T) {
	r := testRing(t)
	sendFlags = msgNoSignal
	defer func() { sendFlags = msgNoSignal | msgWaitAll }()
	c, s := pair(t)
	_ = s.SetWriteBuffer(16 << 10) // less than a send: each completes in parts
	snd := r.NewSend(fdOf(t, s), s)
	var want bytes.Buffer
	got := make(chan []byte, 1)
	const sends = 40
	for i := range sends {
		want.Write(bytes.Repeat([]byte{byte('a' + i%26)}, MaxSend))
	}
	go func() {
		b := make([]byte, 0, want.Len())
		buf := make([]byte, 3000)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for len(b) < want.Len() {
			n, err := c.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- b
	}()
	before := r.Stats()
	for i := range sends {
		chunk := want.Bytes()[i*MaxSend : (i+1)*MaxSend]
		if err := snd.Start(chunk, nil, 10*time.Second, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := snd.Wait(); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, not the %d sent in order", len(b), want.Len())
	}
	if after := r.Stats(); after.Sends-before.Sends <= sends {
		t.Fatalf("%d sends submitted for %d writes: no short send to finish, the test tests nothing", after.Sends-before.Sends, sends)
	}
}
