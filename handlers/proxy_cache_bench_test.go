package handlers

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/engine/compress"
)

// startCacheableOrigin answers every request with the same cacheable
// text body of size bytes.
func startCacheableOrigin(b *testing.B, size int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=3600\r\n" +
		"ETag: \"v1\"\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + strings.Repeat("edgeloop ", size/9+1)[:size])
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
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

// BenchmarkProxyCacheHit measures a cache hit through Proxy.Handle: lookup,
// stored status, headers, Age, Cache-Status and body written to the
// response. "br" is a client accepting brotli after the first hit stored
// the coded variant. Run:
// go test ./handlers -run '^$' -bench ProxyCacheHit -benchtime 2000x
func BenchmarkProxyCacheHit(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
		ae   string
	}{{"identity/1KiB", 1 << 10, ""}, {"identity/64KiB", 64 << 10, ""}, {"br/1KiB", 1 << 10, "gzip, deflate, br"}} {
		b.Run(tc.name, func(b *testing.B) { benchCacheHit(b, tc.size, tc.ae) })
	}
}

func benchCacheHit(b *testing.B, size int, ae string) {
	c, err := cache.New(cache.Config{Size: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	comp, err := compress.New(compress.Config{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewProxy(ProxyConfig{Route: "bench", Upstreams: []string{startCacheableOrigin(b, size)},
		Cache: c, Compress: comp.Handler()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	ctx := context.Background()
	do := func(rc *app.RequestContext) {
		rc.Request.Header.SetMethod("GET")
		rc.Request.SetRequestURI("/item?id=1")
		rc.Request.Header.SetHost("bench.example")
		if ae != "" {
			rc.Request.Header.Set("Accept-Encoding", ae)
		}
		p.Handle(ctx, rc)
	}
	// Fill: the miss streams; reading the stream to its end stores it.
	// Then one hit codes the br variant when the client accepts it.
	for i := 0; i < 2; i++ {
		rc := app.NewContext(0)
		do(rc)
		if rc.Response.IsBodyStream() {
			if _, err := copyBuffer(make([]byte, 8192), rc.Response.BodyStream()); err != nil {
				b.Fatal(err)
			}
		}
		rc.Reset()
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rc := app.NewContext(0)
		for pb.Next() {
			do(rc)
			if rc.Response.StatusCode() != 200 || rc.Response.IsBodyStream() {
				b.Errorf("not a hit: %d %s", rc.Response.StatusCode(), rc.Response.Header.Peek("Cache-Status"))
				return
			}
			if ae != "" && string(rc.Response.Header.ContentEncoding()) != "br" {
				b.Errorf("coded variant not served: %q", rc.Response.Header.ContentEncoding())
				return
			}
			if ae == "" && len(rc.Response.Body()) != size {
				b.Errorf("body %d bytes", len(rc.Response.Body()))
				return
			}
			rc.Reset()
		}
	})
}
