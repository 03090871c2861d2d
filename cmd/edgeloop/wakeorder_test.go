package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWakeOrder: tune.wake_order picks how the standard transport reads
// connections, auto choosing arrival order with one scheduler slot; in
// arrival order, proxied, cached and static responses under concurrent
// keep-alive load are all intact, a dead origin connection is retried, and
// the read timeout still ends an idle connection.
func TestWakeOrder(t *testing.T) {
	cases := []struct {
		name, order string
		env         []string
		want        string
	}{
		{"auto with GOMAXPROCS=1", "auto", []string{"GOMAXPROCS=1"}, "arrival"},
		{"auto with GOMAXPROCS=2", "auto", []string{"GOMAXPROCS=2"}, "runtime"},
		{"arrival", "arrival", []string{"GOMAXPROCS=2"}, "arrival"},
		{"runtime", "runtime", []string{"GOMAXPROCS=1"}, "runtime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, "w.yaml", "tune: {wake_order: "+tc.order+"}\n")
			p := startEnv(t, tc.env, "--config", cfg)
			if want := "wake_order=" + tc.want; !strings.Contains(p.logs(), want) {
				t.Fatalf("log does not say %s:\n%s", want, p.logs())
			}
		})
	}
	t.Run("netpoll transport", func(t *testing.T) {
		cfg := writeFile(t, "w.yaml", "transport: netpoll\ntune: {wake_order: arrival}\n")
		p := startEnv(t, nil, "--config", cfg)
		if !strings.Contains(p.logs(), "wake_order=runtime") {
			t.Fatalf("netpoll should keep its own order:\n%s", p.logs())
		}
	})
	t.Run("load in arrival order", testArrivalLoad)
}

func testArrivalLoad(t *testing.T) {
	var closeNext atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/cached/") {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		if closeNext.CompareAndSwap(true, false) {
			// This pooled connection goes away after the response: the
			// next request on it must be retried on a fresh one.
			w.Header().Set("Connection", "close")
		}
		fmt.Fprintf(w, "%s|%s", r.URL.Path, strings.Repeat("x", 3000))
	})
	cfg := writeFile(t, "w.yaml", fmt.Sprintf(`
limits: {max_connections_per_ip: -1}
rate_limit: {rate: "off"}
timeouts: {read: 2s, idle: 2s}
tune: {wake_order: arrival}
cache: {size: 16MiB}
routes:
  - path: /cached/
    upstream: %s
    cache: {}
  - path: /
    upstream: %s
`, o.URL, o.URL))
	p := startEnv(t, []string{"GOMAXPROCS=1"}, "--config", cfg)
	if !strings.Contains(p.logs(), "wake_order=arrival") {
		t.Fatalf("not in arrival order:\n%s", p.logs())
	}

	const clients, each = 48, 60
	var wg sync.WaitGroup
	var failed atomic.Int64
	errs := make(chan string, 8)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
			defer c.CloseIdleConnections()
			for j := range each {
				path := fmt.Sprintf("/p/%d/%d", i, j)
				if j%3 == 0 {
					path = fmt.Sprintf("/cached/%d", j%7)
				}
				if i == 0 && j%10 == 5 {
					closeNext.Store(true)
				}
				resp, err := c.Get(p.url(path))
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				want := path + "|" + strings.Repeat("x", 3000)
				if err != nil || resp.StatusCode != 200 || string(body) != want {
					failed.Add(1)
					select {
					case errs <- fmt.Sprintf("GET %s: err %v, body %.40q", path, err, body):
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed", n, clients*each)
	}

	// The read timeout still ends a connection that sends nothing.
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(p.url("/idle"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	// The server may answer 408 first; either way the connection ends
	// well before the client's own deadline.
	if b, err := io.ReadAll(conn); err != nil && isTimeout(err) {
		t.Fatalf("idle connection: read %q, %v; want it closed by the server", b, err)
	}
}
