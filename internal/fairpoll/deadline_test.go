package fairpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// writeAfter writes b to c after d, from another goroutine.
func writeAfter(t *testing.T, c io.Writer, d time.Duration, b string) {
	t.Helper()
	go func() {
		time.Sleep(d)
		_, _ = c.Write([]byte(b))
	}()
}

func TestReadDeadlineLazy(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := NewReader(srv[0])
	buf := make([]byte, 16)

	// A read that waits past its deadline times out, and not before it.
	start := time.Now()
	_ = r.SetDeadline(start.Add(40 * time.Millisecond))
	if _, err := r.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("the deadline fired after %v, before the 40ms asked for", waited)
	}

	// The deadline set on the socket for that read has expired. A later
	// deadline asked for is not set until a read waits; the read must not
	// fail with the expired one (it is retried with the one asked for).
	_ = r.SetDeadline(time.Now().Add(10 * time.Second))
	writeAfter(t, cli[0], 20*time.Millisecond, "one")
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("Read after an expired earlier deadline = %q, %v; want \"one\"", buf[:n], err)
	}

	// No deadline after one was set: reads wait as long as it takes.
	_ = r.SetDeadline(time.Now().Add(20 * time.Millisecond))
	writeAfter(t, cli[0], 5*time.Millisecond, "two")
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "two" {
		t.Fatalf("Read = %q, %v; want \"two\"", buf[:n], err)
	}
	_ = r.SetDeadline(time.Time{})
	writeAfter(t, cli[0], 80*time.Millisecond, "three")
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "three" {
		t.Fatalf("Read without a deadline = %q, %v; want \"three\"", buf[:n], err)
	}

	// A deadline in the past set by another goroutine wakes a waiting read.
	_ = r.SetDeadline(time.Now().Add(time.Hour))
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = r.SetDeadline(time.Now())
	}()
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(buf)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read interrupted by a past deadline = %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a past deadline set while a read waited did not wake it")
	}
}

func TestReadDeadlineOnSocket(t *testing.T) {
	// Without SetDeadline, a deadline set on the connection itself holds.
	srv, _ := pairs(t, 1)
	r := NewReader(srv[0])
	_ = srv[0].SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the connection's deadline = %v, want a timeout", err)
	}
}

func TestWriteDeadlineLazy(t *testing.T) {
	srv, cli := pairs(t, 1)
	w := NewWriter(srv[0])
	huge := make([]byte, 64<<20)

	// Nobody reads: the write waits and times out at its deadline.
	start := time.Now()
	_ = w.SetDeadline(start.Add(40 * time.Millisecond))
	n, err := w.Write(huge)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(huge) {
		t.Fatalf("Write past the deadline = %d, %v; want a timeout", n, err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("the deadline fired after %v, before the 40ms asked for", waited)
	}

	// Drain what was written, then write again with a later deadline
	// asked for: the expired one on the socket must not fail it.
	got := make(chan int64, 1)
	go func() {
		m, _ := io.CopyN(io.Discard, cli[0], int64(n)+8<<20)
		got <- m
	}()
	time.Sleep(20 * time.Millisecond)
	_ = w.SetDeadline(time.Now().Add(10 * time.Second))
	if m, err := w.Write(huge[:8<<20]); m != 8<<20 || err != nil {
		t.Fatalf("Write after an expired earlier deadline = %d, %v", m, err)
	}
	if m := <-got; m != int64(n)+8<<20 {
		t.Fatalf("peer read %d bytes, want %d", m, int64(n)+8<<20)
	}
}

func TestCallTimeout(t *testing.T) {
	srv, cli := pairs(t, 1)
	r := NewReader(srv[0])
	buf := make([]byte, 16)

	// Data there at once: no wait, no deadline, no clock.
	r.SetCallTimeout(30 * time.Millisecond)
	_, _ = cli[0].Write([]byte("a"))
	time.Sleep(10 * time.Millisecond)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "a" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// A read with nothing coming fails after waiting the timeout, counted
	// from its own wait (the timeout was set 60 ms before it), not sooner.
	time.Sleep(60 * time.Millisecond)
	start := time.Now()
	if _, err := r.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read with nothing coming = %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("timed out after %v, before the 30 ms asked for", waited)
	}
	// Each read has its own timeout: two reads that each wait 90 ms pass
	// a 150 ms timeout though together they wait longer.
	r.SetCallTimeout(150 * time.Millisecond)
	for _, b := range []string{"b", "c"} {
		writeAfter(t, cli[0], 90*time.Millisecond, b)
		if n, err := r.Read(buf); err != nil || string(buf[:n]) != b {
			t.Fatalf("Read = %q, %v; want %q", buf[:n], err, b)
		}
	}
	// Zero: no deadline, though the one set for the last wait has expired.
	r.SetCallTimeout(0)
	time.Sleep(200 * time.Millisecond)
	writeAfter(t, cli[0], 20*time.Millisecond, "d")
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "d" {
		t.Fatalf("Read without a timeout = %q, %v", buf[:n], err)
	}
	// SetDeadline replaces the call timeout.
	w := NewWriter(srv[0])
	w.SetCallTimeout(time.Second)
	if w.CallTimeout() != time.Second {
		t.Fatalf("CallTimeout = %v after SetCallTimeout(1s)", w.CallTimeout())
	}
	_ = w.SetDeadline(time.Now().Add(time.Hour))
	if w.CallTimeout() != 0 {
		t.Fatalf("CallTimeout = %v after SetDeadline, want 0", w.CallTimeout())
	}
}

// BenchmarkReadDeadline: what a server pays per request to re-arm a read
// deadline, on the socket (net.Conn's SetReadDeadline, as hertz does)
// against through a Reader (noted; set on the socket only when a read
// waits and it moved by more than Slack).
func BenchmarkReadDeadline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("socket", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = s.SetReadDeadline(time.Now().Add(time.Minute))
		}
	})
	r := NewReader(s)
	b.Run("fairpoll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.SetDeadline(time.Now().Add(time.Minute))
		}
	})
}
