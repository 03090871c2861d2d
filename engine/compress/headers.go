package compress

import (
	"bytes"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// Header names as hertz normalizes them.
const (
	hdrVary          = "Vary"
	hdrETag          = "Etag"
	hdrAcceptRanges  = "Accept-Ranges"
	hdrContentRange  = "Content-Range"
	hdrContentLength = "Content-Length"
	hdrCacheControl  = "Cache-Control"
	hdrAcceptEnc     = "Accept-Encoding"
)

// hasToken reports whether the comma-separated list v contains tok
// (case-insensitive, RFC 9110 §5.6.1). A list member matches when its name
// part (before any "=" or ";") equals tok, so "no-transform" is found in
// "public, No-Transform" but not in "no-transformx". It does not allocate.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		elem := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if i := bytes.IndexAny(elem, "=;"); i >= 0 {
			elem = elem[:i]
		}
		if bytes.EqualFold(trimOWS(elem), []byte(tok)) {
			return true
		}
	}
	return false
}

// respHasToken looks for tok in every field line of a response header.
func respHasToken(h *protocol.ResponseHeader, key, tok string) bool {
	for _, v := range h.PeekAll(key) {
		if hasToken(v, tok) {
			return true
		}
	}
	return false
}

// reqHasToken looks for tok in every field line of a request header.
func reqHasToken(h *protocol.RequestHeader, key, tok string) bool {
	for _, v := range h.PeekAll(key) {
		if hasToken(v, tok) {
			return true
		}
	}
	return false
}

// addVary makes sure the response lists Accept-Encoding in Vary
// (RFC 9110 §12.5.5) so caches keep the coded and uncoded representations
// apart. An existing "Vary: *" already covers it; an existing single Vary line
// is extended in place rather than followed by a second line.
func addVary(h *protocol.ResponseHeader) {
	vals := h.PeekAll(hdrVary)
	for _, v := range vals {
		if hasToken(v, hdrAcceptEnc) || hasToken(v, "*") {
			return
		}
	}
	switch {
	case len(vals) == 0:
		h.Set(hdrVary, hdrAcceptEnc)
	case len(vals) == 1 && len(trimOWS(vals[0])) == 0:
		h.Set(hdrVary, hdrAcceptEnc)
	case len(vals) == 1:
		h.Set(hdrVary, string(trimOWS(vals[0]))+", "+hdrAcceptEnc)
	default:
		h.Add(hdrVary, hdrAcceptEnc)
	}
}

// weakenETag turns a strong entity tag into a weak one: the coded bytes are
// not the bytes the origin tagged, and a strong validator promises
// byte-for-byte identity (RFC 9110 §8.8.1, §8.8.3). Weak tags still validate
// If-None-Match (weak comparison, §13.1.2). Values that are already weak or
// are not an entity tag at all are left alone.
func weakenETag(h *protocol.ResponseHeader) {
	v := h.Peek(hdrETag)
	if len(v) < 2 || v[0] != '"' {
		return
	}
	weak := make([]byte, 0, len(v)+2)
	weak = append(weak, 'W', '/')
	weak = append(weak, v...)
	h.SetBytesV(hdrETag, weak)
}

// contentLengthKnown returns the body length the response declares when it
// has no in-memory body (a HEAD response, typically), or -1.
func contentLengthKnown(h *protocol.ResponseHeader) int {
	if len(h.ContentLengthBytes()) == 0 {
		return -1
	}
	return h.ContentLength()
}
