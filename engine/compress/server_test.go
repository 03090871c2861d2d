package compress

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/app/server"
	"github.com/cloudwego/hertz/pkg/network/standard"
)

// startServer runs a real hertz server with the middleware on a loopback
// port and returns its base URL; it is shut down when the test ends.
func startServer(t *testing.T, routes func(h *server.Hertz)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(server.WithListener(ln), server.WithTransport(standard.NewTransporter),
		server.WithExitWaitTime(time.Second))
	h.Use(c.Handler())
	routes(h)
	go h.Run() //nolint:errcheck // Run returns when Shutdown is called
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	base := "http://" + ln.Addr().String()
	for i := 0; i < 100; i++ { // at most ~2 s for the server to come up
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return base
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server did not start")
	return ""
}

// do sends one request with Accept-Encoding and returns the response and
// its raw (still coded) body.
func do(t *testing.T, method, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", accept)
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DisableCompression: true}, // keep the coded bytes
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, body
}

// TestOverTheWire checks what a client really receives from hertz: coded
// in-memory and streamed bodies, and a HEAD whose header fields match GET's.
func TestOverTheWire(t *testing.T) {
	big := prose(3 << 20)
	base := startServer(t, func(h *server.Hertz) {
		page := func(_ context.Context, rc *app.RequestContext) {
			rc.Response.Header.Set("ETag", `"p1"`)
			rc.Data(200, "text/html; charset=utf-8", page)
		}
		h.GET("/page", page)
		h.HEAD("/page", page)
		h.GET("/stream", func(_ context.Context, rc *app.RequestContext) {
			rc.SetContentType("application/json")
			rc.SetBodyStream(bytes.NewReader(big), len(big))
		})
	})

	get, body := do(t, "GET", base+"/page", "gzip, br")
	if ce := get.Header.Get("Content-Encoding"); ce != "br" {
		t.Fatalf("GET Content-Encoding %q, want br", ce)
	}
	if got := decode(t, "br", body); !bytes.Equal(got, page) {
		t.Fatalf("GET body decodes to %d bytes, want %d", len(got), len(page))
	}
	if get.ContentLength != int64(len(body)) {
		t.Errorf("GET Content-Length %d, body %d bytes", get.ContentLength, len(body))
	}

	head, hbody := do(t, "HEAD", base+"/page", "gzip, br")
	for _, k := range []string{"Content-Encoding", "Vary", "Etag", "Content-Type"} {
		if g, h := get.Header.Get(k), head.Header.Get(k); g != h {
			t.Errorf("%s: GET %q, HEAD %q", k, g, h)
		}
	}
	if len(hbody) != 0 || head.Header.Get("Content-Length") != "" {
		t.Errorf("HEAD: %d body bytes, Content-Length %q; want neither", len(hbody), head.Header.Get("Content-Length"))
	}

	res, coded := do(t, "GET", base+"/stream", "gzip")
	if ce := res.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("stream Content-Encoding %q, want gzip", ce)
	}
	if len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		t.Errorf("stream Transfer-Encoding %v, want chunked", res.TransferEncoding)
	}
	if got := decode(t, "gzip", coded); !bytes.Equal(got, big) {
		t.Fatalf("stream decodes to %d bytes, want %d", len(got), len(big))
	}
	t.Logf("stream: %d bytes sent as %d gzip bytes", len(big), len(coded))
}
