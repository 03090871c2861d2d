package handlers

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxyRequestHeaders(t *testing.T) {
	origin := startOrigin(t, echoHeaders)
	_, addr := startProxy(t, ProxyConfig{Route: "hdr", Upstreams: []string{origin}})
	resp, body := rawRequest(t, addr, "GET /a/b?x=1&y=2 HTTP/1.1\r\n"+
		"Host: client.example\r\n"+
		"Connection: keep-alive, X-Conn-Listed\r\n"+
		"X-Conn-Listed: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"TE: trailers\r\n"+
		"Trailer: X-T\r\n"+
		"Upgrade: websocket\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"X-Forwarded-For: 203.0.113.7, 198.51.100.1\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: forged.example\r\n"+
		"Via: 1.0 fred\r\n"+
		"X-Keep: kept\r\n"+
		"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	m := headerMap(body)
	want := map[string]string{
		":line":             "GET /a/b?x=1&y=2 host=client.example",
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.1, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "client.example",
		"Via":               "1.0 fred|1.1 edgeloop",
		"X-Keep":            "kept",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("upstream %s = %q, want %q", k, m[k], v)
		}
	}
	for _, k := range []string{"X-Conn-Listed", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Upgrade", "Proxy-Authorization"} {
		if v, ok := m[k]; ok {
			t.Errorf("hop-by-hop %s forwarded upstream: %q", k, v)
		}
	}
}

func TestProxyResponseHeaders(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Resp-Listed")
		h.Set("X-Resp-Listed", "1")
		h.Set("Keep-Alive", "timeout=9")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("Via", "1.1 origin")
		h.Set("Date", "Tue, 01 Jan 2030 00:00:00 GMT")
		h.Set("Content-Type", "application/x-test")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Set("X-End", "e2e")
		io.WriteString(w, "hello")
	})
	_, addr := startProxy(t, ProxyConfig{Upstreams: []string{origin}})
	resp, body := get(t, "http://"+addr+"/")
	if body != "hello" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	f := func(k, want string) {
		t.Helper()
		if got := strings.Join(resp.Header.Values(k), "|"); got != want {
			t.Errorf("client %s = %q, want %q", k, got, want)
		}
	}
	f("Via", "1.1 origin|1.1 edgeloop")
	f("X-Resp-Listed", "")
	f("Keep-Alive", "")
	f("Proxy-Authenticate", "")
	f("Upgrade", "")
	f("X-End", "e2e")
	f("Date", "Tue, 01 Jan 2030 00:00:00 GMT")
	f("Content-Type", "application/x-test")
	f("Set-Cookie", "a=1|b=2")
	if resp.ContentLength != 5 {
		t.Errorf("content-length %d, want 5", resp.ContentLength)
	}
}

func TestProxyAbsoluteURIAndHostCannotRedirect(t *testing.T) {
	var evilHits atomic.Int32
	evil := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { evilHits.Add(1) })
	origin := startOrigin(t, echoHeaders)
	evilAddr := strings.TrimPrefix(evil, "http://")
	for _, mode := range []string{HostPreserve, HostUpstream} {
		_, addr := startProxy(t, ProxyConfig{Upstreams: []string{origin}, HostHeader: mode})
		for _, raw := range []string{
			"GET http://" + evilAddr + "/steal?q=1 HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n",
			"GET /steal?q=1 HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n",
		} {
			resp, body := rawRequest(t, addr, raw)
			m := headerMap(body)
			if resp.StatusCode != 200 || !strings.HasPrefix(m[":line"], "GET /steal?q=1 ") {
				t.Fatalf("%s: got %d %q", mode, resp.StatusCode, body)
			}
			wantHost := evilAddr // preserved, but only as a header
			if mode == HostUpstream {
				wantHost = strings.TrimPrefix(origin, "http://")
			}
			if !strings.HasSuffix(m[":line"], "host="+wantHost) {
				t.Errorf("%s: origin saw %q, want host=%s", mode, m[":line"], wantHost)
			}
		}
	}
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("request reached an unconfigured address %d times", n)
	}
}

