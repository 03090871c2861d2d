package cache

import (
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// BenchmarkHit measures the hit path: Lookup plus writing the stored
// status, headers, Age, Cache-Status and body into a hertz Response.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			benchHit(b, size)
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return string(rune('0'+n>>10/10%10)) + string(rune('0'+n>>10%10)) + "KiB"
	}
	return "small"
}

func benchHit(b *testing.B, size int) {
	c, err := New(Config{Size: 64 << 20, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	url := "http://example.com/bench/object?b=2&a=1"
	body := make([]byte, size)
	req := mkReq("GET", url, "Accept-Encoding", "gzip, deflate, br", "User-Agent", "wrk")
	res := NewResult()
	c.Lookup(req, nil, res)
	resp := mkResp(200, string(body), "Cache-Control", "max-age=3600", "Content-Type", "application/octet-stream",
		"ETag", `"bench"`, "Last-Modified", httpDate(t0.Add(-time.Hour)), "Vary", "Accept-Encoding")
	if err := c.Store(res, req, resp, t0, t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := mkReq("GET", url, "Accept-Encoding", "gzip, deflate, br", "User-Agent", "wrk")
		res := NewResult()
		out := protocol.AcquireResponse()
		for pb.Next() {
			out.Reset()
			if c.Lookup(req, nil, res) != Hit {
				b.Error("not a hit")
				return
			}
			if err := c.Serve(res, out); err != nil {
				b.Error(err)
				return
			}
			if len(out.Body()) != size {
				b.Error("short body")
				return
			}
		}
	})
}
