package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLargeResponses: bodies of 16 KiB and more held in memory (cache hits)
// go out with their header in one writev (engine/bodywrite.go). Whatever
// path writes them, clients get exactly the stored bytes: plain, HEAD,
// Range, pipelined behind and ahead of small responses, on both
// transports and in both wake orders.
func TestLargeResponses(t *testing.T) {
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'a' + byte(i*7%26)
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		case "/edge":
			w.Write(big[:16<<10])
		default:
			fmt.Fprint(w, "small")
		}
	})
	for _, v := range []struct{ name, cfg string }{
		{"standard-arrival", "tune: {wake_order: arrival}\n"},
		{"standard-runtime", "tune: {wake_order: runtime}\n"},
		{"netpoll", "transport: netpoll\n"},
	} {
		t.Run(v.name, func(t *testing.T) {
			cfg := writeFile(t, "l.yaml", v.cfg+fmt.Sprintf(`
cache: {size: 64MiB}
routes:
  - path: /
    upstream: %s
    cache: {}
`, o.URL))
			p := start(t, "--config", cfg)
			c := client()
			for i := range 3 { // a miss, then hits
				resp, body := get(t, c, p.url("/big"))
				if resp.StatusCode != 200 || body != string(big) {
					t.Fatalf("GET /big #%d: %d, %d bytes, equal %v", i, resp.StatusCode, len(body), body == string(big))
				}
				resp, body = get(t, c, p.url("/edge"))
				if resp.StatusCode != 200 || body != string(big[:16<<10]) {
					t.Fatalf("GET /edge #%d: %d, %d bytes", i, resp.StatusCode, len(body))
				}
			}
			resp, body := get(t, c, p.url("/big"), "Range", "bytes=100-20099")
			if resp.StatusCode != 206 || body != string(big[100:20100]) {
				t.Fatalf("Range: %d, %d bytes", resp.StatusCode, len(body))
			}
			req, _ := http.NewRequest("HEAD", p.url("/big"), nil)
			hr, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			hr.Body.Close()
			if hr.StatusCode != 200 || hr.ContentLength != int64(len(big)) {
				t.Fatalf("HEAD: %d, Content-Length %d", hr.StatusCode, hr.ContentLength)
			}

			// Pipelined: small, big, small, big in one write; the answers
			// come back complete and in order.
			conn, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			paths := []string{"/small", "/big", "/small", "/big", "/edge"}
			var reqs strings.Builder
			for _, path := range paths {
				fmt.Fprintf(&reqs, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path)
			}
			if _, err := io.WriteString(conn, reqs.String()); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			for _, path := range paths {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("pipelined %s: %v", path, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := map[string][]byte{"/small": []byte("small"), "/big": big, "/edge": big[:16<<10]}[path]
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, want) {
					t.Fatalf("pipelined %s: %d, %d bytes, %v", path, resp.StatusCode, len(b), err)
				}
			}
		})
	}
}
