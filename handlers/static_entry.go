package handlers

import (
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

// Canonical header names and fixed values, kept as package-level byte
// slices so the hot path hands hertz existing memory instead of converting
// strings on every request.
var (
	staticHdrETag         = []byte("Etag") // hertz's canonical spelling, so Peek("ETag") finds it
	staticHdrLastModified = []byte("Last-Modified")
	staticHdrCacheControl = []byte("Cache-Control")
	staticHdrAcceptRanges = []byte("Accept-Ranges")
	staticHdrContentRange = []byte("Content-Range")
	staticHdrAllow        = []byte("Allow")
	staticHdrLocation     = []byte("Location")
	staticBytesUnit       = []byte("bytes")
	staticAllowValue      = []byte("GET, HEAD")
	staticTextPlain       = []byte("text/plain; charset=utf-8")

	staticBody301 = []byte("moved permanently\n")
	staticBody403 = []byte("forbidden\n")
	staticBody404 = []byte("not found\n")
	staticBody405 = []byte("method not allowed\n")
	staticBody412 = []byte("precondition failed\n")
	staticBody416 = []byte("range not satisfiable\n")
	staticBody500 = []byte("internal server error\n")
	staticBody503 = []byte("unavailable\n")
)

// staticEntry is one servable file with every response header value
// precomputed. An entry is immutable once published (only checked
// changes), so in-flight responses may keep pointing at body after the
// cache has replaced the entry.
type staticEntry struct {
	body         []byte // whole contents; nil when the file is streamed from disk
	size         int64
	modTime      time.Time // full precision, compared on revalidation
	modSec       time.Time // truncated to seconds, as Last-Modified carries it
	etag         []byte
	lastModified []byte
	contentType  []byte
	redirect     bool // a directory named without its trailing slash

	key     string       // cache key: the request name relative to Root
	name    string       // name under Root that was stat'ed (the index for directories)
	checked atomic.Int64 // unix nanoseconds of the last stat
}

// newStaticEntry precomputes the headers for a file called name. A nil
// etag gets the nginx-style strong validator built from mtime and size.
func newStaticEntry(name string, body []byte, size int64, mod time.Time, etag []byte) *staticEntry {
	if etag == nil {
		etag = staticETag(mod, size)
	}
	return &staticEntry{
		body:         body,
		size:         size,
		modTime:      mod,
		modSec:       mod.Truncate(time.Second),
		etag:         etag,
		lastModified: mod.UTC().AppendFormat(nil, http.TimeFormat),
		contentType:  staticContentType(name),
		name:         name,
	}
}

// staticETag formats `"<mtime>-<size>"` in hex like nginx, but with the
// mtime in nanoseconds so two same-size writes within one second differ.
func staticETag(mod time.Time, size int64) []byte {
	b := make([]byte, 0, 36)
	b = append(b, '"')
	b = strconv.AppendInt(b, mod.UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, size, 16)
	return append(b, '"')
}

// staticTypes overrides mime.TypeByExtension, whose answers depend on the
// host's /etc/mime.types, for the types a web site cannot do without.
var staticTypes = map[string]string{
	".html": "text/html", ".htm": "text/html", ".css": "text/css",
	".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
	".map": "application/json", ".txt": "text/plain", ".md": "text/markdown",
	".xml": "application/xml", ".svg": "image/svg+xml", ".png": "image/png",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".wasm": "application/wasm",
	".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm",
	".webmanifest": "application/manifest+json",
}

// staticContentType maps a file name to a Content-Type, adding
// "; charset=utf-8" to textual types that do not name a charset.
func staticContentType(name string) []byte {
	ext := strings.ToLower(path.Ext(name))
	ct, ok := staticTypes[ext]
	if !ok {
		ct = mime.TypeByExtension(ext)
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	if !strings.Contains(ct, "charset=") && staticIsText(ct) {
		ct += "; charset=utf-8"
	}
	return []byte(ct)
}

func staticIsText(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasSuffix(ct, "+xml") ||
		strings.HasSuffix(ct, "+json") || ct == "application/json" ||
		ct == "application/xml" || ct == "application/javascript"
}

// serveEntry answers from an entry. f, when not nil, is the open file for
// an entry without body; serveEntry owns it and closes it unless it hands
// it to hertz as the body stream.
func (s *Static) serveEntry(c *app.RequestContext, e *staticEntry, f *os.File, isGet bool) {
	d, start, end := staticEvaluate(&c.Request.Header, e, isGet)
	resp := &c.Response
	switch d {
	case staticPreconditionFailed:
		staticClose(f)
		staticError(c, consts.StatusPreconditionFailed)
		return
	case staticUnsatisfiable:
		staticClose(f)
		staticError(c, consts.StatusRequestedRangeNotSatisfiable)
		// RFC 9110 §14.4: a 416 carries "bytes */<complete-length>".
		b := strconv.AppendInt([]byte("bytes */"), e.size, 10)
		resp.Header.SetCanonical(staticHdrContentRange, b)
		return
	}
	// Validators and Cache-Control go on 304s too (RFC 9110 §15.4.5).
	set := staticSetHeader(&resp.Header)
	set(&resp.Header, staticHdrETag, e.etag)
	set(&resp.Header, staticHdrLastModified, e.lastModified)
	if s.cacheControl != nil {
		set(&resp.Header, staticHdrCacheControl, s.cacheControl)
	}
	if d == staticNotModified {
		staticClose(f)
		resp.SetStatusCode(consts.StatusNotModified)
		return
	}
	resp.Header.SetContentTypeBytes(e.contentType)
	set(&resp.Header, staticHdrAcceptRanges, staticBytesUnit)
	if d == staticPartial {
		resp.SetStatusCode(consts.StatusPartialContent)
		resp.Header.SetContentRange(int(start), int(end), int(e.size))
	} else {
		// Set explicitly: a NoRoute handler starts out as 404.
		resp.SetStatusCode(consts.StatusOK)
		start, end = 0, e.size-1
	}
	n := end - start + 1
	if !isGet {
		staticClose(f)
		resp.SkipBody = true
		resp.Header.SetContentLength(int(n))
		return
	}
	if f == nil {
		resp.SetBodyRaw(e.body[start : end+1])
		return
	}
	s.streamFile(c, f, start, n)
}

// staticSetHeader picks how serveEntry sets its headers. On a fresh
// response (the usual case: hertz resets it per request) appending skips
// SetCanonical's special-header checks and duplicate scan, which the CPU
// profile of the 1 KiB benchmark shows as our largest cost; if anything
// set headers before us, the checked path is used.
func staticSetHeader(h *protocol.ResponseHeader) func(h *protocol.ResponseHeader, k, v []byte) {
	if len(h.GetHeaders()) == 0 {
		return staticAddHeader
	}
	return (*protocol.ResponseHeader).SetCanonical
}

func staticAddHeader(h *protocol.ResponseHeader, k, v []byte) {
	h.AddArgBytes(k, v, protocol.ArgsHasValue)
}

func staticClose(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// staticError writes a short plain-text error. Bodies are preallocated.
func staticError(c *app.RequestContext, code int) {
	var body []byte
	switch code {
	case consts.StatusForbidden:
		body = staticBody403
	case consts.StatusNotFound:
		body = staticBody404
	case consts.StatusMethodNotAllowed:
		body = staticBody405
	case consts.StatusPreconditionFailed:
		body = staticBody412
	case consts.StatusRequestedRangeNotSatisfiable:
		body = staticBody416
	case consts.StatusServiceUnavailable:
		body = staticBody503
	default:
		code, body = consts.StatusInternalServerError, staticBody500
	}
	c.Response.SetStatusCode(code)
	c.Response.Header.SetContentTypeBytes(staticTextPlain)
	c.Response.SetBodyRaw(body)
}

// staticRedirect answers a directory named without its trailing slash with
// 301 to the slash form, keeping the query, like nginx. The location is
// built from the normalized path, so "//evil.example" cannot become a
// protocol-relative redirect.
func staticRedirect(c *app.RequestContext) {
	p := string(c.Path())
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		staticError(c, consts.StatusNotFound)
		return
	}
	loc := (&url.URL{Path: p + "/"}).EscapedPath()
	if q := c.Request.URI().QueryString(); len(q) > 0 {
		loc += "?" + string(q)
	}
	c.Response.SetStatusCode(consts.StatusMovedPermanently)
	c.Response.Header.SetCanonical(staticHdrLocation, []byte(loc))
	c.Response.Header.SetContentTypeBytes(staticTextPlain)
	c.Response.SetBodyRaw(staticBody301)
}
