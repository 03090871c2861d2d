package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

// End-to-end tests of the response cache through the binary, against real
// origins that count their requests (newOrigin).

// startCached runs edgeloop proxying / to origin with the cache on, the
// rate limit off (tests send bursts from one address), PURGE allowed from
// loopback and the route's stale-if-error grace set. extra is YAML appended
// under the top-level cache: key.
func startCached(t *testing.T, origin string, extra string) *proc {
	t.Helper()
	cfg := fmt.Sprintf(`rate_limit:
  rate: "off"
cache:
  size: 64MiB
  purge_allow: [127.0.0.1/32]
%sroutes:
  - path: /
    upstream: %s
    cache:
      stale_if_error: 1m
`, extra, origin)
	return start(t, "--config", writeFile(t, "edgeloop.yaml", cfg))
}

// purgeAdmin posts body to the admin purge endpoint and returns the count.
func purgeAdmin(t *testing.T, p *proc, contentType, body string) int {
	t.Helper()
	resp, err := client().Post("http://"+p.admin+"/cache/purge", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Purged int    `json:"purged"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("purge %s: status %d, %v, %+v", body, resp.StatusCode, err, out)
	}
	return out.Purged
}

// metric returns the value of one exposition line of the admin's /metrics
// (name with labels exactly as printed), 0 when absent.
func metric(t *testing.T, p *proc, series string) float64 {
	t.Helper()
	_, body := get(t, client(), "http://"+p.admin+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // long enough for all 200 to overlap
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "cold body "+r.URL.Path)
	})
	p := startCached(t, o.URL, "")
	const n = 200
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	var hits, stored, bad atomic.Int32
	var firstBad atomic.Value
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(p.url("/cold"))
			if err != nil {
				bad.Add(1)
				firstBad.CompareAndSwap(nil, err.Error())
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cs := resp.Header.Get("Cache-Status")
			if resp.StatusCode != 200 || string(body) != "cold body /cold" {
				bad.Add(1)
				firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %q %s", resp.StatusCode, body, cs))
				return
			}
			switch {
			case strings.Contains(cs, "; hit") && strings.Contains(cs, "collapsed"):
				hits.Add(1)
			case strings.Contains(cs, "fwd=uri-miss") && strings.Contains(cs, "stored"):
				stored.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d bad responses, first: %v", bad.Load(), firstBad.Load())
	}
	if got := o.hits.Load(); got != 1 {
		t.Fatalf("origin saw %d requests for %d concurrent misses, want 1", got, n)
	}
	if stored.Load() != 1 || hits.Load() != n-1 {
		t.Fatalf("Cache-Status: %d stored misses and %d collapsed hits, want 1 and %d", stored.Load(), hits.Load(), n-1)
	}
	if w := metric(t, p, "edgeloop_cache_coalesced_waits_total"); w < n-1 {
		t.Fatalf("coalesced_waits_total %v, want >= %d", w, n-1)
	}
	// A later hit: Age and Cache-Status, no origin request.
	resp, body := get(t, client(), p.url("/cold"))
	if body != "cold body /cold" || resp.Header.Get("Age") == "" ||
		!regexp.MustCompile(`^edgeloop; hit; ttl=\d+$`).MatchString(resp.Header.Get("Cache-Status")) {
		t.Fatalf("hit: body %q Age %q Cache-Status %q", body, resp.Header.Get("Age"), resp.Header.Get("Cache-Status"))
	}
	if o.hits.Load() != 1 {
		t.Fatalf("origin hit again on a cache hit")
	}
	for _, series := range []string{`edgeloop_cache_lookups_total{outcome="hit"}`, `edgeloop_cache_stored_bytes_total`} {
		if metric(t, p, series) <= 0 {
			t.Errorf("%s not positive on /metrics", series)
		}
	}
	_, m := get(t, client(), "http://"+p.admin+"/metrics")
	for _, name := range []string{"edgeloop_cache_evictions_total", `edgeloop_cache_lookups_total{outcome="miss"}`, "edgeloop_cache_too_big_total"} {
		if !strings.Contains(m, name) {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

func TestCacheStaleIfError(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "origin broken", 503)
			return
		}
		// Stale on arrival (Age 2 > max-age 1), but revalidatable.
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Age", "2")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "the stored copy")
	})
	p := startCached(t, o.URL, "")
	c := client()
	if resp, body := get(t, c, p.url("/page")); body != "the stored copy" || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
		t.Fatalf("first: %q %q", body, resp.Header.Get("Cache-Status"))
	}

	failing.Store(true) // the origin answers 503: the route's grace serves stale
	resp, body := get(t, c, p.url("/page"))
	cs := resp.Header.Get("Cache-Status")
	if resp.StatusCode != 200 || body != "the stored copy" || !strings.Contains(cs, "fwd=stale") ||
		!strings.Contains(cs, "fwd-status=503") || !strings.Contains(cs, "detail=stale-if-error") {
		t.Fatalf("origin 503: %d %q Cache-Status %q", resp.StatusCode, body, cs)
	}

	o.Close() // the origin is down: connection refused
	resp, body = get(t, c, p.url("/page"))
	cs = resp.Header.Get("Cache-Status")
	if resp.StatusCode != 200 || body != "the stored copy" || !strings.Contains(cs, "detail=stale-if-error") {
		t.Fatalf("origin down: %d %q Cache-Status %q", resp.StatusCode, body, cs)
	}
	// Nothing stored for this URL: the failure shows, with Cache-Status.
	resp, _ = get(t, c, p.url("/never-fetched"))
	if resp.StatusCode != 502 || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=uri-miss") {
		t.Fatalf("uncached URL with origin down: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
}

func TestCachePurge(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		switch {
		case r.URL.Path == "/a":
			w.Header().Set("Surrogate-Key", "article-1 all")
		case strings.HasPrefix(r.URL.Path, "/dir/"):
			w.Header().Set("Cache-Tag", "dir, all")
		}
		if r.Method == "POST" {
			w.WriteHeader(204)
			return
		}
		io.WriteString(w, r.URL.Path)
	})
	p := startCached(t, o.URL, "")
	c := client()
	paths := []string{"/a", "/dir/b", "/dir/c", "/other"}
	warm := func() {
		t.Helper()
		for _, path := range paths {
			resp, body := get(t, c, p.url(path))
			if body != path || resp.Header.Get("Surrogate-Key") != "" || resp.Header.Get("Cache-Tag") != "" {
				t.Fatalf("%s: %q, Surrogate-Key %q Cache-Tag %q reached the client", path, body,
					resp.Header.Get("Surrogate-Key"), resp.Header.Get("Cache-Tag"))
			}
		}
	}
	// cached reports whether path is served from cache now (a miss refills it).
	cached := func(path string) bool {
		t.Helper()
		before := o.hits.Load()
		get(t, c, p.url(path))
		return o.hits.Load() == before
	}
	warm()
	for _, path := range paths {
		if !cached(path) {
			t.Fatalf("%s not cached after warming", path)
		}
	}
	base := "http://" + p.addr

	if n := purgeAdmin(t, p, "application/json", `{"url": "`+base+`/a"}`); n != 1 {
		t.Fatalf("purge url: %d", n)
	}
	if cached("/a") || !cached("/dir/b") {
		t.Fatal("url purge removed the wrong entries")
	}
	if n := purgeAdmin(t, p, "application/json", `{"prefix": "`+base+`/dir/"}`); n != 2 {
		t.Fatalf("purge prefix: %d", n)
	}
	if cached("/dir/b") || cached("/dir/c") || !cached("/other") {
		t.Fatal("prefix purge removed the wrong entries")
	}
	// Surrogate-Key (space separated) and Cache-Tag (comma separated).
	if n := purgeAdmin(t, p, "application/x-www-form-urlencoded", url.Values{"tag": {"all"}}.Encode()); n != 3 {
		t.Fatalf("purge tag all: %d", n)
	}
	if cached("/a") || cached("/dir/b") || cached("/dir/c") || !cached("/other") {
		t.Fatal("tag purge removed the wrong entries")
	}
	if n := purgeAdmin(t, p, "application/json", `{"tag": "article-1"}`); n != 1 {
		t.Fatalf("purge tag article-1: %d", n)
	}
	if cached("/a") {
		t.Fatal("/a still cached after its tag was purged")
	}
	resp, err := c.Post("http://"+p.admin+"/cache/purge", "application/json", strings.NewReader(`{"bogus": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad purge body: %d", resp.StatusCode)
	}

	// PURGE on the public port from an allowed address (loopback).
	purge := func(path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("PURGE", p.url(path), nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	warm()
	if st, body := purge("/other"); st != 200 || body != `{"purged":1}` {
		t.Fatalf("PURGE /other: %d %s", st, body)
	}
	if st, body := purge("/other"); st != 404 || body != `{"purged":0}` {
		t.Fatalf("second PURGE /other: %d %s", st, body)
	}
	if st, body := purge("/", "Surrogate-Key", "dir"); st != 200 || body != `{"purged":2}` {
		t.Fatalf("PURGE by Surrogate-Key: %d %s", st, body)
	}
	if cached("/dir/b") || !cached("/a") {
		t.Fatal("PURGE by key removed the wrong entries")
	}

	// A successful unsafe method invalidates the URL (RFC 9111 §4.4).
	resp, err = c.Post(p.url("/a"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cached("/a") {
		t.Fatal("/a still cached after a POST to it")
	}
}

func TestCacheVaryAndPurgeForbidden(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	// The --cache flag: no config file, so no purge_allow.
	p := start(t, "--upstream", o.URL, "--cache", "32MiB")
	c := client()
	for i, tc := range []struct{ lang, status string }{
		{"en", "fwd=uri-miss"}, {"de", "fwd=vary-miss"}, {"en", "; hit"}, {"de", "; hit"},
	} {
		resp, body := get(t, c, p.url("/v"), "Accept-Language", tc.lang)
		if body != "lang="+tc.lang || !strings.Contains(resp.Header.Get("Cache-Status"), tc.status) {
			t.Fatalf("request %d (%s): %q, Cache-Status %q, want %s", i, tc.lang, body, resp.Header.Get("Cache-Status"), tc.status)
		}
	}
	if o.hits.Load() != 2 {
		t.Fatalf("origin saw %d requests for two variants, want 2", o.hits.Load())
	}
	req, _ := http.NewRequest("PURGE", p.url("/v"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("PURGE without purge_allow: %d, want 403", resp.StatusCode)
	}
}

func TestCacheConditionalRequests(t *testing.T) {
	lastMod := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	var revalidations atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			revalidations.Add(1)
			w.Header().Set("Cache-Control", "max-age=600")
			w.WriteHeader(304)
			return
		}
		if r.URL.Path == "/stale" {
			w.Header().Set("Cache-Control", "max-age=1")
			w.Header().Set("Age", "5") // stale on arrival: the next use revalidates
		} else {
			w.Header().Set("Cache-Control", "max-age=600")
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", lastMod)
		io.WriteString(w, "body of "+r.URL.Path)
	})
	p := startCached(t, o.URL, "")
	c := client()

	// Client conditionals answered from the cache.
	get(t, c, p.url("/fresh"))
	resp, body := get(t, c, p.url("/fresh"), "If-None-Match", `"v1"`)
	if resp.StatusCode != 304 || body != "" || resp.Header.Get("ETag") != `"v1"` {
		t.Fatalf("If-None-Match: %d %q ETag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	resp, _ = get(t, c, p.url("/fresh"), "If-Modified-Since", lastMod)
	if resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
	resp, body = get(t, c, p.url("/fresh"), "If-None-Match", `"other"`)
	if resp.StatusCode != 200 || body != "body of /fresh" {
		t.Fatalf("non-matching If-None-Match: %d %q", resp.StatusCode, body)
	}
	// HEAD from the stored GET.
	req, _ := http.NewRequest("HEAD", p.url("/fresh"), nil)
	hresp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != 200 || hresp.ContentLength != int64(len("body of /fresh")) || !strings.Contains(hresp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("HEAD: %d length %d %q", hresp.StatusCode, hresp.ContentLength, hresp.Header.Get("Cache-Status"))
	}
	if o.hits.Load() != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.hits.Load())
	}
	// only-if-cached for something not stored: 504.
	resp, _ = get(t, c, p.url("/absent"), "Cache-Control", "only-if-cached")
	if resp.StatusCode != 504 || o.hits.Load() != 1 {
		t.Fatalf("only-if-cached: %d, origin %d", resp.StatusCode, o.hits.Load())
	}

	// A stale entry revalidated with the origin: its 304 refreshes it and
	// the body comes from the cache.
	get(t, c, p.url("/stale"))
	before := o.hits.Load()
	resp, body = get(t, c, p.url("/stale"))
	cs := resp.Header.Get("Cache-Status")
	if resp.StatusCode != 200 || body != "body of /stale" || !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "fwd-status=304") {
		t.Fatalf("revalidation: %d %q Cache-Status %q", resp.StatusCode, body, cs)
	}
	if o.hits.Load() != before+1 || revalidations.Load() != 1 {
		t.Fatalf("revalidation: origin %d requests (%d conditional), want 1 conditional", o.hits.Load()-before, revalidations.Load())
	}
	// Refreshed by the 304's max-age=600: a plain hit now.
	resp, body = get(t, c, p.url("/stale"))
	if body != "body of /stale" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edgeloop; hit") || o.hits.Load() != before+1 {
		t.Fatalf("after refresh: %q %q, origin %d", body, resp.Header.Get("Cache-Status"), o.hits.Load()-before)
	}
}

func TestCacheStaleWhileRevalidate(t *testing.T) {
	var version atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=600")
		if v == 1 {
			w.Header().Set("Age", "2") // the first copy is stale on arrival
		}
		fmt.Fprintf(w, "version %d", v)
	})
	p := startCached(t, o.URL, "")
	c := client()
	get(t, c, p.url("/swr"))
	resp, body := get(t, c, p.url("/swr"))
	if body != "version 1" || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=stale-while-revalidate") {
		t.Fatalf("stale hit: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	// One background refresh stores version 2; wait for it (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for body != "version 2" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_, body = get(t, c, p.url("/swr"))
	}
	if body != "version 2" || o.hits.Load() != 2 {
		t.Fatalf("after background refresh: %q, origin %d requests, want version 2 and 2", body, o.hits.Load())
	}
}

