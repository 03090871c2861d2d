package cache

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(t testing.TB, cfg Config) (*Cache, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Size == 0 {
		cfg.Size = 4 << 20 // entry limit ~4 KiB: chunking is easy to exercise
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, clk
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// mkReq builds a request; headers alternate name, value.
func mkReq(method, url string, hdrs ...string) *protocol.Request {
	req := protocol.AcquireRequest()
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	return req
}

// mkResp builds an origin response; headers alternate name, value.
func mkResp(status int, body string, hdrs ...string) *protocol.Response {
	resp := protocol.AcquireResponse()
	resp.SetStatusCode(status)
	for i := 0; i+1 < len(hdrs); i += 2 {
		if hdrs[i] == "Date" {
			resp.Header.AddArgBytes([]byte("Date"), []byte(hdrs[i+1]), false)
			continue
		}
		resp.Header.Add(hdrs[i], hdrs[i+1])
	}
	resp.SetBody([]byte(body))
	resp.Header.SetContentLength(len(body))
	return resp
}

// fetchStore runs Lookup and stores resp for it, at the clock's time.
func fetchStore(t *testing.T, c *Cache, clk *clock, req *protocol.Request, resp *protocol.Response) error {
	t.Helper()
	res := NewResult()
	c.Lookup(req, nil, res)
	now := clk.Now()
	return c.Store(res, req, resp, now, now)
}

// serve runs Lookup and, for servable outcomes, Serve; it returns the
// outcome and the response.
func serve(t *testing.T, c *Cache, req *protocol.Request) (Outcome, *protocol.Response, *Result) {
	t.Helper()
	res := NewResult()
	out := c.Lookup(req, nil, res)
	resp := protocol.AcquireResponse()
	switch out {
	case Hit, Stale:
		if err := c.Serve(res, resp); err != nil {
			t.Fatalf("serve: %v", err)
		}
	case NotModified:
		if err := c.WriteNotModified(res, resp); err != nil {
			t.Fatalf("304: %v", err)
		}
	}
	return out, resp, res
}
