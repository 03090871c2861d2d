package fairpoll

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// batchingWriter returns a Writer on srv that batches its sends, or skips
// when the kernel refuses io_uring (fails under EDGELOOP_REQUIRE_BPF=1).
func batchingWriter(t *testing.T, srv net.Conn) *Writer {
	t.Helper()
	if err := EnableBatchSends(true); err != nil {
		if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
			t.Fatalf("io_uring: %v", err)
		}
		t.Skipf("io_uring: %v", err)
	}
	t.Cleanup(func() { _ = EnableBatchSends(false) })
	w := NewWriter(srv)
	if !w.BatchSends() {
		t.Fatal("BatchSends refused with batching enabled")
	}
	return w
}

// Small writes are batched, large ones written directly; the peer gets
// everything in order either way, and a write waits for the batched one
// before it.
func TestBatchedWritesKeepOrder(t *testing.T) {
	srv, cli := pairs(t, 1)
	w := batchingWriter(t, srv[0])
	var want bytes.Buffer
	got := make(chan []byte, 1)
	sizes := []int{10, 3000, 70 << 10, 1, 64 << 10, 200 << 10, 5, 5}
	total := 0
	for _, n := range sizes {
		total += n
	}
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cli[0], int64(total)))
		got <- b
	}()
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		if i%2 == 0 {
			if m, err := w.Write(p); m != n || err != nil {
				t.Fatalf("Write(%d) = %d, %v", n, m, err)
			}
		} else {
			if m, err := w.WriteTwo(p[:n/2], p[n/2:]); m != n || err != nil {
				t.Fatalf("WriteTwo(%d) = %d, %v", n, m, err)
			}
		}
		want.Write(p)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if w.Pending() {
		t.Fatal("Pending after Sync")
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, not the %d written in order", len(b), want.Len())
	}
}

// A batched write that waits for room longer than the write timeout, or
// past the write deadline, reports a timeout (a *net.OpError) at the next
// Sync.
func TestBatchedWriteTimeout(t *testing.T) {
	t.Run("call timeout", func(t *testing.T) {
		testBatchedWriteTimeout(t, func(w *Writer) { w.SetCallTimeout(150 * time.Millisecond) })
	})
	t.Run("deadline", func(t *testing.T) {
		testBatchedWriteTimeout(t, func(w *Writer) { _ = w.SetDeadline(time.Now().Add(300 * time.Millisecond)) })
	})
}

func testBatchedWriteTimeout(t *testing.T, bound func(*Writer)) {
	srv, _ := pairs(t, 1)
	_ = srv[0].(*net.TCPConn).SetWriteBuffer(4096)
	w := batchingWriter(t, srv[0])
	bound(w)
	chunk := make([]byte, 60<<10)
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		_, err = w.Write(chunk)
	}
	if err == nil {
		err = w.Sync()
	}
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("got %v (%T), want a write timeout", err, err)
	}
}

// Close submits a queued write before the connection closes, and writes
// after it fail.
func TestBatchedCloseFlushes(t *testing.T) {
	srv, cli := pairs(t, 1)
	w := batchingWriter(t, srv[0])
	if _, err := w.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	srv[0].Close()
	cli[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(cli[0])
	if err != nil || string(b) != "last words" {
		t.Fatalf("peer read %q, %v", b, err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

// Without EnableBatchSends a Writer does not batch.
func TestBatchSendsOff(t *testing.T) {
	srv, _ := pairs(t, 1)
	if err := EnableBatchSends(false); err != nil {
		t.Fatal(err)
	}
	if NewWriter(srv[0]).BatchSends() {
		t.Fatal("BatchSends on with batching off")
	}
}
