package handlers

import (
	"bytes"
	"math"
	"net/http"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// staticDecision is the outcome of evaluating a request's preconditions
// and Range header against a file.
type staticDecision uint8

const (
	staticFull               staticDecision = iota // 200 with the whole file
	staticPartial                                  // 206 with one byte range
	staticNotModified                              // 304
	staticPreconditionFailed                       // 412
	staticUnsatisfiable                            // 416
)

var (
	staticHdrIfMatch           = []byte("If-Match")
	staticHdrIfNoneMatch       = []byte("If-None-Match")
	staticHdrIfModifiedSince   = []byte("If-Modified-Since")
	staticHdrIfUnmodifiedSince = []byte("If-Unmodified-Since")
	staticHdrIfRange           = []byte("If-Range")
	staticHdrRange             = []byte("Range")
)

// staticEvaluate applies the preconditions in the order of RFC 9110
// §13.2.2 — If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
// then If-Range — and resolves a Range header. If-Unmodified-Since and
// If-Modified-Since are only consulted when the matching entity-tag field
// is absent, so If-None-Match wins over If-Modified-Since. Range is honoured
// for GET only (§14.2). For staticPartial, start and end are the inclusive
// byte positions.
func staticEvaluate(h *protocol.RequestHeader, e *staticEntry, isGet bool) (d staticDecision, start, end int64) {
	if v := h.PeekArgBytes(staticHdrIfMatch); len(v) > 0 {
		if !staticETagMatch(v, e.etag, false) {
			return staticPreconditionFailed, 0, 0
		}
	} else if v := h.PeekArgBytes(staticHdrIfUnmodifiedSince); len(v) > 0 {
		if t, ok := staticParseDate(v, e); ok && e.modSec.After(t) {
			return staticPreconditionFailed, 0, 0
		}
	}
	if v := h.PeekArgBytes(staticHdrIfNoneMatch); len(v) > 0 {
		if staticETagMatch(v, e.etag, true) {
			return staticNotModified, 0, 0
		}
	} else if v := h.PeekArgBytes(staticHdrIfModifiedSince); len(v) > 0 {
		if t, ok := staticParseDate(v, e); ok && !e.modSec.After(t) {
			return staticNotModified, 0, 0
		}
	}
	if !isGet {
		return staticFull, 0, 0
	}
	r := h.PeekArgBytes(staticHdrRange)
	if len(r) == 0 {
		return staticFull, 0, 0
	}
	if v := h.PeekArgBytes(staticHdrIfRange); len(v) > 0 && !staticIfRangeMatch(v, e) {
		return staticFull, 0, 0 // representation changed: send all of it (§13.1.5)
	}
	return staticParseRange(r, e.size)
}

// staticParseDate parses an HTTP-date, taking the common case of the client
// echoing our own Last-Modified without parsing (and without allocating).
func staticParseDate(v []byte, e *staticEntry) (time.Time, bool) {
	if bytes.Equal(v, e.lastModified) {
		return e.modSec, true
	}
	t, err := http.ParseTime(string(v)) // IMF-fixdate, RFC 850, asctime (§5.6.7)
	return t, err == nil
}

// staticIfRangeMatch reports whether If-Range names the current
// representation: an entity-tag by strong comparison (a weak tag never
// matches), or a date equal to Last-Modified (RFC 9110 §13.1.5).
func staticIfRangeMatch(v []byte, e *staticEntry) bool {
	if v[0] == '"' || (len(v) > 2 && v[0] == 'W' && v[1] == '/') {
		return staticETagMatch(v, e.etag, false) && !bytes.ContainsRune(v, ',')
	}
	t, ok := staticParseDate(v, e)
	return ok && t.Equal(e.modSec)
}

// staticETagMatch reports whether the If-Match / If-None-Match list v
// matches etag (a strong tag, quotes included). "*" matches any current
// representation. weak selects the weak comparison of RFC 9110 §8.8.3.2,
// which ignores the W/ prefix; strong comparison rejects weak tags.
func staticETagMatch(v, etag []byte, weak bool) bool {
	for i := 0; i < len(v); {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] == '*' {
			return true
		}
		isWeak := false
		if v[i] == 'W' && i+1 < len(v) && v[i+1] == '/' {
			isWeak = true
			i += 2
		}
		if i >= len(v) || v[i] != '"' {
			return false // malformed list: treat as no match
		}
		j := bytes.IndexByte(v[i+1:], '"')
		if j < 0 {
			return false
		}
		tag := v[i : i+j+2]
		i += j + 2
		if (weak || !isWeak) && bytes.Equal(tag, etag) {
			return true
		}
	}
	return false
}

// staticParseRange resolves a Range header for a representation of size
// bytes. One satisfiable byte range gives staticPartial; a range starting
// past the end, or a zero suffix, gives staticUnsatisfiable. Anything else
// — other units, malformed specs, and multiple ranges (we do not generate
// multipart/byteranges) — is ignored and the whole file is sent, which
// RFC 9110 §14.2 permits.
func staticParseRange(v []byte, size int64) (staticDecision, int64, int64) {
	const unit = "bytes="
	if len(v) < len(unit) || !bytes.EqualFold(v[:len(unit)], []byte(unit)) {
		return staticFull, 0, 0
	}
	v = bytes.TrimSpace(v[len(unit):])
	if bytes.IndexByte(v, ',') >= 0 {
		return staticFull, 0, 0
	}
	dash := bytes.IndexByte(v, '-')
	if dash < 0 {
		return staticFull, 0, 0
	}
	first, okFirst := staticParseUint(bytes.TrimSpace(v[:dash]))
	last, okLast := staticParseUint(bytes.TrimSpace(v[dash+1:]))
	switch {
	case dash == 0: // suffix: "-N" is the last N bytes
		if !okLast {
			return staticFull, 0, 0
		}
		if last == 0 || size == 0 {
			return staticUnsatisfiable, 0, 0
		}
		return staticPartial, max(size-last, 0), size - 1
	case !okFirst:
		return staticFull, 0, 0
	case len(bytes.TrimSpace(v[dash+1:])) == 0: // "N-"
		if first >= size {
			return staticUnsatisfiable, 0, 0
		}
		return staticPartial, first, size - 1
	case !okLast || last < first:
		return staticFull, 0, 0
	}
	if first >= size {
		return staticUnsatisfiable, 0, 0
	}
	return staticPartial, first, min(last, size-1)
}

// staticParseUint parses a non-empty run of decimal digits. Values beyond
// 18 digits saturate at math.MaxInt64, which every caller clamps to size.
func staticParseUint(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for i, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if i >= 18 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