func TestCacheCompressedVariants(t *testing.T) {
	text := strings.Repeat("edgeloop compresses a cached response once. ", 100)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, text)
	})
	p := startCached(t, o.URL, "")
	c := client()
	decode := map[string]func(io.Reader) (io.Reader, error){
		"br":   func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		"gzip": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	}
	for _, enc := range []string{"br", "gzip"} {
		series := `edgeloop_compress_bytes_in_total{encoding="` + enc + `"}`
		// The miss (coded on the way out) and the first hit (coded once
		// and stored) may compress; no later hit does.
		get(t, c, p.url("/text"), "Accept-Encoding", enc)
		get(t, c, p.url("/text"), "Accept-Encoding", enc)
		before := metric(t, p, series)
		if before == 0 {
			t.Fatalf("%s: nothing was ever compressed", enc)
		}
		for i := 0; i < 10; i++ {
			resp, body := get(t, c, p.url("/text"), "Accept-Encoding", enc)
			if resp.Header.Get("Content-Encoding") != enc || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
				t.Fatalf("%s hit %d: Content-Encoding %q Cache-Status %q", enc, i, resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Status"))
			}
			r, err := decode[enc](bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(r)
			if err != nil || string(plain) != text {
				t.Fatalf("%s hit %d: body does not decode to the original (%v)", enc, i, err)
			}
		}
		if after := metric(t, p, series); after != before {
			t.Fatalf("%s: hits compressed %v more bytes; want none", enc, after-before)
		}
	}
	if resp, body := get(t, c, p.url("/text")); body != text || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("identity client got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	if o.hits.Load() != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.hits.Load())
	}
	if metric(t, p, "edgeloop_cache_encoded_variants_stored_total") != 2 {
		t.Fatalf("want 2 coded variants stored")
	}
}

