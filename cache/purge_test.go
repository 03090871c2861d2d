package cache

import (
	"errors"
	"testing"
)

func TestPurge(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	store := func(url string, hdrs ...string) {
		t.Helper()
		h := append([]string{"Cache-Control", "max-age=600"}, hdrs...)
		if err := fetchStore(t, c, clk, mkReq("GET", url), mkResp(200, url, h...)); err != nil {
			t.Fatal(err)
		}
	}
	hit := func(url string) bool {
		out, _, _ := serve(t, c, mkReq("GET", url))
		return out == Hit
	}
	store("http://example.com/a", "Surrogate-Key", "k1 k2")
	store("http://example.com/static/x.css", "Cache-Tag", "css, k2")
	store("http://example.com/static/y.js")
	store("http://example.com/staticfile")
	store("http://other.com/static/z")
	// two variants of one URL
	store("http://example.com/v", "Vary", "X-A")
	fetchStore(t, c, clk, mkReq("GET", "http://example.com/v", "X-A", "1"), mkResp(200, "v1", "Cache-Control", "max-age=600", "Vary", "X-A"))

	if n, err := c.PurgeURL("http://EXAMPLE.com:80/v"); err != nil || n != 2 {
		t.Fatalf("PurgeURL: %d %v", n, err)
	}
	if hit("http://example.com/v") {
		t.Fatal("purged URL still served")
	}
	if n, err := c.PurgePrefix("http://example.com/static/"); err != nil || n != 2 {
		t.Fatalf("PurgePrefix: %d %v", n, err)
	}
	if hit("http://example.com/static/y.js") || !hit("http://example.com/staticfile") || !hit("http://other.com/static/z") {
		t.Fatal("prefix purge removed the wrong URLs")
	}
	if n := c.PurgeTag("k2"); n != 1 { // x.css is already gone
		t.Fatalf("PurgeTag k2: %d", n)
	}
	if hit("http://example.com/a") {
		t.Fatal("tagged URL still served")
	}
	if n := c.PurgeTag("nothing"); n != 0 {
		t.Fatalf("PurgeTag unknown: %d", n)
	}
	if _, err := c.PurgeURL("not a url"); !errors.Is(err, ErrBadURL) {
		t.Fatalf("bad url: %v", err)
	}
	if _, err := c.PurgePrefix("/relative"); !errors.Is(err, ErrBadURL) {
		t.Fatalf("bad prefix: %v", err)
	}
}

func TestPurgeRacesFill(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	req := mkReq("GET", "http://example.com/race")
	res := NewResult()
	c.Lookup(req, nil, res) // the fetch starts here ...
	c.PurgePrefix("http://example.com/")
	// ... and its response arrives after the purge: not stored.
	if err := c.Store(res, req, mkResp(200, "old", "Cache-Control", "max-age=60"), clk.Now(), clk.Now()); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("store after purge: %v", err)
	}
}

func TestInvalidateUnsafe(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	for _, u := range []string{"http://example.com/items", "http://example.com/items/7", "http://example.com/list", "http://evil.com/x"} {
		if err := fetchStore(t, c, clk, mkReq("GET", u), mkResp(200, u, "Cache-Control", "max-age=600")); err != nil {
			t.Fatal(err)
		}
	}
	hit := func(url string) bool { out, _, _ := serve(t, c, mkReq("GET", url)); return out == Hit }

	// a failed POST invalidates nothing
	if n := c.Invalidate(mkReq("POST", "http://example.com/items"), 500, &mkResp(500, "").Header); n != 0 {
		t.Fatalf("failed POST invalidated %d", n)
	}
	// GET never invalidates
	if n := c.Invalidate(mkReq("GET", "http://example.com/items"), 200, &mkResp(200, "").Header); n != 0 {
		t.Fatalf("GET invalidated %d", n)
	}
	resp := mkResp(201, "", "Location", "/items/7", "Content-Location", "http://evil.com/x")
	if n := c.Invalidate(mkReq("POST", "http://example.com/items"), 201, &resp.Header); n != 2 {
		t.Fatalf("POST invalidated %d, want 2", n)
	}
	if hit("http://example.com/items") || hit("http://example.com/items/7") {
		t.Fatal("target or Location still cached")
	}
	if !hit("http://evil.com/x") || !hit("http://example.com/list") {
		t.Fatal("cross-origin Content-Location or unrelated URL invalidated")
	}
	// absolute-path Location, DELETE
	resp = mkResp(204, "", "Location", "/list")
	if n := c.Invalidate(mkReq("DELETE", "http://example.com/items/9"), 204, &resp.Header); n != 1 || hit("http://example.com/list") {
		t.Fatalf("DELETE with Location: %d", n)
	}
}

func TestResolveRef(t *testing.T) {
	f := func(base, ref, want string) {
		t.Helper()
		if got := resolveRef(base, ref); got != want {
			t.Errorf("resolveRef(%q, %q) = %q, want %q", base, ref, got, want)
		}
	}
	f("http://a.com/x/y?q=1", "z", "http://a.com/x/z")
	f("http://a.com/x/y", "/z", "http://a.com/z")
	f("https://a.com/x", "//b.com/z", "https://b.com/z")
	f("http://a.com/x", "http://c.com/", "http://c.com/")
}

func TestIndexFull(t *testing.T) {
	c, clk := newTestCache(t, Config{MaxURLs: 2})
	for i, u := range []string{"http://e.com/1", "http://e.com/2"} {
		if err := fetchStore(t, c, clk, mkReq("GET", u), mkResp(200, "x", "Cache-Control", "max-age=60")); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	if err := fetchStore(t, c, clk, mkReq("GET", "http://e.com/3"), mkResp(200, "x", "Cache-Control", "max-age=60")); !errors.Is(err, ErrIndexFull) {
		t.Fatalf("third URL: %v", err)
	}
	// once one is purged there is room again
	c.PurgeURL("http://e.com/1")
	if err := fetchStore(t, c, clk, mkReq("GET", "http://e.com/3"), mkResp(200, "x", "Cache-Control", "max-age=60")); err != nil {
		t.Fatalf("after purge: %v", err)
	}
}
