package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTimeouts: the upstream timeout (504), the keep-alive idle timeout and
// the read timeout of a request whose bytes stop coming, in both wake
// orders. In arrival order the deadlines are set on sockets only when a
// call waits (fairpoll's lazy deadlines), which must fire neither early nor
// much late, and must not fail a connection that waited longer than a
// deadline set for an earlier request.
func TestTimeouts(t *testing.T) {
	for _, order := range []string{"arrival", "runtime"} {
		t.Run(order, func(t *testing.T) { testTimeouts(t, order) })
	}
}

func testTimeouts(t *testing.T, order string) {
	slow := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	cfg := writeFile(t, "t.yaml", fmt.Sprintf(`limits: {max_connections_per_ip: -1}
rate_limit: {rate: "off"}
timeouts: {read: 1s, idle: 1s}
tune: {wake_order: %s}
routes:
  - path: /
    upstream: %s
    timeout: 400ms
`, order, slow.URL))
	p := startEnv(t, []string{"GOMAXPROCS=1"}, "--config", cfg)
	if want := "wake_order=" + order; !strings.Contains(p.logs(), want) {
		t.Fatalf("log has no %s:\n%s", want, p.logs())
	}

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func(path string) (int, time.Duration) {
		t.Helper()
		start := time.Now()
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}

	// An upstream answering within the route's timeout; then, on the same
	// connections, one 200 ms late after the client waited 700 ms: longer
	// than the deadlines armed for the first request ran (upstream 400 ms,
	// and the keep-alive wait's is 1 s, so still inside it).
	if code, _ := roundTrip("/a?wait=250ms"); code != 200 {
		t.Fatalf("upstream within its timeout: %d", code)
	}
	time.Sleep(700 * time.Millisecond)
	if code, _ := roundTrip("/b?wait=200ms"); code != 200 {
		t.Fatalf("second request on the connection: %d", code)
	}
	// An upstream slower than the route's 400 ms: 504, not before it.
	code, took := roundTrip("/c?wait=3s")
	if code != 504 {
		t.Fatalf("upstream slower than the route timeout: %d, want 504", code)
	}
	if took < 400*time.Millisecond || took > 2500*time.Millisecond {
		t.Errorf("504 after %v, want it at the 400 ms route timeout", took)
	}

	// The keep-alive connection is closed after the 1 s idle timeout, not
	// before it.
	idleFrom := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent bytes on an idle connection")
	}
	if idle := time.Since(idleFrom); idle < time.Second || idle > 4*time.Second {
		t.Errorf("idle connection closed after %v, want it at the 1 s idle timeout", idle)
	}

	// A request whose header stops coming is cut off by the 1 s read
	// timeout: the server answers (408) or closes, not before it.
	c2, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprint(c2, "GET /d HTTP/1.1\r\nHost: t\r\n")
	cutFrom := time.Now()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, c2)
	if cut := time.Since(cutFrom); cut < 900*time.Millisecond || cut > 4*time.Second {
		t.Errorf("incomplete request cut off after %v, want it at the 1 s read timeout", cut)
	}
}
