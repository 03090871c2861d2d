package compress

import (
	"bytes"
	"fmt"
)

// Encoding is a content coding this package can produce (RFC 9110 §8.4.1).
type Encoding uint8

// Content codings, in no particular order; the server's preference order is
// Config.Encodings.
const (
	// Identity means "no transformation" (RFC 9110 §12.5.3).
	Identity Encoding = iota
	// Gzip is the gzip coding of RFC 1952 (RFC 9110 §8.4.1.3).
	Gzip
	// Brotli is the "br" coding of RFC 7932.
	Brotli

	numEncodings
)

var encodingNames = [numEncodings]string{
	Identity: "identity",
	Gzip:     "gzip",
	Brotli:   "br",
}

// String returns the coding's token as it appears in Content-Encoding.
func (e Encoding) String() string {
	if e < numEncodings {
		return encodingNames[e]
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// ParseEncoding maps a Content-Encoding token (case-insensitive) to an
// Encoding. "x-gzip" is accepted as "gzip" (RFC 9110 §8.4.1.3).
func ParseEncoding(s string) (Encoding, error) {
	if e, ok := lookupCoding([]byte(s)); ok && e >= 0 {
		return Encoding(e), nil
	}
	return Identity, fmt.Errorf("%w: %q", ErrUnknownEncoding, s)
}

// codingStar is what lookupCoding returns for the "*" wildcard.
const codingStar = -1

// lookupCoding maps a token to an Encoding index, codingStar for "*", or
// reports false for codings this package does not produce.
func lookupCoding(tok []byte) (int, bool) {
	switch {
	case len(tok) == 1 && tok[0] == '*':
		return codingStar, true
	case bytes.EqualFold(tok, []byte("gzip")), bytes.EqualFold(tok, []byte("x-gzip")):
		return int(Gzip), true
	case bytes.EqualFold(tok, []byte("br")):
		return int(Brotli), true
	case bytes.EqualFold(tok, []byte("identity")):
		return int(Identity), true
	}
	return 0, false
}

// acceptSet holds the q-values (in thousandths, RFC 9110 §12.4.2) an
// Accept-Encoding field gave each coding; -1 means "not mentioned". It lives
// on the stack so that negotiation does not allocate.
type acceptSet struct {
	q    [numEncodings]int16
	star int16
}

func (a *acceptSet) reset() {
	for i := range a.q {
		a.q[i] = -1
	}
	a.star = -1
}

// parse adds the elements of one Accept-Encoding field value. Empty list
// elements are skipped (RFC 9110 §5.6.1); malformed elements are ignored
// rather than failing the whole field. When a coding is listed twice the
// first occurrence wins.
func (a *acceptSet) parse(v []byte) {
	for len(v) > 0 {
		elem := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		a.parseElement(elem)
	}
}

// parseElement parses `codings [ OWS ";" OWS "q=" qvalue ]`.
func (a *acceptSet) parseElement(elem []byte) {
	tok, weight := elem, []byte(nil)
	hasWeight := false
	if i := bytes.IndexByte(elem, ';'); i >= 0 {
		tok, weight, hasWeight = elem[:i], elem[i+1:], true
	}
	tok = trimOWS(tok)
	if !isToken(tok) {
		return
	}
	q := int16(1000)
	if hasWeight {
		var ok bool
		if q, ok = parseWeight(trimOWS(weight)); !ok {
			return
		}
	}
	idx, known := lookupCoding(tok)
	switch {
	case !known:
	case idx == codingStar:
		if a.star < 0 {
			a.star = q
		}
	case a.q[idx] < 0:
		a.q[idx] = q
	}
}

// parseWeight parses `"q=" qvalue` where
// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
// The "q" is case-insensitive, as every ABNF literal is.
func parseWeight(w []byte) (int16, bool) {
	if len(w) < 3 || w[0]|0x20 != 'q' || w[1] != '=' {
		return 0, false
	}
	v := w[2:]
	if v[0] != '0' && v[0] != '1' {
		return 0, false
	}
	q := int16(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	scale := int16(100)
	for _, c := range v[2:] {
		if c < '0' || c > '9' || (q == 1000 && c != '0') {
			return 0, false
		}
		q += int16(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// pick chooses among prefer (the server's order) the coding with the highest
// q-value; equal q-values go to the earlier entry. A coding not mentioned
// takes the "*" weight, if any. Identity wins only when the client gave it
// (explicitly or through "*") a q-value strictly above the best coding's: an
// unmentioned identity is acceptable but least preferred (RFC 9110 §12.5.3).
func (a *acceptSet) pick(prefer []Encoding) Encoding {
	best, bestQ := Identity, int16(0)
	for _, e := range prefer {
		if e == Identity || e >= numEncodings {
			continue
		}
		q := a.q[e]
		if q < 0 {
			q = a.star
		}
		if q > bestQ {
			best, bestQ = e, q
		}
	}
	if best == Identity {
		return Identity
	}
	iq := a.q[Identity]
	if iq < 0 {
		iq = a.star
	}
	if iq > bestQ {
		return Identity
	}
	return best
}

// Negotiate chooses the content coding for a response from the request's
// Accept-Encoding field value (RFC 9110 §12.5.3) and the server's preference
// order. q-values rank the codings, q=0 excludes one, "*" stands for every
// coding not listed, tokens are case-insensitive, whitespace around elements
// and weights is ignored, and malformed elements are skipped. Ties go to the
// server's order.
//
// An empty or absent field yields Identity: the client stated no coding it can
// decode. Identity is also the answer when nothing in prefer is acceptable,
// even if the client excluded identity itself ("identity;q=0"): RFC 9110
// §12.5.3 then allows either a 406 or ignoring the field, and a gateway
// ignores it, as nginx does.
//
// Negotiate does not allocate and is safe for concurrent use.
func Negotiate(acceptEncoding []byte, prefer []Encoding) Encoding {
	var a acceptSet
	a.reset()
	a.parse(acceptEncoding)
	return a.pick(prefer)
}

// trimOWS strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isToken reports whether b is a non-empty RFC 9110 §5.6.2 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
