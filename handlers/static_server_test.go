package handlers

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/network/netpoll"
	"github.com/cloudwego/hertz/pkg/network/standard"
)

// staticServe runs s on a real hertz server on a loopback port with the
// given transport and returns its base URL.
func staticServe(t *testing.T, s *Static, transport string) string {
	t.Helper()
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []config.Option{server.WithListener(ln), server.WithExitWaitTime(100 * time.Millisecond), server.WithDisablePrintRoute(true)}
	if transport == "standard" {
		opts = append(opts, server.WithTransport(standard.NewTransporter))
	} else {
		opts = append(opts, server.WithTransport(netpoll.NewTransporter))
	}
	h := server.New(opts...)
	h.NoRoute(s.Handle)
	go h.Run() //nolint:errcheck // returns when Shutdown is called
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h.Shutdown(ctx) //nolint:errcheck
	})
	return "http://" + ln.Addr().String()
}

// TestStaticOverLoopback checks what only the wire shows — HEAD keeps the
// file's Content-Length with no body, and large files stream intact
// (sendfile on the standard transport, Read copies on netpoll) — for the
// embedded site and a Root directory on both transports.
func TestStaticOverLoopback(t *testing.T) {
	root, big := staticTree(t)
	dir, err := NewStatic(StaticConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	site, err := NewStatic(StaticConfig{})
	if err != nil {
		t.Fatal(err)
	}
	oneK, _ := staticSite.ReadFile("site/1k.txt")
	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()

	type want struct {
		code   int
		length int64 // Content-Length header
		body   []byte
	}
	do := func(t *testing.T, method, url, rng string, w want) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: read body: %v", method, url, err)
		}
		if resp.StatusCode != w.code {
			t.Fatalf("%s %s: %d, want %d", method, url, resp.StatusCode, w.code)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.FormatInt(w.length, 10) {
			t.Fatalf("%s %s: Content-Length %q, want %d", method, url, cl, w.length)
		}
		if !bytes.Equal(body, w.body) {
			t.Fatalf("%s %s: body of %d bytes, want %d", method, url, len(body), len(w.body))
		}
	}

	for _, tr := range []string{"standard", "netpoll"} {
		t.Run(tr, func(t *testing.T) {
			d := staticServe(t, dir, tr)
			e := staticServe(t, site, tr)
			for range 3 { // repeated on kept-alive connections
				do(t, "GET", e+"/1k.txt", "", want{200, 1024, oneK})
				do(t, "GET", d+"/big.bin", "", want{200, int64(len(big)), big})
				do(t, "GET", d+"/big.bin", "bytes=100000-", want{206, int64(len(big) - 100000), big[100000:]})
				do(t, "GET", d+"/hello.txt", "bytes=0-4", want{206, 5, []byte("hello")})
			}
			do(t, "HEAD", e+"/1k.txt", "", want{200, 1024, []byte{}})
			do(t, "HEAD", d+"/hello.txt", "", want{200, 16, []byte{}})
			do(t, "HEAD", d+"/big.bin", "", want{200, int64(len(big)), []byte{}})
			do(t, "GET", d+"/empty.txt", "", want{200, 0, []byte{}})
			do(t, "GET", d+"/sub", "", want{301, int64(len(staticBody301)), staticBody301})
			do(t, "GET", d+"/.env", "", want{404, int64(len(staticBody404)), staticBody404})
		})
	}
}
