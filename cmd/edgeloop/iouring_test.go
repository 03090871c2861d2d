package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestBatchedSends: in arrival order, with tune.io_uring on, responses and
// upstream requests are written through the io_uring ring. Every client
// still gets its own bytes in order (proxied, static, pipelined, large and
// slowly read), and a client that stops reading is cut off after the write
// timeout instead of holding a send forever. The same checks run with
// io_uring off.
func TestBatchedSends(t *testing.T) {
	for _, mode := range []string{"auto", "off"} {
		t.Run(mode, func(t *testing.T) { testBatchedSends(t, mode) })
	}
}

func testBatchedSends(t *testing.T, mode string) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/huge": // more than the socket buffers hold
			w.Header().Set("Content-Length", strconv.Itoa(8*len(big)))
			for range 8 {
				if _, err := w.Write(big); err != nil {
					return
				}
			}
		case r.URL.Path == "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		default: // echo the path, padded, so a mix-up shows
			fmt.Fprintf(w, "%s|%s", r.URL.Path, strings.Repeat("x", 900))
		}
	})
	root := t.TempDir()
	if err := os.Mkdir(root+"/static", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root+"/static/f.txt", bytes.Repeat([]byte("s"), 3000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "b.yaml", fmt.Sprintf(`limits: {max_connections_per_ip: -1}
rate_limit: {rate: "off"}
compression: {enabled: false}
timeouts: {write: 1s}
tune: {wake_order: arrival, io_uring: %s}
routes:
  - path: /static/
    root: %s
  - path: /ws/{channel}
    websocket:
      publish_allow: [127.0.0.0/8]
  - path: /
    upstream: %s
`, mode, root, o.URL))
	p := startEnv(t, []string{"GOMAXPROCS=1"}, "--config", cfg)
	want := "sends=write"
	if mode == "auto" {
		want = "sends=io_uring"
		if !strings.Contains(p.logs(), want) && os.Getenv("EDGELOOP_REQUIRE_BPF") != "1" &&
			strings.Contains(p.logs(), "io_uring unavailable") {
			t.Skip("io_uring is not available here")
		}
	}
	if !strings.Contains(p.logs(), want) {
		t.Fatalf("log has no %s:\n%s", want, p.logs())
	}

	// Concurrent keep-alive clients, each checking that every answer is
	// its own.
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			for k := range 40 {
				path := fmt.Sprintf("/c%d/r%d", i, k)
				if k%5 == 4 {
					path = "/static/f.txt"
				}
				resp, err := c.Get(p.url(path))
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					errs <- err
				case resp.StatusCode != 200:
					errs <- fmt.Errorf("%s: status %d", path, resp.StatusCode)
				case path == "/static/f.txt" && len(body) != 3000:
					errs <- fmt.Errorf("%s: %d bytes", path, len(body))
				case path != "/static/f.txt" && !strings.HasPrefix(string(body), path+"|"):
					errs <- fmt.Errorf("%s: got the answer %.30q", path, body)
				default:
					continue
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Pipelined requests on one connection: the answers in order.
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var reqs strings.Builder
	for k := range 10 {
		fmt.Fprintf(&reqs, "GET /pipe/%d HTTP/1.1\r\nHost: t\r\n\r\n", k)
	}
	if _, err := io.WriteString(conn, reqs.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for k := range 10 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("pipelined answer %d: %v", k, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("/pipe/%d|", k); !strings.HasPrefix(string(body), want) {
			t.Fatalf("pipelined answer %d: %.30q, want %q first", k, body, want)
		}
	}

	// WebSockets: the upgrade response goes out batched, then the hub
	// writes frames on the detached socket (detach waits for the batched
	// write first: handlers/wshub's TestSyncWritesThroughWrappers).
	for round := range 5 {
		subs := []*websocket.Conn{mustWS(t, p.ws("/ws/b")), mustWS(t, p.ws("/ws/b"))}
		waitOpen(t, p, "/ws/{channel}", 2)
		msg := fmt.Sprintf("round %d", round)
		if got := publish(t, p.url("/publish/b"), msg); got != 2 {
			t.Fatalf("round %d: delivered to %d subscribers, want 2", round, got)
		}
		for k, c := range subs {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, b, err := c.ReadMessage(); err != nil || string(b) != msg {
				t.Fatalf("round %d, subscriber %d: %q, %v", round, k, b, err)
			}
			_ = c.Close()
		}
		waitOpen(t, p, "/ws/{channel}", 0)
	}

	// A large response read slowly arrives whole.
	slow, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
	sbr := bufio.NewReaderSize(slow, 4096)
	_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(sbr, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(big))
	buf := make([]byte, 256<<10)
	for len(got) < len(big) {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		if len(got) < 2<<20 {
			time.Sleep(20 * time.Millisecond) // slower than the server writes, well within the write timeout
		}
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("slow reader got %d bytes, not the %d sent", len(got), len(big))
	}

	// A client that stops reading: after the write timeout (1s) the
	// server gives up and closes; the client gets what the socket buffers
	// held, then the end of the stream, never the whole 64 MiB body.
	stuck, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprint(stuck, "GET /huge HTTP/1.1\r\nHost: t\r\n\r\n")
	time.Sleep(3 * time.Second)
	_ = stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, stuck)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stuck connection was not closed by the server (read %d bytes, then %v)", n, err)
	}
	if n >= 8*int64(len(big)) {
		t.Fatalf("the stuck client got all %d bytes: no write timeout", n)
	}

	// The admin metrics tell what went through the ring.
	for _, name := range []string{"edgeloop_io_uring_sends_total", "edgeloop_io_uring_timed_out_total"} {
		v := metric(t, p, name)
		if mode == "auto" && v == 0 {
			t.Errorf("%s is 0 with io_uring on", name)
		}
		if mode == "off" && v != 0 {
			t.Errorf("%s is %v with io_uring off", name, v)
		}
	}
}