func TestCacheOversizeStreamsThrough(t *testing.T) {
	const size = 3 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/octet-stream")
		for n := 0; n < size; n += len(chunk) { // chunked: no Content-Length
			w.Write(chunk)
			w.(http.Flusher).Flush()
		}
	})
	p := startCached(t, o.URL, "  max_object_size: 1MiB\n")
	c := client()
	for i := 1; i <= 2; i++ {
		resp, body := get(t, c, p.url("/big"))
		if resp.StatusCode != 200 || len(body) != size {
			t.Fatalf("request %d: status %d, %d bytes, want %d", i, resp.StatusCode, len(body), size)
		}
		if int(o.hits.Load()) != i {
			t.Fatalf("request %d: origin saw %d requests: an over-size object was cached", i, o.hits.Load())
		}
	}
	if metric(t, p, "edgeloop_cache_too_big_total") < 2 {
		t.Fatal("over-size objects not counted in edgeloop_cache_too_big_total")
	}
}

// TestCacheRange: Range requests are answered from a stored response (206
// with Content-Range, 416 past the end, the whole body for several ranges
// or a failed If-Range), and passed to the origin, not stored, on a miss.
func TestCacheRange(t *testing.T) {
	const body = "0123456789abcdefghijklmnopqrstuvwxyz" // 36 bytes
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body)) // honours Range itself
	})
	p := startCached(t, o.URL, "")
	c := client()

	// A miss with Range goes to the origin and is not stored.
	resp, got := get(t, c, p.url("/r"), "Range", "bytes=0-3")
	if resp.StatusCode != 206 || got != "0123" || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=bypass") {
		t.Fatalf("Range miss: %d %q %q", resp.StatusCode, got, resp.Header.Get("Cache-Status"))
	}
	get(t, c, p.url("/r")) // the full GET fills
	if o.hits.Load() != 2 {
		t.Fatalf("origin saw %d requests, want 2", o.hits.Load())
	}
	for _, tc := range []struct {
		hdr      []string
		status   int
		body, cr string
	}{
		{[]string{"Range", "bytes=0-9"}, 206, body[:10], "bytes 0-9/36"},
		{[]string{"Range", "bytes=30-"}, 206, body[30:], "bytes 30-35/36"},
		{[]string{"Range", "bytes=-4"}, 206, body[32:], "bytes 32-35/36"},
		{[]string{"Range", "bytes=10-1000"}, 206, body[10:], "bytes 10-35/36"},
		{[]string{"Range", "bytes=36-"}, 416, "", "bytes */36"},
		{[]string{"Range", "bytes=0-1,4-5"}, 200, body, ""},
		{[]string{"Range", "bytes=0-1", "If-Range", `"v1"`}, 206, body[:2], "bytes 0-1/36"},
		{[]string{"Range", "bytes=0-1", "If-Range", `"v0"`}, 200, body, ""},
	} {
		resp, got := get(t, c, p.url("/r"), tc.hdr...)
		if resp.StatusCode != tc.status || got != tc.body || resp.Header.Get("Content-Range") != tc.cr {
			t.Errorf("%v: %d %q Content-Range %q; want %d %q %q", tc.hdr, resp.StatusCode, got,
				resp.Header.Get("Content-Range"), tc.status, tc.body, tc.cr)
		}
		if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edgeloop; hit") {
			t.Errorf("%v: Cache-Status %q, want a hit", tc.hdr, resp.Header.Get("Cache-Status"))
		}
	}
	if o.hits.Load() != 2 {
		t.Fatalf("origin saw %d requests after the ranges from the cache, want 2", o.hits.Load())
	}
}