func TestProxyRoundRobin(t *testing.T) {
	var hits [3]atomic.Int32
	var ups []string
	for i := range hits {
		ups = append(ups, startOrigin(t, func(w http.ResponseWriter, r *http.Request) { hits[i].Add(1) }))
	}
	_, addr := startProxy(t, ProxyConfig{Upstreams: ups})
	for i := 0; i < 30; i++ {
		if resp, _ := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for i := range hits {
		if n := hits[i].Load(); n != 10 {
			t.Errorf("upstream %d got %d of 30 requests, want 10", i, n)
		}
	}
}

func TestProxyPassiveHealthSkipsRefusingUpstream(t *testing.T) {
	var good atomic.Int32
	dead := closedPort(t)
	live := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { good.Add(1) })
	p, addr := startProxy(t, ProxyConfig{Upstreams: []string{dead, live}, FailTimeout: time.Hour})
	for i := 0; i < 10; i++ {
		if resp, body := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q (a failed connect must be retried on the next upstream)", i, resp.StatusCode, body)
		}
	}
	st := p.Stats()[strings.TrimPrefix(dead, "http://")]
	if st.Dials != 1 || st.DialErrors != 1 {
		t.Errorf("dead upstream dialled %d times (%d errors), want once then skipped", st.Dials, st.DialErrors)
	}
	if good.Load() != 10 {
		t.Errorf("live upstream served %d, want 10", good.Load())
	}
}

func TestProxyOriginDown502(t *testing.T) {
	_, addr := startProxy(t, ProxyConfig{Upstreams: []string{closedPort(t), closedPort(t)}})
	for i := 0; i < 3; i++ { // the second and third find both down and still try one
		resp, body := get(t, "http://"+addr+"/")
		if resp.StatusCode != 502 || body != "502 Bad Gateway: upstream connection refused\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
}

func TestProxySlowOrigin504(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	_, addr := startProxy(t, ProxyConfig{Upstreams: []string{slow}, Timeout: 50 * time.Millisecond})
	resp, body := get(t, "http://"+addr+"/")
	if resp.StatusCode != 504 || body != "504 Gateway Timeout: upstream response timed out\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// An origin that answers once per connection and then closes it without
// saying so: the pooled connection is stale and the proxy must retry the
// (bodiless) request on a fresh one instead of answering 502.
func TestProxyRetriesStaleKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; i < 20; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(buf)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			time.Sleep(20 * time.Millisecond) // let the proxy pool it first
			c.Close()
		}
	}()
	p, addr := startProxy(t, ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}})
	for i := 0; i < 3; i++ {
		resp, body := get(t, "http://"+addr+"/")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond) // the origin closes the pooled connection
	}
	if st := p.Stats()[ln.Addr().String()]; st.Dials != 3 {
		t.Errorf("dials = %d, want 3 (each stale connection replaced)", st.Dials)
	}
}

func TestNewProxyConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ProxyConfig
	}{
		{"no upstreams", ProxyConfig{}},
		{"https", ProxyConfig{Upstreams: []string{"https://127.0.0.1:1"}}},
		{"path", ProxyConfig{Upstreams: []string{"http://127.0.0.1:1/x"}}},
		{"bad port", ProxyConfig{Upstreams: []string{"http://127.0.0.1:99999"}}},
		{"host mode", ProxyConfig{Upstreams: []string{"http://127.0.0.1:1"}, HostHeader: "client"}},
		{"negative", ProxyConfig{Upstreams: []string{"http://127.0.0.1:1"}, Timeout: -1}},
	} {
		if p, err := NewProxy(tc.cfg); err == nil {
			p.Close()
			t.Errorf("%s: no error", tc.name)
		}
	}
}
