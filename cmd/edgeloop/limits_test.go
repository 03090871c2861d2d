package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRateLimit429(t *testing.T) {
	cfg := writeFile(t, "r.yaml", "rate_limit:\n  rate: 60/m\n  burst: 3\n")
	p := start(t, "--config", cfg)
	c := client()
	codes := make([]int, 0, 5)
	var retry string
	for i := 0; i < 5; i++ {
		resp, _ := get(t, c, p.url("/1k.txt"))
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	// A burst of 3, then nothing until the next token a second later.
	if fmt.Sprint(codes[:3]) != "[200 200 200]" || codes[3] != 429 || codes[4] != 429 {
		t.Fatalf("codes %v, want 3×200 then 429s", codes)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", retry)
	}
	// Another client address has its own bucket.
	other := clientFrom(t, "127.0.0.2")
	if resp, _ := get(t, other, p.url("/1k.txt")); resp.StatusCode != 200 {
		t.Errorf("second client: %d", resp.StatusCode)
	}
	_, metrics := get(t, c, "http://"+p.admin+"/metrics")
	if !strings.Contains(metrics, `edgeloop_engine_rate_limited_total{route="/"} 2`) {
		t.Errorf("rate-limited requests not counted in /metrics")
	}
}

// clientFrom returns an HTTP client whose connections come from src, a
// loopback address.
func clientFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, DisableCompression: true,
	}}
}

func dialFrom(src, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// served reports whether one request on conn gets a response.
func served(conn net.Conn) bool {
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET /1k.txt HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	buf := make([]byte, 12)
	_, err := io.ReadFull(conn, buf)
	return err == nil && bytes.HasPrefix(buf, []byte("HTTP/1.1 200"))
}

func TestPerIPConnectionCap(t *testing.T) {
	// The standard transport caps in a wrapped listener, netpoll in its
	// accept hook with a close callback: both must hold.
	for _, transport := range []string{"standard", "netpoll"} {
		t.Run(transport, func(t *testing.T) { testPerIPConnectionCap(t, transport) })
	}
}

func testPerIPConnectionCap(t *testing.T, transport string) {
	cfg := writeFile(t, "c.yaml", "limits:\n  max_connections_per_ip: 3\n")
	p := start(t, "--config", cfg, "--transport", transport)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := dialFrom("127.0.0.3", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if !served(c) {
			t.Fatalf("connection %d at cap 3 not served", i+1)
		}
	}
	fourth, err := dialFrom("127.0.0.3", p.addr)
	if err == nil {
		if served(fourth) {
			t.Error("4th connection from one address served at cap 3")
		}
		fourth.Close()
	}
	// Another address is not affected.
	other, err := dialFrom("127.0.0.4", p.addr)
	if err != nil || !served(other) {
		t.Errorf("another address refused while the first is at its cap: %v", err)
	}
	if other != nil {
		other.Close()
	}
	// Once one closes, the address is admitted again.
	conns[0].Close()
	conns = conns[1:]
	var ok bool
	for i := 0; i < 50 && !ok; i++ {
		time.Sleep(20 * time.Millisecond)
		c, err := dialFrom("127.0.0.3", p.addr)
		if err != nil {
			continue
		}
		ok = served(c)
		c.Close()
	}
	if !ok {
		t.Error("address not admitted after one of its connections closed")
	}
}

// TestSlowloris: 1,000 connections trickling header bytes must not stop
// another client from being served.
func TestSlowloris(t *testing.T) {
	for _, transport := range []string{"standard", "netpoll"} {
		t.Run(transport, func(t *testing.T) { testSlowloris(t, transport, "") })
	}
	// The standard transport reading in arrival order (tune.wake_order).
	t.Run("standard-arrival", func(t *testing.T) { testSlowloris(t, "standard", "tune: {wake_order: arrival}\n") })
}

func testSlowloris(t *testing.T, transport, extra string) {
	cfg := writeFile(t, "s.yaml", "limits:\n  max_connections_per_ip: -1\ntimeouts:\n  read: 4s\n"+extra)
	p := start(t, "--config", cfg, "--transport", transport)
	const n = 1000
	var mu sync.Mutex
	var slow []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range slow {
			c.Close()
		}
		mu.Unlock()
	}()
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("127.0.1.%d", 1+i%200)
		c, err := dialFrom(src, p.addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a header byte every 2 s on every slow connection, bounded
		defer wg.Done()
		for round := 0; round < 4; round++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			mu.Lock()
			for _, c := range slow {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = io.WriteString(c, "X")
			}
			mu.Unlock()
		}
	}()
	c := client()
	for i := 0; i < 20; i++ {
		resp, body := get(t, c, p.url("/1k.txt"))
		if resp.StatusCode != 200 || len(body) != 1024 {
			t.Fatalf("legitimate request %d during slowloris: %d, %d bytes", i, resp.StatusCode, len(body))
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// The read timeout (4 s here) cut the trickling connections off: each
	// read ends with EOF or a reset (or an error response) rather than
	// waiting out its own deadline.
	var closed atomic.Int64
	var rg sync.WaitGroup
	for _, s := range slow {
		rg.Add(1)
		go func() {
			defer rg.Done()
			_ = s.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 256)
			if _, err := s.Read(buf); err == nil || !isTimeout(err) {
				closed.Add(1)
			}
		}()
	}
	rg.Wait()
	if got := closed.Load(); got < n*9/10 {
		t.Errorf("only %d of %d slowloris connections were cut off by the read timeout", got, n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
