package compress

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/route"
)

// benchText is real HTML: the Go specification shipped with the toolchain,
// falling back to generated prose when GOROOT has no doc directory.
func benchText(b *testing.B, n int) []byte {
	b.Helper()
	spec, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "doc", "go_spec.html"))
	if err != nil || len(spec) < n {
		return prose(n)
	}
	return spec[:n]
}

func BenchmarkNegotiate(b *testing.B) {
	for _, ae := range []string{
		"gzip, deflate, br, zstd",
		"br;q=1.0, gzip;q=0.8, *;q=0.1",
		"identity",
	} {
		v := []byte(ae)
		b.Run(ae, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					Negotiate(v, brGzip)
				}
			})
		})
	}
}

// BenchmarkCoding measures the encoders alone at every level considered for
// the defaults; the out_B metric is the coded size.
func BenchmarkCoding(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		in := benchText(b, size)
		for _, lv := range []struct {
			enc   Encoding
			level int
		}{
			{Gzip, 1}, {Gzip, 4}, {Gzip, 5}, {Gzip, 6}, {Gzip, 9},
			{Brotli, 1}, {Brotli, 3}, {Brotli, 4}, {Brotli, 5}, {Brotli, 6}, {Brotli, 9},
		} {
			pools := newEncoderPools(lv.level, lv.level)
			b.Run(fmt.Sprintf("%dKiB/%v-%d", size>>10, lv.enc, lv.level), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				buf := &buffer{}
				for b.Loop() {
					buf.b = buf.b[:0]
					w := pools.get(lv.enc, buf)
					w.Write(in)
					w.Close()
					pools.put(lv.enc, w)
				}
				b.ReportMetric(float64(len(buf.b)), "out_B")
			})
		}
	}
}

// BenchmarkMiddleware measures a whole request through the middleware with
// the default levels, 1 KiB and 64 KiB bodies, each coding.
func BenchmarkMiddleware(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 10, 64 << 10} {
		body := benchText(b, size)
		e := route.NewEngine(config.NewOptions(nil))
		e.Use(c.Handler())
		e.GET("/x", func(_ context.Context, rc *app.RequestContext) {
			rc.Data(200, "text/html", body)
		})
		for _, accept := range []string{"br", "gzip", "identity"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, accept), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				h := ut.Header{Key: "Accept-Encoding", Value: accept}
				for b.Loop() {
					ut.PerformRequest(e, "GET", "/x", nil, h)
				}
			})
		}
	}
}
