package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestDefaultSite(t *testing.T) {
	p := start(t)
	c := client()
	resp, body := get(t, c, p.url("/"))
	if resp.StatusCode != 200 || !strings.Contains(body, "edgeloop") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the response")
	}
	// The same page compressed for a client that accepts gzip only.
	resp, zbody := get(t, c, p.url("/"), "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip: headers %v", resp.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != body {
		t.Error("gzip body does not decompress to the identity body")
	}
	resp, _ = get(t, c, p.url("/no/such/file"))
	if resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
}

func TestRootDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/hello.txt", []byte("hello from a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--root", dir)
	resp, body := get(t, client(), p.url("/hello.txt"))
	if resp.StatusCode != 200 || body != "hello from a directory\n" {
		t.Fatalf("GET /hello.txt: %d %q", resp.StatusCode, body)
	}
}

// origin is a real HTTP server in the test that records what it received.
type origin struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	lastReq *http.Request
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.lastReq = r.Clone(r.Context())
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastReq
}

func TestProxyHeaders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "must not reach the client")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "path=%s query=%s", r.URL.Path, r.URL.RawQuery)
	})
	p := start(t, "--upstream", o.URL)
	req, _ := http.NewRequest("GET", p.url("/a/b?x=1&y=2"), nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop-by-hop")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Host = "www.example.test"
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "path=/a/b query=x=1&y=2" {
		t.Fatalf("proxied: %d %q", resp.StatusCode, body)
	}
	r := o.last()
	checks := []struct{ name, got, want string }{
		{"X-Forwarded-For", r.Header.Get("X-Forwarded-For"), "203.0.113.9, 127.0.0.1"},
		{"X-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", r.Header.Get("X-Forwarded-Host"), "www.example.test"},
		{"Host", r.Host, "www.example.test"},
		{"X-Secret (listed in Connection)", r.Header.Get("X-Secret"), ""},
		{"Proxy-Authorization", r.Header.Get("Proxy-Authorization"), ""},
		{"response X-Hop", resp.Header.Get("X-Hop"), ""},
		{"response Keep-Alive", resp.Header.Get("Keep-Alive"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(r.Header.Get("Via"), "edgeloop") || !strings.Contains(resp.Header.Get("Via"), "edgeloop") {
		t.Errorf("Via: upstream saw %q, client saw %q", r.Header.Get("Via"), resp.Header.Get("Via"))
	}
	if r.Header.Get("X-Request-Id") == "" || r.Header.Get("X-Request-Id") != resp.Header.Get("X-Request-Id") {
		t.Errorf("X-Request-Id: upstream %q, client %q", r.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
	}
}

// TestNoOpenProxy sends an absolute-form request target naming another host:
// edgeloop must still only contact its configured upstream.
func TestNoOpenProxy(t *testing.T) {
	victim := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "victim") })
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "configured") })
	p := start(t, "--upstream", o.URL)
	victimHost := strings.TrimPrefix(victim.URL, "http://")
	conn, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET http://%s/steal HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", victimHost, victimHost)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if victim.hits.Load() != 0 {
		t.Fatalf("the unconfigured host was contacted %d times", victim.hits.Load())
	}
	if string(body) != "configured" || o.last().URL.Path != "/steal" {
		t.Errorf("got %d %q; upstream saw path %q", resp.StatusCode, body, o.last().URL.Path)
	}
}

