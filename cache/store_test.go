package cache

import (
	"bytes"
	"errors"
	"github.com/cloudwego/hertz/pkg/protocol"
	"strings"
	"testing"
	"time"
)

func TestStorability(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		reqHdrs []string
		status  int
		hdrs    []string
		want    error
	}{
		{"200 max-age", "GET", nil, 200, []string{"Cache-Control", "max-age=60"}, nil},
		{"POST", "POST", nil, 200, []string{"Cache-Control", "max-age=60"}, ErrNotStorable},
		{"HEAD not stored", "HEAD", nil, 200, []string{"Cache-Control", "max-age=60"}, ErrNotStorable},
		{"206", "GET", nil, 206, []string{"Cache-Control", "max-age=60"}, ErrNotStorable},
		{"302 no freshness", "GET", nil, 302, []string{"ETag", `"x"`}, ErrNotStorable},
		{"302 explicit", "GET", nil, 302, []string{"Cache-Control", "max-age=60"}, nil},
		{"404 heuristic with LM", "GET", nil, 404, []string{"Last-Modified", httpDate(t0.Add(-time.Hour))}, nil},
		{"200 ETag only (revalidate each time)", "GET", nil, 200, []string{"ETag", `"x"`}, nil},
		{"200 nothing", "GET", nil, 200, nil, ErrNotStorable},
		{"no-store", "GET", nil, 200, []string{"Cache-Control", "max-age=60, no-store"}, ErrNotStorable},
		{"request no-store", "GET", []string{"Cache-Control", "no-store"}, 200, []string{"Cache-Control", "max-age=60"}, ErrNotStorable},
		{"private", "GET", nil, 200, []string{"Cache-Control", "private, max-age=60"}, ErrNotStorable},
		{"private via CDN-Cache-Control only", "GET", nil, 200, []string{"Cache-Control", "private", "CDN-Cache-Control", "max-age=60"}, nil},
		{"no-cache stored", "GET", nil, 200, []string{"Cache-Control", "no-cache", "ETag", `"x"`}, nil},
		{"Authorization", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60"}, ErrNotStorable},
		{"Authorization public", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "public, max-age=60"}, nil},
		{"Authorization s-maxage", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "s-maxage=60"}, nil},
		{"Authorization must-revalidate", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "max-age=60, must-revalidate"}, nil},
		{"Set-Cookie (nginx behaviour)", "GET", nil, 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, ErrNotStorable},
		{"Vary star", "GET", nil, 200, []string{"Cache-Control", "max-age=60", "Vary", "*"}, ErrNotStorable},
		{"unknown coding", "GET", nil, 200, []string{"Cache-Control", "max-age=60", "Content-Encoding", "compress"}, ErrNotStorable},
		{"Expires only", "GET", nil, 200, []string{"Expires", httpDate(t0.Add(time.Minute))}, nil},
	} {
		c, clk := newTestCache(t, Config{})
		req := mkReq(tc.method, "http://example.com/s", tc.reqHdrs...)
		hdrs := append([]string{"Date", httpDate(clk.Now())}, tc.hdrs...)
		err := fetchStore(t, c, clk, req, mkResp(tc.status, "body", hdrs...))
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: Store = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestChunkedRoundTrip(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	limit := c.EntryLimit()
	body := make([]byte, 7*limit+123) // several entries' worth, not a multiple
	for i := range body {
		body[i] = byte(i*7 + i>>9)
	}
	req := mkReq("GET", "http://example.com/big")
	res := NewResult()
	c.Lookup(req, nil, res)
	resp := mkResp(200, "", "Cache-Control", "max-age=60", "Content-Type", "application/octet-stream")
	resp.Header.SetContentLength(len(body))
	f, err := c.BeginFill(res, req, &resp.Header, clk.Now(), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	// stream it in odd pieces, as a proxy copying upstream would
	for off := 0; off < len(body); {
		n := min(1000+off%777, len(body)-off)
		f.Write(body[off : off+n])
		off += n
	}
	if cap(f.buf) > c.chunkSize() {
		t.Errorf("fill buffer grew to %d, above one chunk (%d)", cap(f.buf), c.chunkSize())
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	out, got, res := serve(t, c, mkReq("GET", "http://example.com/big"))
	if out != Hit || !res.m.chunked() {
		t.Fatalf("outcome %v chunked %v", out, res.m.chunked())
	}
	if !bytes.Equal(got.Body(), body) {
		t.Fatalf("chunked body differs: got %d bytes, want %d", len(got.Body()), len(body))
	}
	// overwrite with another body: a new chunk generation, old chunks freed
	oldGen := res.m.chunkGen
	body2 := bytes.Repeat([]byte("z"), 3*limit)
	if err := fetchStore(t, c, clk, req, mkResp(200, string(body2), "Cache-Control", "max-age=60")); err != nil {
		t.Fatal(err)
	}
	_, got, res = serve(t, c, req)
	if !bytes.Equal(got.Body(), body2) || res.m.chunkGen == oldGen {
		t.Fatalf("overwrite: %d bytes, gen %d (old %d)", len(got.Body()), res.m.chunkGen, oldGen)
	}
	var kb [chunkKeyLen]byte
	if _, err := c.fc.Get(chunkKey(&kb, oldGen, 0)); err == nil {
		t.Error("old generation's chunks not deleted")
	}
	// an evicted chunk fails the serve instead of truncating
	c.fc.Del(chunkKey(&kb, res.m.chunkGen, 1))
	res2 := NewResult()
	c.Lookup(req, nil, res2)
	r := protocol.AcquireResponse()
	if err := c.Serve(res2, r); !errors.Is(err, ErrNoEntry) || len(r.Body()) != 0 {
		t.Fatalf("missing chunk: err %v, %d body bytes", err, len(r.Body()))
	}
}

func TestTooBig(t *testing.T) {
	c, clk := newTestCache(t, Config{MaxObjectSize: 10000})
	req := mkReq("GET", "http://example.com/huge")
	// declared too big: refused up front
	if err := fetchStore(t, c, clk, req, mkResp(200, strings.Repeat("x", 10001), "Cache-Control", "max-age=60")); !errors.Is(err, ErrTooBig) {
		t.Fatalf("declared: %v", err)
	}
	// streamed without Content-Length: abandoned mid-way, writes keep succeeding
	res := NewResult()
	c.Lookup(req, nil, res)
	resp := mkResp(200, "", "Cache-Control", "max-age=60")
	resp.Header.SetContentLength(-1)
	f, err := c.BeginFill(res, req, &resp.Header, clk.Now(), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if n, err := f.Write(make([]byte, 1000)); n != 1000 || err != nil {
			t.Fatalf("write %d: %d %v", i, n, err)
		}
	}
	if err := f.Commit(); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("commit: %v", err)
	}
	if out, _, _ := serve(t, c, req); out != Miss {
		t.Fatalf("after too big: %v", out)
	}
	// short body (origin broke off) is not stored
	res = NewResult()
	c.Lookup(req, nil, res)
	resp = mkResp(200, "", "Cache-Control", "max-age=60")
	resp.Header.SetContentLength(500)
	f, _ = c.BeginFill(res, req, &resp.Header, clk.Now(), clk.Now())
	f.Write(make([]byte, 499))
	if err := f.Commit(); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("short body: %v", err)
	}
}

func TestRefresh304(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	req := mkReq("GET", "http://example.com/r")
	err := fetchStore(t, c, clk, req, mkResp(200, "stored body", "Date", httpDate(clk.Now()),
		"Cache-Control", "max-age=10", "ETag", `"abc"`, "X-Version", "1", "Content-Type", "text/plain",
		"Last-Modified", httpDate(t0.Add(-time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second)
	res := NewResult()
	if out := c.Lookup(req, nil, res); out != Revalidate {
		t.Fatalf("want revalidate, got %v", out)
	}
	up := mkReq("GET", "http://origin/r")
	res.SetConditionals(&up.Header)
	if string(up.Header.Peek("If-None-Match")) != `"abc"` || string(up.Header.Peek("If-Modified-Since")) != httpDate(t0.Add(-time.Hour)) {
		t.Fatalf("conditionals: %q %q", up.Header.Peek("If-None-Match"), up.Header.Peek("If-Modified-Since"))
	}
	// a 304 for another representation must not refresh
	bad := mkResp(304, "", "ETag", `"other"`)
	if err := c.Refresh(res, &bad.Header, clk.Now(), clk.Now()); !errors.Is(err, ErrValidatorMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	n304 := mkResp(304, "", "Date", httpDate(clk.Now()), "ETag", `"abc"`, "Cache-Control", "max-age=100", "X-Version", "2")
	if err := c.Refresh(res, &n304.Header, clk.Now(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	r := protocol.AcquireResponse()
	if err := c.Serve(res, r); err != nil {
		t.Fatal(err)
	}
	if string(r.Body()) != "stored body" || string(r.Header.Peek("X-Version")) != "2" ||
		string(r.Header.Peek("Cache-Control")) != "max-age=100" || string(r.Header.ContentType()) != "text/plain" {
		t.Fatalf("refreshed response: %q X-Version %q CC %q", r.Body(), r.Header.Peek("X-Version"), r.Header.Peek("Cache-Control"))
	}
	clk.Add(50 * time.Second)
	out, got, _ := serve(t, c, req)
	if out != Hit || string(got.Header.Peek("Age")) != "50" || strings.Count(string(got.Header.Header()), "X-Version") != 1 {
		t.Fatalf("after refresh: %v Age %q\n%s", out, got.Header.Peek("Age"), string(got.Header.Header()))
	}
}

func TestClientConditionals(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	req := mkReq("GET", "http://example.com/c")
	lm := t0.Add(-time.Hour)
	if err := fetchStore(t, c, clk, req, mkResp(200, "x", "Cache-Control", "max-age=60", "ETag", `"v1"`,
		"Last-Modified", httpDate(lm), "Vary", "Accept-Language")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hdrs []string
		want Outcome
	}{
		{[]string{"If-None-Match", `"v1"`}, NotModified},
		{[]string{"If-None-Match", `W/"v1"`}, NotModified},
		{[]string{"If-None-Match", `"v0", "v1"`}, NotModified},
		{[]string{"If-None-Match", `*`}, NotModified},
		{[]string{"If-None-Match", `"v2"`, "If-Modified-Since", httpDate(lm)}, Hit}, // INM wins
		{[]string{"If-Modified-Since", httpDate(lm)}, NotModified},
		{[]string{"If-Modified-Since", httpDate(lm.Add(-time.Second))}, Hit},
		{[]string{"If-Modified-Since", "garbage"}, Hit},
	} {
		out, resp, _ := serve(t, c, mkReq("GET", "http://example.com/c", tc.hdrs...))
		if out != tc.want {
			t.Errorf("%v: %v, want %v", tc.hdrs, out, tc.want)
		}
		if out == NotModified && (resp.StatusCode() != 304 || string(resp.Header.Peek("ETag")) != `"v1"` ||
			len(resp.Body()) != 0 || string(resp.Header.Peek("Vary")) != "Accept-Language") {
			t.Errorf("%v: 304 response wrong:\n%s", tc.hdrs, string(resp.Header.Header()))
		}
	}
}

func TestOnlyIfCachedAndPass(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	if out, _, _ := serve(t, c, mkReq("GET", "http://example.com/o", "Cache-Control", "only-if-cached")); out != GatewayTimeout {
		t.Fatalf("cold only-if-cached: %v", out)
	}
	req := mkReq("GET", "http://example.com/o")
	fetchStore(t, c, clk, req, mkResp(200, "x", "Cache-Control", "max-age=10", "ETag", `"e"`))
	if out, _, _ := serve(t, c, mkReq("GET", "http://example.com/o", "Cache-Control", "only-if-cached")); out != Hit {
		t.Fatalf("warm only-if-cached: %v", out)
	}
	clk.Add(time.Minute)
	if out, _, _ := serve(t, c, mkReq("GET", "http://example.com/o", "Cache-Control", "only-if-cached")); out != GatewayTimeout {
		t.Fatalf("stale only-if-cached: %v", out)
	}
	if out, _, res := serve(t, c, mkReq("POST", "http://example.com/o")); out != Pass || res.Status().Fwd != FwdMethod {
		t.Fatalf("POST: %v", out)
	}
	if out, _, _ := serve(t, c, mkReq("GET", "http://example.com/o", "Range", "bytes=0-1")); out != Pass {
		t.Fatalf("Range: %v", out)
	}
	if out, _, res := serve(t, c, mkReq("GET", "http://example.com/o", "Pragma", "no-cache")); out != Revalidate || res.Status().Fwd != FwdRequest {
		t.Fatalf("Pragma: %v", out)
	}
}
