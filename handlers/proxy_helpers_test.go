package handlers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/network/standard"
)

// startOrigin runs a net/http origin on a loopback ephemeral port.
func startOrigin(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// closedPort returns an http URL on a loopback port that was listened on
// and closed: connecting to it is refused.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// startProxy mounts a Proxy for cfg on a real hertz server (standard
// transport, streamed bodies) and returns the proxy and its host:port.
func startProxy(t testing.TB, cfg ProxyConfig) (*Proxy, string) {
	t.Helper()
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(server.WithListener(ln), server.WithStreamBody(true),
		server.WithTransport(standard.NewTransporter), server.WithMaxRequestBodySize(1<<20),
		server.WithExitWaitTime(100*time.Millisecond), server.WithDisablePrintRoute(true))
	h.Any("/*path", p.Handle)
	go h.Run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		p.Close()
	})
	addr := ln.Addr().String()
	for i := 0; i < 100; i++ { // wait until hertz accepts, at most 1s
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, addr
}

// rawRequest sends raw request bytes on a new connection and reads one
// response with its body.
func rawRequest(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// get is a GET through the proxy with Go's client (keep-alive off so each
// request is independent).
func get(t testing.TB, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// echoHeaders is an origin that returns the request head it received.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s host=%s\n", r.Method, r.RequestURI, r.Host)
	for k, v := range r.Header {
		fmt.Fprintf(&b, "%s=%s\n", k, strings.Join(v, "|"))
	}
	io.WriteString(w, b.String())
}

// headerMap parses echoHeaders output.
func headerMap(body string) map[string]string {
	m := map[string]string{}
	lines := strings.Split(body, "\n")
	m[":line"] = lines[0]
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}
