package fairpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// waitFirstReader returns a Reader on srv with WaitFirst in force; the
// test fails if this toolchain's net.Conn does not have the layout
// WaitFirst expects (it would silently read first again).
func waitFirstReader(t *testing.T, srv net.Conn) *Reader {
	t.Helper()
	r := NewReader(srv)
	if r == nil {
		t.Fatal("NewReader returned nil for a *net.TCPConn")
	}
	if !r.WaitFirst(true) {
		t.Fatal("WaitFirst is not in force: net's poll descriptor layout was not found on this Go release")
	}
	return r
}

// readResult is one Read's outcome.
type readResult struct {
	b   string
	err error
}

// readAsync starts r.Read into a buffer of size n and returns its result
// channel.
func readAsync(r *Reader, n int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		buf := make([]byte, n)
		k, err := r.Read(buf)
		ch <- readResult{string(buf[:k]), err}
	}()
	return ch
}

// await returns the result, failing after 10 s (a lost wake-up hangs).
func await(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return within 10 s")
		return readResult{}
	}
}

// TestWaitFirstSkipsFailedRead checks that a Read after one that emptied
// the socket makes one read(2), not a failing one and then another, and
// loses nothing whether the data comes before or after the Read starts.
func TestWaitFirstSkipsFailedRead(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := waitFirstReader(t, srv[0])
	for i := range 200 {
		msg := []byte{byte('a' + i%26), byte('0' + i%10)}
		var ch <-chan readResult
		switch i % 4 {
		case 0: // data already there when Read starts
			if _, err := cli[0].Write(msg); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
			ch = readAsync(r, 64)
		case 1: // written while Read starts
			ch = readAsync(r, 64)
			if _, err := cli[0].Write(msg); err != nil {
				t.Fatal(err)
			}
		default: // written after Read waits
			ch = readAsync(r, 64)
			time.Sleep(time.Millisecond)
			if _, err := cli[0].Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		res := await(t, ch)
		if res.err != nil || res.b != string(msg) {
			t.Fatalf("round %d: Read = %q, %v; want %q", i, res.b, res.err, msg)
		}
		if i > 0 && r.calls != 1 {
			t.Fatalf("round %d: %d read(2) calls for one Read after an emptied socket; want 1", i, r.calls)
		}
	}
}

// TestWaitFirstPartialReads checks that a Read that filled its buffer
// reads first next time (more may be queued) and that pieces arriving
// one by one all come through.
func TestWaitFirstPartialReads(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := waitFirstReader(t, srv[0])
	if _, err := cli[0].Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var got []byte
	buf := make([]byte, 4)
	for len(got) < 10 {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "0123456789" {
		t.Fatalf("got %q", got)
	}
	go func() {
		for _, s := range []string{"ab", "cd", "ef"} {
			time.Sleep(2 * time.Millisecond)
			cli[0].Write([]byte(s))
		}
	}()
	got = got[:0]
	for len(got) < 6 {
		res := await(t, readAsync(r, 64))
		if res.err != nil {
			t.Fatal(res.err)
		}
		got = append(got, res.b...)
	}
	if string(got) != "abcdef" {
		t.Fatalf("got %q", got)
	}
}

// TestWaitFirstEnds checks that a Read waiting first ends with the
// deadline, the peer's close and the connection's own close.
func TestWaitFirstEnds(t *testing.T) {
	srv, cli := pairs(t, 3)
	readers := make([]*Reader, 3)
	for i := range srv {
		readers[i] = waitFirstReader(t, srv[i])
		cli[i].Write([]byte("x"))
		if res := await(t, readAsync(readers[i], 8)); res.err != nil || res.b != "x" {
			t.Fatalf("first read: %q, %v", res.b, res.err)
		}
	}

	// Deadline.
	if err := readers[0].SetDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if res := await(t, readAsync(readers[0], 8)); !errors.Is(res.err, os.ErrDeadlineExceeded) {
		t.Fatalf("past the deadline: %q, %v; want a deadline error", res.b, res.err)
	}

	// The peer closes.
	ch := readAsync(readers[1], 8)
	time.Sleep(5 * time.Millisecond)
	cli[1].Close()
	if res := await(t, ch); res.err != io.EOF {
		t.Fatalf("peer closed: %q, %v; want EOF", res.b, res.err)
	}

	// Closed under the waiting Read.
	ch = readAsync(readers[2], 8)
	time.Sleep(5 * time.Millisecond)
	srv[2].Close()
	if res := await(t, ch); !errors.Is(res.err, net.ErrClosed) {
		t.Fatalf("closed: %q, %v; want net.ErrClosed", res.b, res.err)
	}
}

// TestWaitFirstManyConnections runs request/response rounds on 32
// connections at once (readers joining arrival-order batches) and checks
// that every answer arrives.
func TestWaitFirstManyConnections(t *testing.T) {
	const conns, rounds = 32, 100
	srv, cli := pairs(t, conns)
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for i := range conns {
		r := waitFirstReader(t, srv[i])
		wg.Add(2)
		go func() { // server: echo each request
			defer wg.Done()
			buf := make([]byte, 64)
			for range rounds {
				n, err := r.Read(buf)
				if err != nil {
					errs <- err
					return
				}
				if _, err := srv[i].Write(buf[:n]); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // client: one request at a time
			defer wg.Done()
			buf := make([]byte, 64)
			for k := range rounds {
				msg := []byte{byte(i), byte(k)}
				if _, err := cli[i].Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(cli[i], buf[:2]); err != nil || buf[0] != msg[0] || buf[1] != msg[1] {
					errs <- errors.New("wrong or missing answer")
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("rounds did not finish within 30 s: a wake-up was lost")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestWaitFirstOff checks that WaitFirst(false) reads first again.
func TestWaitFirstOff(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := waitFirstReader(t, srv[0])
	if r.WaitFirst(false) {
		t.Fatal("WaitFirst(false) reported in force")
	}
	cli[0].Write([]byte("a"))
	if res := await(t, readAsync(r, 8)); res.err != nil {
		t.Fatal(res.err)
	}
	ch := readAsync(r, 8)
	time.Sleep(5 * time.Millisecond)
	cli[0].Write([]byte("b"))
	if res := await(t, ch); res.err != nil || res.b != "b" {
		t.Fatalf("%q, %v", res.b, res.err)
	}
	if r.calls != 2 {
		t.Fatalf("%d read(2) calls with WaitFirst off; want 2 (EAGAIN, then the data)", r.calls)
	}
}
