package handlers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/network"
	"github.com/cloudwego/hertz/pkg/protocol/http1/resp"
)

// staticBenchWriter is a network.Writer that keeps the last response's
// bytes in a reused buffer, so the benchmarks include hertz serializing
// our headers and body without a socket.
type staticBenchWriter struct{ buf []byte }

func (w *staticBenchWriter) Malloc(n int) ([]byte, error) {
	w.buf = append(w.buf, make([]byte, n)...)
	return w.buf[len(w.buf)-n:], nil
}
func (w *staticBenchWriter) WriteBinary(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	return len(b), nil
}
func (w *staticBenchWriter) Flush() error { return nil }

var _ network.Writer = (*staticBenchWriter)(nil)

// benchStatic serves path from s the way hertz's HTTP/1 server loop does on
// a kept-alive connection: one RequestContext per connection, response reset
// between requests, the response written to the connection. headers are
// extra request headers.
func benchStatic(b *testing.B, s *Static, path string, wantLen int, headers ...string) {
	b.Helper()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := app.NewContext(0)
		c.Request.SetRequestURI(path)
		c.Request.Header.SetMethod("GET")
		for i := 0; i+1 < len(headers); i += 2 {
			c.Request.Header.Set(headers[i], headers[i+1])
		}
		w := &staticBenchWriter{buf: make([]byte, 0, 4096)}
		ctx := context.Background()
		for pb.Next() {
			c.Response.Reset()
			s.Handle(ctx, c)
			w.buf = w.buf[:0]
			if err := resp.Write(&c.Response, w); err != nil {
				b.Fatal(err)
			}
			if n := c.Response.Header.ContentLength(); n != wantLen || len(w.buf) < wantLen {
				b.Fatalf("%s: status %d, Content-Length %d, want %d", path, c.Response.StatusCode(), n, wantLen)
			}
		}
	})
}

func BenchmarkStaticEmbedded1K(b *testing.B) {
	s, err := NewStatic(StaticConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchStatic(b, s, "/1k.txt", 1024)
}

func BenchmarkStaticEmbedded1KNotModified(b *testing.B) {
	s, err := NewStatic(StaticConfig{})
	if err != nil {
		b.Fatal(err)
	}
	etag := string(s.embedded["1k.txt"].etag)
	benchStatic(b, s, "/1k.txt", 0, "If-None-Match", etag)
}

func BenchmarkStaticEmbedded1KRange(b *testing.B) {
	s, err := NewStatic(StaticConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchStatic(b, s, "/1k.txt", 100, "Range", "bytes=100-199")
}

func benchRoot(b *testing.B) *Static {
	b.Helper()
	root := b.TempDir()
	body, err := staticSite.ReadFile("site/1k.txt")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "1k.txt"), body, 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := NewStatic(StaticConfig{Root: root, CacheControl: "public, max-age=60"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkStaticRoot1K(b *testing.B) {
	benchStatic(b, benchRoot(b), "/1k.txt", 1024)
}

// BenchmarkStaticRoot1KUncached measures the disk path (open, fstat, read)
// that a cache miss or a disabled cache takes.
func BenchmarkStaticRoot1KUncached(b *testing.B) {
	s := benchRoot(b)
	s.maxFile = -1
	benchStatic(b, s, "/1k.txt", 1024)
}
