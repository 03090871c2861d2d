package handlers

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"
)

// startCannedOrigin is a minimal keep-alive HTTP/1.1 origin that answers
// every request with the same 1 KiB response and allocates nothing per
// request, so the benchmark's allocs/op belong to the proxy.
func startCannedOrigin(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					// Requests here have no body: the head ends at an empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// BenchmarkProxy measures one GET through Proxy.Handle to a loopback
// origin returning 1 KiB, body copied out as hertz would, connection kept
// alive. Run: go test ./handlers -run '^$' -bench Proxy -benchtime 2000x.
func BenchmarkProxy(b *testing.B) {
	origin := startCannedOrigin(b)
	p, err := NewProxy(ProxyConfig{Route: "bench", Upstreams: []string{origin}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	b.ReportAllocs()
	b.SetBytes(1024)
	b.RunParallel(func(pb *testing.PB) {
		c := app.NewContext(0)
		buf := make([]byte, 4096)
		ctx := context.Background()
		for pb.Next() {
			c.Request.Header.SetMethod("GET")
			c.Request.SetRequestURI("/item?id=1")
			c.Request.Header.SetHost("bench.example")
			c.Request.Header.Set("X-Forwarded-For", "192.0.2.1")
			c.Request.Header.Set("Accept", "*/*")
			p.Handle(ctx, c)
			if c.Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
			}
			// Bodies up to smallBodyMax are read whole; larger ones stream.
			n, err := len(c.Response.Body()), error(nil)
			if c.Response.IsBodyStream() {
				n, err = copyBuffer(buf, c.Response.BodyStream())
			}
			if err != nil || n != 1024 {
				b.Fatalf("body %d bytes: %v", n, err)
			}
			c.Reset() // closes a body stream: the connection goes back to the pool
		}
	})
}

// copyBuffer drains r into buf without io.Copy's interface checks.
func copyBuffer(buf []byte, r io.Reader) (int, error) {
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