func TestUpstreamErrors(t *testing.T) {
	// A port that refuses: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	slow := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	cfg := writeFile(t, "e.yaml", fmt.Sprintf(`routes:
  - path: /dead/
    upstream: %s
  - path: /slow/
    upstream: %s
    timeout: 300ms
`, dead, slow.URL))
	p := start(t, "--config", cfg)
	c := client()
	begin := time.Now()
	resp, body := get(t, c, p.url("/dead/x"))
	if resp.StatusCode != 502 || !strings.Contains(strings.ToLower(body), "upstream") {
		t.Errorf("dead upstream: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, c, p.url("/slow/x"))
	if resp.StatusCode != 504 {
		t.Errorf("slow upstream: %d %q", resp.StatusCode, body)
	}
	if d := time.Since(begin); d > 8*time.Second {
		t.Errorf("error paths took %v: edgeloop waited past the route timeout", d)
	}
}

func TestRoundRobinAndPassiveHealth(t *testing.T) {
	var a, b atomic.Int64
	oa := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { a.Add(1); fmt.Fprint(w, "a") })
	ob := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { b.Add(1); fmt.Fprint(w, "b") })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p := start(t, "--upstream", oa.URL, "--upstream", ob.URL, "--upstream", dead)
	c := client()
	for i := 0; i < 30; i++ {
		resp, _ := get(t, c, p.url("/rr"))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d (a dead upstream must be skipped, not answered 502)", i, resp.StatusCode)
		}
	}
	if a.Load() < 10 || b.Load() < 10 {
		t.Errorf("round robin spread a=%d b=%d over 30 requests", a.Load(), b.Load())
	}
}

func TestAdminEndpoints(t *testing.T) {
	p := start(t)
	c := client()
	get(t, c, p.url("/"))
	for path, want := range map[string]string{
		"/healthz":      "ok",
		"/readyz":       "ready",
		"/metrics":      `edgeloop_engine_requests_total{code="200",route="/"}`,
		"/debug/pprof/": "goroutine",
	} {
		resp, body := get(t, c, "http://"+p.admin+path)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("admin %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	_, metrics := get(t, c, "http://"+p.admin+"/metrics")
	for _, name := range []string{
		"edgeloop_engine_request_duration_seconds_bucket{route=\"/\",le=\"0.0005\"}",
		"edgeloop_engine_response_body_bytes_total",
		"edgeloop_engine_open_connections",
		"edgeloop_limit_",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The admin endpoints are not on the public port.
	resp, _ := get(t, c, p.url("/metrics"))
	if resp.StatusCode == 200 {
		t.Error("/metrics answered on the public port")
	}
}

// TestGracefulShutdown: a request in flight when SIGTERM arrives completes,
// new connections are refused, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	for _, transport := range []string{"standard", "netpoll"} {
		t.Run(transport, func(t *testing.T) { testGracefulShutdown(t, transport, nil) })
	}
	// One scheduler slot: the standard transport reads in arrival order
	// (tune.wake_order auto).
	t.Run("standard-gomaxprocs1", func(t *testing.T) { testGracefulShutdown(t, "standard", []string{"GOMAXPROCS=1"}) })
}

func testGracefulShutdown(t *testing.T, transport string, env []string) {
	// Two requests are in flight when SIGTERM arrives: one waiting for its
	// origin, one streaming a large body that takes a while to write.
	const streamed = 64 << 20
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Length", fmt.Sprint(streamed))
			for sent := 0; sent < streamed; sent += 1 << 20 {
				_, _ = w.Write(make([]byte, 1<<20))
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
		time.Sleep(700 * time.Millisecond)
		fmt.Fprint(w, "finished")
	})
	p := startEnv(t, env, "--upstream", o.URL, "--transport", transport)
	// An idle keep-alive connection must not hold the shutdown up.
	idle := client()
	if resp, _ := get(t, idle, p.url("/idle")); resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %d", resp.StatusCode)
	}
	streamDone := make(chan int64, 1)
	go func() {
		resp, err := client().Get(p.url("/stream"))
		if err != nil {
			streamDone <- -1
			return
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		streamDone <- n
	}()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client().Get(p.url("/slow"))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	// Wait until the origin has both requests (and the idle one), then signal.
	for i := 0; i < 300 && o.hits.Load() < 3; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if n := <-streamDone; n != streamed {
		t.Fatalf("streamed body in flight at SIGTERM: got %d of %d bytes", n, streamed)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("edgeloop did not exit after draining")
	}
	// The drain timeout is 15s: exiting well before it shows the idle
	// keep-alive connection was closed rather than waited for.
	if d := time.Since(signalled); d > 10*time.Second {
		t.Errorf("shutdown took %v: idle connections held it up", d)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.logs())
	}
	if _, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestBodyLimit(t *testing.T) {
	var got atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		fmt.Fprint(w, n)
	})
	cfg := writeFile(t, "b.yaml", "limits:\n  max_body_size: 64KiB\n")
	p := start(t, "--config", cfg, "--upstream", o.URL)
	c := client()
	resp, err := c.Post(p.url("/up"), "application/octet-stream", bytes.NewReader(make([]byte, 32<<10)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "32768" {
		t.Errorf("32 KiB body: %d %q", resp.StatusCode, body)
	}
	resp, err = c.Post(p.url("/up"), "application/octet-stream", bytes.NewReader(make([]byte, 128<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("128 KiB body: %d, want 413", resp.StatusCode)
	}
}
