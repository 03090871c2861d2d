package handlers

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/route"
)

// staticCase is one request against a Static handler and what must come back.
type staticCase struct {
	name    string
	method  string // GET if empty
	path    string
	headers []ut.Header

	code        int
	body        string            // exact body when set
	bodyHas     string            // substring of the body when set
	bodyLen     int               // exact body length when > 0; -1 for empty
	wantHeaders map[string]string // exact values; "" means absent
}

func staticEngine(t testing.TB, s *Static, route_ string) *route.Engine {
	t.Helper()
	e := route.NewEngine(config.NewOptions(nil))
	if route_ == "" {
		e.NoRoute(s.Handle)
	} else {
		e.Any(route_, s.Handle)
	}
	return e
}

func staticRun(t *testing.T, e *route.Engine, cases []staticCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			w := ut.PerformRequest(e, method, tc.path, nil, tc.headers...)
			resp := w.Result()
			body := resp.Body()
			if resp.StatusCode() != tc.code {
				t.Fatalf("%s %s: status %d, want %d (body %q)", method, tc.path, resp.StatusCode(), tc.code, staticTrim(body))
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body %q, want %q", staticTrim(body), staticTrim([]byte(tc.body)))
			}
			if tc.bodyHas != "" && !bytes.Contains(body, []byte(tc.bodyHas)) {
				t.Errorf("body %q lacks %q", staticTrim(body), tc.bodyHas)
			}
			switch {
			case tc.bodyLen > 0 && len(body) != tc.bodyLen:
				t.Errorf("body length %d, want %d", len(body), tc.bodyLen)
			case tc.bodyLen < 0 && len(body) != 0:
				t.Errorf("body length %d, want empty", len(body))
			}
			for k, want := range tc.wantHeaders {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func staticTrim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

func staticHdr(kv ...string) []ut.Header {
	var h []ut.Header
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, ut.Header{Key: kv[i], Value: kv[i+1]})
	}
	return h
}

// staticProbe fetches path and returns its ETag and Last-Modified.
func staticProbe(t *testing.T, e *route.Engine, path string) (etag, lastMod string) {
	t.Helper()
	resp := ut.PerformRequest(e, "GET", path, nil).Result()
	if resp.StatusCode() != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode())
	}
	return resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
}