// TestCacheKeptAcrossReload: a reload that leaves the cache section as it
// is keeps the stored responses (as nginx and Varnish do), with every
// other change applied; one that changes the store starts an empty cache.
func TestCacheKeptAcrossReload(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "stored "+r.URL.Path)
	})
	conf := func(size, extra string) string {
		return fmt.Sprintf("log: {access: false}\nrate_limit: {rate: \"off\"}\ncache: {size: %s}\nroutes:\n%s  - path: /\n    upstream: %s\n    cache: {}\n", size, extra, o.URL)
	}
	cfgPath := writeFile(t, "edgeloop.yaml", conf("64MiB", ""))
	p := start(t, "--config", cfgPath)
	c := client()
	reload := func(cfg string) {
		t.Helper()
		os.WriteFile(cfgPath, []byte(cfg), 0o644)
		if code, out, stderr := runCLI(t, nil, "reload", "--admin", p.admin); code != 0 {
			t.Fatalf("edgeloop reload: exit %d %q %q", code, out, stderr)
		}
		// A keep-alive connection may still be served by the previous
		// generation until it drains; new connections reach the new one
		// once reload returns.
		c.CloseIdleConnections()
	}
	get(t, c, p.url("/a"))
	if o.hits.Load() != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.hits.Load())
	}
	// Another route added, the cache section unchanged: /a is still a hit.
	site := t.TempDir()
	os.MkdirAll(filepath.Join(site, "static"), 0o755) // root: as nginx's, the whole path is under it
	os.WriteFile(filepath.Join(site, "static", "index.html"), []byte("static\n"), 0o644)
	reload(conf("64MiB", "  - path: /static/\n    root: "+site+"\n"))
	resp, body := get(t, c, p.url("/a"))
	if body != "stored /a" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edgeloop; hit") || o.hits.Load() != 1 {
		t.Fatalf("after a reload keeping the cache: %q %q, origin %d requests", body, resp.Header.Get("Cache-Status"), o.hits.Load())
	}
	if _, body := get(t, c, p.url("/static/")); body != "static\n" {
		t.Fatalf("the reload's new route: %q", body)
	}
	// A different cache size is a new store: /a is fetched again.
	reload(conf("32MiB", ""))
	if _, body := get(t, c, p.url("/a")); body != "stored /a" || o.hits.Load() != 2 {
		t.Fatalf("after a reload changing the cache: %q, origin %d requests, want 2", body, o.hits.Load())
	}
}
