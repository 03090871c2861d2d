package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsDial connects a WebSocket client to edgeloop from source address src
// ("" for any), with an optional Origin, and a small receive buffer when
// smallRcv is set (so a client that stops reading fills up quickly).
func wsDial(url, src, origin string, smallRcv bool) (*websocket.Conn, *http.Response, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	if smallRcv {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}
	}
	d := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return d.Dial(url, h)
}

func mustWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := wsDial(url, "", "", false)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (p *proc) ws(path string) string { return "ws://" + p.addr + path }

// publish POSTs msg to url and returns the delivered count.
func publish(t *testing.T, url, msg string) int {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("publish %s: %d %s", url, resp.StatusCode, body)
	}
	var r struct {
		Channel   string
		Delivered int
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("publish answer %q: %v", body, err)
	}
	return r.Delivered
}

// waitOpen waits until edgeloop counts n open connections on route.
func waitOpen(t *testing.T, p *proc, route string, n int) {
	t.Helper()
	want := fmt.Sprintf(`edgeloop_ws_connections_open{route=%q} %d`, route, n)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(metricsText(t, p), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("want %s in metrics", want)
}

func metricsText(t *testing.T, p *proc) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the value of the series line starting with series.
func metricValue(t *testing.T, p *proc, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(metricsText(t, p), "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

func TestWSPubSubDelivery(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", `rate_limit: {rate: "off"}
routes:
  - path: /ws/{channel}
    websocket:
      publish_allow: [127.0.0.0/8]
`)
	p := start(t, "--config", cfg)
	var subs []*websocket.Conn
	for range 3 {
		subs = append(subs, mustWS(t, p.ws("/ws/news")))
	}
	other := mustWS(t, p.ws("/ws/other"))
	waitOpen(t, p, "/ws/{channel}", 4)

	const n = 200
	for i := range n {
		var url string
		switch i % 3 { // the admin endpoint, the public one, the route itself
		case 0:
			url = "http://" + p.admin + "/publish/news"
		case 1:
			url = p.url("/publish/news")
		default:
			url = p.url("/ws/news")
		}
		if got := publish(t, url, "m"+strconv.Itoa(i)); got != 3 {
			t.Fatalf("message %d delivered to %d subscribers, want 3", i, got)
		}
	}
	if got := publish(t, "http://"+p.admin+"/publish/other", "only-other"); got != 1 {
		t.Fatalf("other channel: delivered %d, want 1", got)
	}
	for k, c := range subs {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range n {
			_, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("subscriber %d, message %d: %v", k, i, err)
			}
			if want := "m" + strconv.Itoa(i); string(msg) != want {
				t.Fatalf("subscriber %d: got %q, want %q (order)", k, msg, want)
			}
		}
	}
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := other.ReadMessage(); err != nil || string(msg) != "only-other" {
		t.Fatalf("other channel got %q, %v: want only its own message", msg, err)
	}
	if v := metricValue(t, p, `edgeloop_ws_messages_out_total{route="/ws/{channel}"}`); v != 3*n+1 {
		t.Errorf("messages_out_total = %v, want %d", v, 3*n+1)
	}
	if v := metricValue(t, p, `edgeloop_ws_fanout_seconds_count{route="/ws/{channel}"}`); v != 3*n+1 {
		t.Errorf("fanout_seconds_count = %v, want %d", v, 3*n+1)
	}
	// Not in publish_allow: the admin listener is the only way in.
	resp, err := http.Post(p.url("/publish/news"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("loopback publish on the public port: %d", resp.StatusCode)
	}
}

func TestWSPublishRefused(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", `rate_limit: {rate: "off"}
routes:
  - path: /ws/{channel}
    websocket:
      publish_allow: [192.0.2.0/24]
`)
	p := start(t, "--config", cfg)
	for _, u := range []string{p.url("/publish/news"), p.url("/ws/news")} {
		resp, err := http.Post(u, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("POST %s from outside publish_allow: %d, want 403", u, resp.StatusCode)
		}
	}
}

func TestWSCapsAndOrigin(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", `rate_limit: {rate: "off"}
routes:
  - path: /ws/{channel}
    websocket:
      max_conns: 3
      max_conns_per_ip: 2
      allowed_origins: [https://good.example]
`)
	p := start(t, "--config", cfg)
	url := p.ws("/ws/c")
	dial := func(src, origin string) (int, *websocket.Conn) {
		c, resp, err := wsDial(url, src, origin, false)
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return 101, c
		}
		if resp == nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		return resp.StatusCode, nil
	}
	if code, _ := dial("127.0.0.1", "https://evil.example"); code != 403 {
		t.Errorf("foreign origin: %d, want 403", code)
	}
	for i := range 2 {
		if code, _ := dial("127.0.0.1", "https://good.example"); code != 101 {
			t.Fatalf("connection %d from 127.0.0.1: %d, want 101", i, code)
		}
	}
	if code, _ := dial("127.0.0.1", ""); code != 429 {
		t.Errorf("third connection from one address: %d, want 429", code)
	}
	if code, _ := dial("127.0.0.2", ""); code != 101 {
		t.Errorf("connection from a second address: %d, want 101", code)
	}
	if code, _ := dial("127.0.0.3", ""); code != 503 {
		t.Errorf("fourth connection on a route capped at 3: %d, want 503", code)
	}
	m := metricsText(t, p)
	for _, want := range []string{
		`edgeloop_ws_refused_total{reason="max_conns",route="/ws/{channel}"} 1`,
		`edgeloop_ws_refused_total{reason="max_conns_per_ip",route="/ws/{channel}"} 1`,
		`edgeloop_ws_refused_total{reason="origin",route="/ws/{channel}"} 1`,
		`edgeloop_ws_connections_open{route="/ws/{channel}"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestWSSlowConsumer publishes past a stalled client's queue: with
// disconnect it is closed, with drop_oldest it keeps the newest messages;
// either way the other subscribers get every message in order.
func TestWSSlowConsumer(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", `rate_limit: {rate: "off"}
routes:
  - path: /cut/{channel}
    websocket: {send_queue: 4, slow_consumer: disconnect}
  - path: /drop/{channel}
    websocket: {send_queue: 4, slow_consumer: drop_oldest}
`)
	p := start(t, "--config", cfg)
	payload := strings.Repeat("x", 48<<10)
	const n = 300 // 14 MiB: more than the loopback socket buffers hold
	for _, route := range []string{"/cut/", "/drop/"} {
		t.Run(route, func(t *testing.T) {
			slow, _, err := wsDial(p.ws(route+"c"), "", "", true)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			fast := []*websocket.Conn{mustWS(t, p.ws(route+"c")), mustWS(t, p.ws(route+"c"))}
			waitOpen(t, p, route+"{channel}", 3)
			var wg sync.WaitGroup
			errs := make(chan error, len(fast))
			// received[k] counts what fast subscriber k has read. The
			// publisher stays at most window messages ahead of them, so a
			// fast reader descheduled on a busy machine never overflows its
			// own 4-message queue; the stalled one overflows regardless.
			received := make([]atomic.Int64, len(fast))
			for k, c := range fast {
				wg.Go(func() {
					_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
					for i := range n {
						_, msg, err := c.ReadMessage()
						if err != nil {
							errs <- fmt.Errorf("fast subscriber, message %d: %v", i, err)
							received[k].Store(n) // release the publisher
							return
						}
						if want := strconv.Itoa(i) + ":"; !bytes.HasPrefix(msg, []byte(want)) {
							errs <- fmt.Errorf("fast subscriber: message %d out of order", i)
							received[k].Store(n)
							return
						}
						received[k].Store(int64(i + 1))
					}
				})
			}
			const window = 2
			for i := range n {
				deadline := time.Now().Add(10 * time.Second)
				for k := range received {
					for received[k].Load() < int64(i-window) && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
				}
				publish(t, "http://"+p.admin+"/publish/c", strconv.Itoa(i)+":"+payload)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// Now the stalled client reads what it was left.
			_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, last := 0, -1
			var rerr error
			for {
				_, msg, err := slow.ReadMessage()
				if err != nil {
					rerr = err
					break
				}
				i, _ := strconv.Atoi(string(msg[:bytes.IndexByte(msg, ':')]))
				if i <= last {
					t.Fatalf("slow subscriber: %d after %d", i, last)
				}
				got, last = got+1, i
				if i == n-1 {
					break
				}
			}
			policy := map[string]string{"/cut/": "disconnect", "/drop/": "drop_oldest"}[route]
			drops := metricValue(t, p, fmt.Sprintf(`edgeloop_ws_slow_consumer_drops_total{policy=%q,route="%s{channel}"}`, policy, route))
			if drops == 0 {
				t.Errorf("no slow-consumer drops counted")
			}
			switch route {
			case "/cut/":
				if rerr == nil || got >= n {
					t.Errorf("disconnect policy: slow client read %d of %d messages and %v; want it cut off", got, n, rerr)
				}
			case "/drop/":
				if rerr != nil || last != n-1 || got >= n {
					t.Errorf("drop_oldest: slow client read %d messages, last %d, err %v; want gaps and the newest", got, last, rerr)
				}
			}
			t.Logf("%s: slow client read %d of %d; drops %v", route, got, n, drops)
		})
	}
}

func TestWSMessageLimits(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", `rate_limit: {rate: "off"}
routes:
  - path: /ws/{channel}
    websocket: {max_message: 1KiB}
`)
	p := start(t, "--config", cfg)
	c := mustWS(t, p.ws("/ws/c"))
	if err := c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 2048)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("oversize message: %v, want close 1009", err)
	}

	// A frame with a reserved opcode (RFC 6455 §5.2) is a protocol error.
	c2 := mustWS(t, p.ws("/ws/c"))
	if _, err := c2.NetConn().Write([]byte{0x83, 0x80, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c2.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseProtocolError) {
		t.Errorf("reserved opcode: %v, want close 1002", err)
	}
	// A publish larger than max_message is refused.
	resp, err := http.Post("http://"+p.admin+"/publish/c", "text/plain", strings.NewReader(strings.Repeat("b", 2048)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("oversize publish: %d, want 413", resp.StatusCode)
	}
	waitOpen(t, p, "/ws/{channel}", 0)
	m := metricsText(t, p)
	for _, want := range []string{`reason="too_big",route="/ws/{channel}"} 1`, `reason="protocol",route="/ws/{channel}"} 1`} {
		if !strings.Contains(m, "edgeloop_ws_disconnects_total{"+want) {
			t.Errorf("metrics lack disconnects %s", want)
		}
	}
}

// echoUpstream is a WebSocket echo server; "close:CODE" makes it close with
// CODE, and it records the close code it receives.
type echoUpstream struct {
	*httptest.Server
	mu        sync.Mutex
	gotClose  []int
	forwarded string
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	e := &echoUpstream{}
	up := websocket.Upgrader{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		e.mu.Lock()
		e.forwarded = r.Header.Get("X-Forwarded-For") + " " + r.URL.RequestURI()
		e.mu.Unlock()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					e.mu.Lock()
					e.gotClose = append(e.gotClose, ce.Code)
					e.mu.Unlock()
				}
				return
			}
			if code, ok := strings.CutPrefix(string(msg), "close:"); ok {
				n, _ := strconv.Atoi(code)
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(n, "upstream says bye"))
				_, _, _ = c.ReadMessage()
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(e.Close)
	return e
}

func TestWSProxy(t *testing.T) {
	up := newEchoUpstream(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := writeFile(t, "ws.yaml", fmt.Sprintf(`rate_limit: {rate: "off"}
routes:
  - path: /live/
    upstream: ws://%s
    websocket: {max_message: 512KiB}
  - path: /down/
    upstream: ws://%s
    websocket: {}
`, strings.TrimPrefix(up.URL, "http://"), deadAddr))
	p := start(t, "--config", cfg)

	c := mustWS(t, p.ws("/live/room?x=1"))
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100<<10) // 400 KiB, binary
	for i, m := range [][]byte{[]byte("hello"), big} {
		typ := websocket.TextMessage
		if i == 1 {
			typ = websocket.BinaryMessage
		}
		if err := c.WriteMessage(typ, m); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		gt, got, err := c.ReadMessage()
		if err != nil || gt != typ || !bytes.Equal(got, m) {
			t.Fatalf("echo %d: type %d, %d bytes, %v", i, gt, len(got), err)
		}
	}
	up.mu.Lock()
	if up.forwarded != "127.0.0.1 /live/room?x=1" {
		t.Errorf("upstream saw %q", up.forwarded)
	}
	up.mu.Unlock()
	// The upstream's close code and reason reach the client.
	if err := c.WriteMessage(websocket.TextMessage, []byte("close:4001")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "upstream says bye" {
		t.Errorf("upstream close: %v, want 4001 \"upstream says bye\"", err)
	}
	// The client's close code reaches the upstream.
	c2 := mustWS(t, p.ws("/live/"))
	_ = c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "client says bye"))
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, _ = c2.ReadMessage()
	deadline := time.Now().Add(5 * time.Second)
	for {
		up.mu.Lock()
		codes := fmt.Sprint(up.gotClose)
		up.mu.Unlock()
		if strings.Contains(codes, "4002") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream got close codes %s, want 4002", codes)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Upstream down: 502 before any upgrade.
	_, resp, err := wsDial(p.ws("/down/"), "", "", false)
	if err == nil || resp == nil || resp.StatusCode != 502 {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Errorf("upstream down: %v, status %d; want 502", err, code)
	}
}

// TestWSShutdown: SIGTERM sends close 1001 with a reconnect hint to pub/sub
// and proxied clients.
func TestWSShutdown(t *testing.T) {
	up := newEchoUpstream(t)
	cfg := writeFile(t, "ws.yaml", fmt.Sprintf(`rate_limit: {rate: "off"}
routes:
  - path: /ws/{channel}
    websocket: {}
  - path: /live/
    upstream: ws://%s
    websocket: {}
`, strings.TrimPrefix(up.URL, "http://")))
	p := start(t, "--config", cfg)
	clients := []*websocket.Conn{mustWS(t, p.ws("/ws/a")), mustWS(t, p.ws("/ws/b")), mustWS(t, p.ws("/live/"))}
	waitOpen(t, p, "/live/", 1)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	hint := regexp.MustCompile(`^reconnect in ([1-9]|10)s$`)
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || !hint.MatchString(ce.Text) {
			t.Errorf("client %d at shutdown: %v, want 1001 \"reconnect in Ns\"", i, err)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("edgeloop did not exit")
	}
}
