package handlers

import (
	"bytes"
	"strconv"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol"
)

// rangeKind is what a Range header asks of a representation of a given
// size (RFC 9110 §14.1.2).
type rangeKind int

const (
	rangeIgnore        rangeKind = iota // absent, malformed, not bytes, or several ranges: send it all
	rangeOne                            // one satisfiable range: 206
	rangeUnsatisfiable                  // no byte of it exists: 416
)

// parseRange reads a Range header against a representation of size bytes.
// It serves one range; a request for several gets the whole representation,
// which RFC 9110 §14.2 allows ("a server MAY ignore the Range header field").
// first and last are inclusive offsets.
func parseRange(v []byte, size int) (first, last int, kind rangeKind) {
	spec, ok := bytes.CutPrefix(bytes.TrimSpace(v), []byte("bytes="))
	if !ok || bytes.IndexByte(spec, ',') >= 0 {
		return 0, 0, rangeIgnore
	}
	a, b, ok := bytes.Cut(bytes.TrimSpace(spec), []byte("-"))
	if !ok {
		return 0, 0, rangeIgnore
	}
	num := func(s []byte) (int, bool) {
		if len(s) == 0 || len(s) > 18 {
			return 0, false
		}
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if len(a) == 0 { // suffix-range: the last n bytes
		n, ok := num(b)
		switch {
		case !ok:
			return 0, 0, rangeIgnore
		case n == 0 || size == 0:
			return 0, 0, rangeUnsatisfiable
		}
		return max(size-n, 0), size - 1, rangeOne
	}
	first, ok = num(a)
	if !ok {
		return 0, 0, rangeIgnore
	}
	last = size - 1
	if len(b) > 0 {
		if last, ok = num(b); !ok || last < first {
			return 0, 0, rangeIgnore
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return first, last, rangeOne
}

// ifRangeMatches evaluates If-Range (RFC 9110 §13.1.5): the range applies
// only if the validator matches the stored one, an entity tag by strong
// comparison, a date exactly the Last-Modified. Absent: it applies.
func ifRangeMatches(req *protocol.RequestHeader, resp *protocol.ResponseHeader) bool {
	v := bytes.TrimSpace(req.Peek("If-Range"))
	if len(v) == 0 {
		return true
	}
	if v[0] == '"' { // a strong entity tag; W/ tags never match
		etag := resp.Peek("ETag")
		return len(etag) > 0 && etag[0] == '"' && bytes.Equal(v, etag)
	}
	lm := resp.Peek("Last-Modified")
	return len(lm) > 0 && bytes.Equal(v, lm)
}

// serveRange cuts a complete 200 response in c to the request's Range:
// 206 with Content-Range for one satisfiable range, 416 with
// "Content-Range: bytes */size" when nothing of it exists, and the whole
// response otherwise. The body may be the cache's shared bytes, so the
// range is copied out rather than cut in place.
func serveRange(c *app.RequestContext) {
	resp := &c.Response
	if resp.StatusCode() != 200 || resp.IsBodyStream() || resp.SkipBody ||
		!ifRangeMatches(&c.Request.Header, &resp.Header) {
		return
	}
	body := resp.Body() // may be the cache's shared bytes: read, never written
	size := len(body)
	first, last, kind := parseRange(c.Request.Header.Peek("Range"), size)
	var cr []byte
	switch kind {
	case rangeIgnore:
		return
	case rangeUnsatisfiable:
		resp.SetStatusCode(416)
		resp.ResetBody()
		cr = append([]byte("bytes */"), strconv.Itoa(size)...)
	case rangeOne:
		resp.SetStatusCode(206)
		resp.SetBodyRaw(append([]byte(nil), body[first:last+1]...))
		cr = append([]byte("bytes "), strconv.Itoa(first)...)
		cr = append(append(append(append(cr, '-'), strconv.Itoa(last)...), '/'), strconv.Itoa(size)...)
	}
	resp.Header.Set("Content-Range", string(cr))
	resp.Header.SetContentLength(len(resp.BodyBytes()))
}
