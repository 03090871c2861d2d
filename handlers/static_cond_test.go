package handlers

import (
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

func TestStaticParseRange(t *testing.T) {
	f := func(v string, size int64, want staticDecision, start, end int64) {
		t.Helper()
		d, s, e := staticParseRange([]byte(v), size)
		if d != want || (d == staticPartial && (s != start || e != end)) {
			t.Errorf("%q size %d: got %d [%d,%d], want %d [%d,%d]", v, size, d, s, e, want, start, end)
		}
	}
	f("bytes=0-0", 10, staticPartial, 0, 0)
	f("bytes=0-9", 10, staticPartial, 0, 9)
	f("bytes=0-99", 10, staticPartial, 0, 9)
	f("bytes=3-", 10, staticPartial, 3, 9)
	f("bytes=-3", 10, staticPartial, 7, 9)
	f("bytes=-30", 10, staticPartial, 0, 9)
	f("BYTES=1-2", 10, staticPartial, 1, 2)
	f("bytes= 1-2 ", 10, staticPartial, 1, 2)
	f("bytes=9-9", 10, staticPartial, 9, 9)
	f("bytes=0-99999999999999999999999", 10, staticPartial, 0, 9)
	f("bytes=10-", 10, staticUnsatisfiable, 0, 0)
	f("bytes=10-20", 10, staticUnsatisfiable, 0, 0)
	f("bytes=-0", 10, staticUnsatisfiable, 0, 0)
	f("bytes=-1", 0, staticUnsatisfiable, 0, 0)
	f("bytes=0-", 0, staticUnsatisfiable, 0, 0)
	f("bytes=99999999999999999999999-", 10, staticUnsatisfiable, 0, 0)
	// Ignored: the whole representation is sent.
	f("bytes=0-1,3-4", 10, staticFull, 0, 0)
	f("bytes=0-1,", 10, staticFull, 0, 0)
	f("bytes=5-1", 10, staticFull, 0, 0)
	f("bytes=-", 10, staticFull, 0, 0)
	f("bytes=a-1", 10, staticFull, 0, 0)
	f("bytes=1-b", 10, staticFull, 0, 0)
	f("bytes=+1-2", 10, staticFull, 0, 0)
	f("bytes=1", 10, staticFull, 0, 0)
	f("bytes=", 10, staticFull, 0, 0)
	f("items=0-1", 10, staticFull, 0, 0)
	f("bytes", 10, staticFull, 0, 0)
	f("", 10, staticFull, 0, 0)
}

func TestStaticETagMatch(t *testing.T) {
	etag := []byte(`"5f-10"`)
	f := func(list string, weak, want bool) {
		t.Helper()
		if got := staticETagMatch([]byte(list), etag, weak); got != want {
			t.Errorf("%q weak=%v: %v, want %v", list, weak, got, want)
		}
	}
	f(`"5f-10"`, true, true)
	f(`"5f-10"`, false, true)
	f(`W/"5f-10"`, true, true)
	f(`W/"5f-10"`, false, false)
	f(`"a", "5f-10"`, true, true)
	f(`"a",W/"5f-10"`, true, true)
	f(` "a" ,	"5f-10" `, false, true)
	f(`*`, true, true)
	f(`*`, false, true)
	f(`"a", "b"`, true, false)
	f(`"5f-1"`, true, false)
	f(`5f-10`, true, false)      // unquoted: malformed
	f(`"5f-10`, true, false)     // unterminated
	f(`"a,b", "c"`, true, false) // comma inside a tag
	f(`W/`, true, false)
	f(``, true, false)
	f(`,,,`, true, false)
}

func TestStaticEvaluatePrecedence(t *testing.T) {
	mod := time.Date(2025, 3, 4, 5, 6, 7, 800, time.UTC)
	e := newStaticEntry("a.txt", make([]byte, 100), 100, mod, nil)
	lm := string(e.lastModified)
	before := "Mon, 03 Mar 2025 00:00:00 GMT"
	after := "Wed, 05 Mar 2025 00:00:00 GMT"
	f := func(want staticDecision, isGet bool, kv ...string) {
		t.Helper()
		var h protocol.RequestHeader
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		if d, _, _ := staticEvaluate(&h, e, isGet); d != want {
			t.Errorf("%q get=%v: %d, want %d", kv, isGet, d, want)
		}
	}
	tag := string(e.etag)
	f(staticFull, true)
	f(staticNotModified, true, "If-None-Match", tag)
	f(staticNotModified, true, "If-Modified-Since", lm)
	f(staticNotModified, true, "If-Modified-Since", after)
	f(staticFull, true, "If-Modified-Since", before)
	f(staticFull, true, "If-None-Match", `"x"`, "If-Modified-Since", after)       // §13.2.2 step 3 before 4
	f(staticNotModified, true, "If-None-Match", tag, "If-Modified-Since", before) // and IMS is not consulted
	f(staticPreconditionFailed, true, "If-Match", `"x"`, "If-None-Match", tag)
	f(staticNotModified, true, "If-Match", tag, "If-None-Match", tag)
	f(staticPreconditionFailed, true, "If-Unmodified-Since", before)
	f(staticFull, true, "If-Unmodified-Since", lm)
	f(staticFull, true, "If-Match", tag, "If-Unmodified-Since", before) // IUS ignored when If-Match present
	f(staticPartial, true, "Range", "bytes=0-1")
	f(staticFull, false, "Range", "bytes=0-1") // HEAD
	f(staticPartial, true, "Range", "bytes=0-1", "If-Range", tag)
	f(staticPartial, true, "Range", "bytes=0-1", "If-Range", lm)
	f(staticFull, true, "Range", "bytes=0-1", "If-Range", after) // only an exact date matches
	f(staticFull, true, "Range", "bytes=0-1", "If-Range", "W/"+tag)
	f(staticFull, true, "Range", "bytes=0-1", "If-Range", "garbage")
	f(staticUnsatisfiable, true, "Range", "bytes=100-")
	f(staticFull, true, "Range", "bytes=100-", "If-Range", `"old"`)
}

func TestStaticContentType(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		if got := string(staticContentType(name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	f("a.html", "text/html; charset=utf-8")
	f("A.HTML", "text/html; charset=utf-8")
	f("a.css", "text/css; charset=utf-8")
	f("a.js", "text/javascript; charset=utf-8")
	f("a.json", "application/json; charset=utf-8")
	f("a.svg", "image/svg+xml; charset=utf-8")
	f("a.png", "image/png")
	f("a.woff2", "font/woff2")
	f("a.wasm", "application/wasm")
	f("noext", "application/octet-stream")
	f("dir.d/noext", "application/octet-stream")
}
