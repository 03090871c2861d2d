package handlers

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/ut"
)

func writeStaticFile(name, content string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, []byte(content), 0o644)
}

// staticClock is an injected clock the tests move by hand.
type staticClock struct{ t time.Time }

func (c *staticClock) now() time.Time          { return c.t }
func (c *staticClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// staticTree builds a document root with the cases the rules talk about
// and a sibling directory holding secrets that must stay unreachable.
// It returns the root and the contents of big.bin.
func staticTree(t *testing.T) (string, []byte) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "www")
	outside := filepath.Join(base, "secret")
	big := make([]byte, 300<<10+7)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	files := map[string]string{
		"hello.txt":                      "hello, edgeloop\n",
		"sub/index.html":                 "<h1>sub index</h1>\n",
		"sub/deeper/app.js":              "console.log(1)\n",
		"noindex/file.css":               "body{}\n",
		"data.json":                      `{"ok":true}`,
		"unknown.zzz9":                   "?",
		"empty.txt":                      "",
		".env":                           "SECRET=1\n",
		".git/config":                    "[core]\n",
		"sub/.hidden/x.txt":              "hidden\n",
		".well-known/acme-challenge/tok": "tok.key\n",
		"sub/.well-known/x":              "nested\n",
		"../secret/passwd":               "root:x:0:0\n",
		"../secret/dir/s.txt":            "secret dir\n",
	}
	for name, content := range files {
		if err := writeStaticFile(filepath.Join(root, name), content); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"link-in":          "hello.txt",
		"sub/link-up":      "../hello.txt",
		"link-out":         filepath.Join(outside, "passwd"),
		"link-out-rel":     "../secret/passwd",
		"dir-out":          outside,
		"loop":             "loop",
		"sub/link-abs-ins": filepath.Join(root, "hello.txt"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, big
}

func TestStaticRootDir(t *testing.T) {
	root, big := staticTree(t)
	s, err := NewStatic(StaticConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := staticEngine(t, s, "")
	etag, lastMod := staticProbe(t, e, "/hello.txt")
	fi, _ := os.Stat(filepath.Join(root, "hello.txt"))
	if want := string(staticETag(fi.ModTime(), fi.Size())); etag != want {
		t.Fatalf("ETag %q, want %q", etag, want)
	}
	if want := fi.ModTime().UTC().Format(time.RFC1123); lastMod != want[:len(want)-3]+"GMT" {
		t.Fatalf("Last-Modified %q, want %q", lastMod, want)
	}

	staticRun(t, e, []staticCase{
		{name: "file", path: "/hello.txt", code: 200, body: "hello, edgeloop\n",
			wantHeaders: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Length": "16", "Accept-Ranges": "bytes"}},
		{name: "cached file again", path: "/hello.txt", code: 200, body: "hello, edgeloop\n"},
		{name: "json", path: "/data.json", code: 200, wantHeaders: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{name: "js", path: "/sub/deeper/app.js", code: 200, wantHeaders: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
		{name: "unknown type", path: "/unknown.zzz9", code: 200, wantHeaders: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "empty file", path: "/empty.txt", code: 200, bodyLen: -1, wantHeaders: map[string]string{"Content-Length": "0"}},
		{name: "empty file range", path: "/empty.txt", headers: staticHdr("Range", "bytes=0-"), code: 416},
		{name: "head", method: "HEAD", path: "/hello.txt", code: 200, bodyLen: -1, wantHeaders: map[string]string{"Accept-Ranges": "bytes"}},
		{name: "put", method: "PUT", path: "/hello.txt", code: 405, wantHeaders: map[string]string{"Allow": "GET, HEAD"}},
		{name: "root index missing", path: "/", code: 403},
		{name: "dir redirect", path: "/sub", code: 301, wantHeaders: map[string]string{"Location": "/sub/"}},
		{name: "dir redirect keeps query", path: "/sub?a=1&b=2", code: 301, wantHeaders: map[string]string{"Location": "/sub/?a=1&b=2"}},
		{name: "dir redirect no open redirect", path: "//sub", code: 301, wantHeaders: map[string]string{"Location": "/sub/"}},
		{name: "dir index", path: "/sub/", code: 200, body: "<h1>sub index</h1>\n", wantHeaders: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "dir index cached", path: "/sub/", code: 200, body: "<h1>sub index</h1>\n"},
		{name: "dir without index", path: "/noindex/", code: 403},
		{name: "file with slash", path: "/hello.txt/", code: 404},
		{name: "below a file", path: "/hello.txt/x", code: 404},
		{name: "missing", path: "/missing.txt", code: 404},
		{name: "dotfile", path: "/.env", code: 404},
		{name: "dot dir", path: "/.git/config", code: 404},
		{name: "nested dot dir", path: "/sub/.hidden/x.txt", code: 404},
		{name: "well-known", path: "/.well-known/acme-challenge/tok", code: 200, body: "tok.key\n"},
		{name: "well-known only at top", path: "/sub/.well-known/x", code: 404},
		{name: "well-known lookalike", path: "/.well-knownx", code: 404},
		{name: "traversal", path: "/../secret/passwd", code: 404},
		{name: "deep traversal", path: "/sub/../../../../secret/passwd", code: 404},
		{name: "encoded traversal", path: "/%2e%2e/secret/passwd", code: 404},
		{name: "encoded slash traversal", path: "/sub/..%2f..%2fsecret%2fpasswd", code: 404},
		{name: "backslash", path: "/sub\\..\\..\\secret\\passwd", code: 404},
		{name: "nul", path: "/hello.txt%00", code: 404},
		{name: "symlink inside", path: "/link-in", code: 200, body: "hello, edgeloop\n"},
		{name: "symlink up inside", path: "/sub/link-up", code: 200, body: "hello, edgeloop\n"},
		{name: "symlink escape abs", path: "/link-out", code: 403},
		{name: "symlink escape rel", path: "/link-out-rel", code: 403},
		{name: "symlink dir escape", path: "/dir-out/s.txt", code: 403},
		{name: "absolute symlink into root", path: "/sub/link-abs-ins", code: 403},
		{name: "symlink loop", path: "/loop", code: 403},
		{name: "fifo", path: "/fifo", code: 403},
		{name: "inm", path: "/hello.txt", headers: staticHdr("If-None-Match", etag), code: 304, bodyLen: -1, wantHeaders: map[string]string{"ETag": etag}},
		{name: "ims", path: "/hello.txt", headers: staticHdr("If-Modified-Since", lastMod), code: 304},
		{name: "range", path: "/hello.txt", headers: staticHdr("Range", "bytes=7-14"), code: 206, body: "edgeloop",
			wantHeaders: map[string]string{"Content-Range": "bytes 7-14/16"}},
		{name: "big", path: "/big.bin", code: 200, body: string(big), wantHeaders: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "big range", path: "/big.bin", headers: staticHdr("Range", "bytes=200000-200099"), code: 206, body: string(big[200000:200100]),
			wantHeaders: map[string]string{"Content-Range": "bytes 200000-200099/307207", "Content-Length": "100"}},
		{name: "big suffix", path: "/big.bin", headers: staticHdr("Range", "bytes=-5"), code: 206, body: string(big[len(big)-5:])},
		{name: "big head", method: "HEAD", path: "/big.bin", code: 200, bodyLen: -1, wantHeaders: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "big 416", path: "/big.bin", headers: staticHdr("Range", "bytes=307207-"), code: 416, wantHeaders: map[string]string{"Content-Range": "bytes */307207"}},
	})
}

// TestStaticBigFileStreams checks that files above the cache limit are
// handed to hertz as a stream over the open file rather than read into
// memory, and that the stream closes the file.
func TestStaticBigFileStreams(t *testing.T) {
	root, big := staticTree(t)
	s, err := NewStatic(StaticConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		rng  string
		want []byte
	}{{"", big}, {"bytes=65536-70000", big[65536:70001]}} {
		c := app.NewContext(0)
		c.Request.SetRequestURI("/big.bin")
		c.Request.Header.SetMethod("GET")
		if tc.rng != "" {
			c.Request.Header.Set("Range", tc.rng)
		}
		s.Handle(t.Context(), c)
		if !c.Response.IsBodyStream() {
			t.Fatalf("range %q: body is not streamed", tc.rng)
		}
		stream, ok := c.Response.BodyStream().(*staticFileStream)
		if !ok {
			t.Fatalf("body stream is %T", c.Response.BodyStream())
		}
		f := stream.f
		if got := c.Response.Body(); !bytes.Equal(got, tc.want) {
			t.Fatalf("range %q: streamed %d bytes, want %d", tc.rng, len(got), len(tc.want))
		}
		if _, err := f.Stat(); err == nil {
			t.Fatal("file still open after the body was consumed")
		}
	}
	if n, _ := s.cache.stats(); n != 0 {
		t.Fatalf("big file went into the cache (%d entries)", n)
	}
}

// TestStaticRevalidate changes files on disk and moves the injected clock:
// a cached file is served unchanged until the revalidation interval has
// passed, then the new contents (or the 404) show.
func TestStaticRevalidate(t *testing.T) {
	root := t.TempDir()
	name := filepath.Join(root, "page.txt")
	if err := writeStaticFile(name, "version one\n"); err != nil {
		t.Fatal(err)
	}
	s, err := NewStatic(StaticConfig{Root: root, Revalidate: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clk := &staticClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	s.now = clk.now
	e := staticEngine(t, s, "")
	get := func(wantCode int, wantBody string) {
		t.Helper()
		resp := ut.PerformRequest(e, "GET", "/page.txt", nil).Result()
		if resp.StatusCode() != wantCode || (wantBody != "" && string(resp.Body()) != wantBody) {
			t.Fatalf("at %s: %d %q, want %d %q", clk.t.Format(time.TimeOnly), resp.StatusCode(), resp.Body(), wantCode, wantBody)
		}
	}
	mtime := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	set := func(content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}

	get(200, "version one\n")
	set("version two\n") // same size, new mtime
	get(200, "version one\n")
	clk.advance(1999 * time.Millisecond)
	get(200, "version one\n")
	clk.advance(time.Millisecond)
	get(200, "version two\n")

	set("v3\n") // new size
	clk.advance(time.Second)
	get(200, "version two\n")
	clk.advance(time.Second)
	get(200, "v3\n")

	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	get(200, "v3\n")
	clk.advance(2 * time.Second)
	get(404, "")
	if n, _ := s.cache.stats(); n != 0 {
		t.Fatalf("deleted file still cached (%d entries)", n)
	}

	// A file replaced by a symlink leaving Root is refused once revalidated.
	if err := os.Symlink("/etc/hostname", name); err != nil {
		t.Fatal(err)
	}
	get(403, "")
}

func TestStaticCacheBounds(t *testing.T) {
	root := t.TempDir()
	for i := range 10 {
		if err := writeStaticFile(filepath.Join(root, string(rune('a'+i))+".txt"), string(bytes.Repeat([]byte{'x'}, 1000))); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewStatic(StaticConfig{Root: root, CacheBytes: 3500, CacheFileSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	e := staticEngine(t, s, "")
	for round := range 2 {
		for i := range 10 {
			p := "/" + string(rune('a'+i)) + ".txt"
			if resp := ut.PerformRequest(e, "GET", p, nil).Result(); resp.StatusCode() != 200 || len(resp.Body()) != 1000 {
				t.Fatalf("round %d %s: %d, %d bytes", round, p, resp.StatusCode(), len(resp.Body()))
			}
			if n, b := s.cache.stats(); b > 3500 || n > 3 {
				t.Fatalf("cache holds %d entries, %d bytes; cap 3500", n, b)
			}
		}
	}
	if n, _ := s.cache.stats(); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if resp := ut.PerformRequest(e, "GET", "/a.txt", nil).Result(); resp.StatusCode() != 503 {
		t.Fatalf("after Close: %d, want 503", resp.StatusCode())
	}
}
