package pool

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
)

// TestArrivalOrderWaitsFirst: an upstream connection in arrival order
// reads the origin's answer with one read(2) per exchange, waiting for the
// netpoller first, also when its request is still in the ring's batch when
// the read starts; with WaitFirst off the same exchanges fail a read each,
// which shows that the count measures the wait.
func TestArrivalOrderWaitsFirst(t *testing.T) {
	const rounds = 40
	origin := serveOrigin(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // the answer is never there when the pool reads
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
				return
			}
		}
	})
	run := func(t *testing.T, waitFirst bool) uint64 {
		u, err := NewUpstream(origin, UpstreamConfig{ArrivalOrder: true})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		var first *Conn
		for i := range rounds {
			c, err := u.Acquire(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = c
				if c.fr == nil || !c.waitFirst {
					t.Fatal("ArrivalOrder set but the connection does not wait before reading")
				}
				if !waitFirst {
					c.waitFirst = c.fr.WaitFirst(false)
				}
			} else if c != first {
				t.Fatalf("exchange %d on another connection", i)
			}
			c.WriteRequestLine([]byte("GET"), []byte("/"))
			c.WriteHeaderString("Host", "h")
			c.EndHead(NoBody)
			if err := c.SendBodyBytes(nil, time.Second); err != nil {
				c.Release()
				t.Fatal(err)
			}
			resp, err := c.ReadResponse(time.Second, false)
			if err != nil {
				c.Release()
				t.Fatalf("exchange %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "hello" {
				t.Fatalf("exchange %d: body %q, %v", i, b, err)
			}
		}
		return first.fr.EmptyReads()
	}
	check := func(t *testing.T) {
		// The first exchange reads first (nothing was read yet), so one
		// read may fail.
		if n := run(t, true); n > 1 {
			t.Errorf("waiting first: %d of %d reads found nothing, want at most 1", n, rounds)
		}
		if n := run(t, false); n < rounds-1 {
			t.Errorf("reading first: %d of %d reads found nothing, want every read but perhaps one", n, rounds)
		}
	}
	t.Run("write", func(t *testing.T) {
		if err := fairpoll.EnableBatchSends(false); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
	t.Run("ring", func(t *testing.T) {
		if err := fairpoll.EnableBatchSends(true); err != nil {
			if os.Getenv("EDGELOOP_REQUIRE_BPF") == "1" {
				t.Fatalf("io_uring: %v", err)
			}
			t.Skipf("io_uring: %v", err)
		}
		defer fairpoll.EnableBatchSends(false)
		before := fairpoll.BatchSendStats().Sends
		check(t)
		if sent := fairpoll.BatchSendStats().Sends - before; sent < 2*rounds {
			t.Errorf("%d requests went through the ring, want %d", sent, 2*rounds)
		}
	})
}