func TestStaticEmbeddedSite(t *testing.T) {
	s, err := NewStatic(StaticConfig{CacheControl: "public, max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := staticEngine(t, s, "")
	etag, lastMod := staticProbe(t, e, "/1k.txt")
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Fatalf("ETag %q is not a strong entity-tag", etag)
	}
	want1k, _ := staticSite.ReadFile("site/1k.txt")

	staticRun(t, e, []staticCase{
		{name: "index", path: "/", code: 200, bodyHas: "edgeloop is running",
			wantHeaders: map[string]string{"Content-Type": "text/html; charset=utf-8", "Accept-Ranges": "bytes", "Cache-Control": "public, max-age=60"}},
		{name: "index mentions upstream flag", path: "/", code: 200, bodyHas: "--upstream"},
		{name: "index by name", path: "/index.html", code: 200, bodyHas: "edgeloop is running"},
		{name: "1k", path: "/1k.txt", code: 200, body: string(want1k), bodyLen: 1024,
			wantHeaders: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Length": "1024", "ETag": etag, "Last-Modified": lastMod}},
		{name: "64k", path: "/64k.txt", code: 200, bodyLen: 65536, wantHeaders: map[string]string{"Content-Length": "65536"}},
		{name: "css", path: "/style.css", code: 200, wantHeaders: map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{name: "favicon", path: "/favicon.svg", code: 200, bodyHas: "<svg", wantHeaders: map[string]string{"Content-Type": "image/svg+xml; charset=utf-8"}},
		{name: "query ignored", path: "/1k.txt?v=3", code: 200, bodyLen: 1024},
		{name: "head", method: "HEAD", path: "/1k.txt", code: 200, bodyLen: -1, wantHeaders: map[string]string{"ETag": etag}},
		{name: "post", method: "POST", path: "/1k.txt", code: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "delete", method: "DELETE", path: "/", code: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "options", method: "OPTIONS", path: "/", code: 405},
		{name: "missing", path: "/nope.txt", code: 404, wantHeaders: map[string]string{"ETag": ""}},
		{name: "file with slash", path: "/1k.txt/", code: 404},
		{name: "dotfile", path: "/.git/config", code: 404},
		{name: "dot segment", path: "/./1k.txt", code: 200, bodyLen: 1024}, // normalized by hertz
		{name: "traversal", path: "/../../../etc/passwd", code: 404},
		{name: "encoded traversal", path: "/%2e%2e/%2e%2e/etc/passwd", code: 404},
		{name: "backslash", path: "/..\\..\\etc\\passwd", code: 404},
		{name: "encoded backslash", path: "/%5c..%5cetc", code: 404},
		{name: "nul", path: "/1k.txt%00.html", code: 404},

		// Conditional requests (RFC 9110 §13).
		{name: "inm match", path: "/1k.txt", headers: staticHdr("If-None-Match", etag), code: 304, bodyLen: -1,
			wantHeaders: map[string]string{"ETag": etag, "Cache-Control": "public, max-age=60", "Last-Modified": lastMod}},
		{name: "inm weak", path: "/1k.txt", headers: staticHdr("If-None-Match", "W/"+etag), code: 304},
		{name: "inm list", path: "/1k.txt", headers: staticHdr("If-None-Match", `"a", W/"b",`+etag), code: 304},
		{name: "inm star", path: "/1k.txt", headers: staticHdr("If-None-Match", "*"), code: 304},
		{name: "inm other", path: "/1k.txt", headers: staticHdr("If-None-Match", `"other"`), code: 200, bodyLen: 1024},
		{name: "ims equal", path: "/1k.txt", headers: staticHdr("If-Modified-Since", lastMod), code: 304},
		{name: "ims later", path: "/1k.txt", headers: staticHdr("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"), code: 304},
		{name: "ims earlier", path: "/1k.txt", headers: staticHdr("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"), code: 200},
		{name: "ims garbage", path: "/1k.txt", headers: staticHdr("If-Modified-Since", "yesterday"), code: 200},
		{name: "inm wins over ims", path: "/1k.txt", headers: staticHdr("If-None-Match", `"other"`, "If-Modified-Since", lastMod), code: 200},
		{name: "head inm", method: "HEAD", path: "/1k.txt", headers: staticHdr("If-None-Match", etag), code: 304},
		{name: "if-match ok", path: "/1k.txt", headers: staticHdr("If-Match", etag), code: 200},
		{name: "if-match weak fails", path: "/1k.txt", headers: staticHdr("If-Match", "W/"+etag), code: 412},
		{name: "if-match other", path: "/1k.txt", headers: staticHdr("If-Match", `"other"`), code: 412},
		{name: "ius earlier", path: "/1k.txt", headers: staticHdr("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"), code: 412},

		// Ranges (RFC 9110 §14).
		{name: "range", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9"), code: 206, body: string(want1k[:10]),
			wantHeaders: map[string]string{"Content-Range": "bytes 0-9/1024", "Content-Length": "10", "ETag": etag}},
		{name: "range open", path: "/1k.txt", headers: staticHdr("Range", "bytes=1000-"), code: 206, body: string(want1k[1000:]),
			wantHeaders: map[string]string{"Content-Range": "bytes 1000-1023/1024"}},
		{name: "range suffix", path: "/1k.txt", headers: staticHdr("Range", "bytes=-24"), code: 206, body: string(want1k[1000:])},
		{name: "range clamp", path: "/1k.txt", headers: staticHdr("Range", "bytes=1020-5000"), code: 206, body: string(want1k[1020:]),
			wantHeaders: map[string]string{"Content-Range": "bytes 1020-1023/1024"}},
		{name: "range unsatisfiable", path: "/1k.txt", headers: staticHdr("Range", "bytes=1024-"), code: 416,
			wantHeaders: map[string]string{"Content-Range": "bytes */1024"}},
		{name: "range zero suffix", path: "/1k.txt", headers: staticHdr("Range", "bytes=-0"), code: 416},
		{name: "multiple ranges served whole", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-1,5-6"), code: 200, bodyLen: 1024,
			wantHeaders: map[string]string{"Content-Range": ""}},
		{name: "range other unit", path: "/1k.txt", headers: staticHdr("Range", "items=0-1"), code: 200, bodyLen: 1024},
		{name: "range malformed", path: "/1k.txt", headers: staticHdr("Range", "bytes=9-1"), code: 200, bodyLen: 1024},
		{name: "head ignores range", method: "HEAD", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9"), code: 200,
			wantHeaders: map[string]string{"Content-Range": ""}},
		{name: "if-range etag", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-Range", etag), code: 206, bodyLen: 10},
		{name: "if-range date", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-Range", lastMod), code: 206, bodyLen: 10},
		{name: "if-range stale etag", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-Range", `"old"`), code: 200, bodyLen: 1024},
		{name: "if-range weak etag", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-Range", "W/"+etag), code: 200, bodyLen: 1024},
		{name: "if-range old date", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-Range", "Sat, 01 Jan 2000 00:00:00 GMT"), code: 200},
		{name: "inm beats range", path: "/1k.txt", headers: staticHdr("Range", "bytes=0-9", "If-None-Match", etag), code: 304},
	})
}

func TestStaticEmbeddedStripPrefix(t *testing.T) {
	s, err := NewStatic(StaticConfig{StripPrefix: "/assets/"})
	if err != nil {
		t.Fatal(err)
	}
	e := staticEngine(t, s, "")
	staticRun(t, e, []staticCase{
		{name: "file", path: "/assets/1k.txt", code: 200, bodyLen: 1024},
		{name: "index", path: "/assets/", code: 200, bodyHas: "edgeloop is running"},
		{name: "bare prefix redirects", path: "/assets?x=1", code: 301, wantHeaders: map[string]string{"Location": "/assets/?x=1"}},
		{name: "outside prefix", path: "/1k.txt", code: 404},
		{name: "prefix lookalike", path: "/assetsx/1k.txt", code: 404},
		{name: "traversal out of prefix", path: "/assets/../1k.txt", code: 404},
	})
}

func TestStaticConfigErrors(t *testing.T) {
	file := t.TempDir() + "/f"
	if err := writeStaticFile(file, "x"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  StaticConfig
		want error
	}{
		{"missing root", StaticConfig{Root: t.TempDir() + "/nope"}, ErrStaticRoot},
		{"root is a file", StaticConfig{Root: file}, ErrStaticRoot},
		{"index with slash", StaticConfig{Index: "a/b.html"}, ErrStaticConfig},
		{"dot index", StaticConfig{Index: ".index"}, ErrStaticConfig},
		{"relative prefix", StaticConfig{StripPrefix: "assets"}, ErrStaticConfig},
		{"header injection", StaticConfig{CacheControl: "max-age=1\r\nX-Evil: 1"}, ErrStaticConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStatic(tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if s != nil {
				t.Fatal("non-nil Static with error")
			}
		})
	}
}

func TestStaticSiteFiles(t *testing.T) {
	for name, size := range map[string]int{"1k.txt": 1024, "64k.txt": 65536} {
		b, err := staticSite.ReadFile("site/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Errorf("%s is %d bytes, want %d", name, len(b), size)
		}
		if !strings.HasSuffix(string(b), "\n") || bytes.ContainsRune(b, 0) {
			t.Errorf("%s is not plain text lines", name)
		}
	}
	idx, _ := staticSite.ReadFile("site/index.html")
	for _, want := range []string{"--upstream", "--root", "--config", "style.css", "favicon.svg"} {
		if !strings.Contains(string(idx), want) {
			t.Errorf("index.html does not mention %q", want)
		}
	}
}

// TestStaticRelPath feeds relPath un-normalized paths, as it would see with
// an engine that serves raw paths: the segment rules alone must refuse
// every way out of the root.
func TestStaticRelPath(t *testing.T) {
	f := func(prefix, p, wantRel string, wantDir, wantOK bool) {
		t.Helper()
		s := &Static{prefix: []byte(prefix)}
		rel, dir, ok := s.relPath([]byte(p))
		if ok != wantOK || (ok && (string(rel) != wantRel || dir != wantDir)) {
			t.Errorf("prefix %q path %q: (%q, %v, %v), want (%q, %v, %v)", prefix, p, rel, dir, ok, wantRel, wantDir, wantOK)
		}
	}
	f("", "/", "", true, true)
	f("", "/a.txt", "a.txt", false, true)
	f("", "/a/b/", "a/b/", true, true)
	f("", "/.well-known/acme-challenge/x", ".well-known/acme-challenge/x", false, true)
	f("", "/..", "", false, false)
	f("", "/../etc/passwd", "", false, false)
	f("", "/a/../../etc/passwd", "", false, false)
	f("", "/a/./b", "", false, false)
	f("", "/.git/config", "", false, false)
	f("", "/a/.env", "", false, false)
	f("", "/a/.well-known/x", "", false, false)
	f("", "/.well-known2/x", "", false, false)
	f("", "//etc/passwd", "", false, false)
	f("", "/a//b", "", false, false)
	f("", "/a\\..\\b", "", false, false)
	f("", "/a\x00.txt", "", false, false)
	f("", "", "", false, false)
	f("", "a.txt", "", false, false)
	f("/assets", "/assets/a.css", "a.css", false, true)
	f("/assets", "/assets", "", false, true)
	f("/assets", "/assets/", "", true, true)
	f("/assets", "/assetsx", "", false, false)
	f("/assets", "/other/a.css", "", false, false)
	f("/assets", "/assets/../a.css", "", false, false)
}
