package compress

import (
	"bytes"
	"fmt"
	"strings"
)

// defaultTypes are the media types compressed when Config.Types is empty:
// text and the structured-text formats browsers and API clients fetch.
// Images other than SVG/ICO/BMP, audio, video, fonts in WOFF/WOFF2 and
// archives are already compressed; compressing them again spends CPU to
// gain nothing, so they are left out.
var defaultTypes = []string{
	"text/*",
	"application/json",
	"application/ld+json",
	"application/geo+json",
	"application/problem+json",
	"application/manifest+json",
	"application/vnd.api+json",
	"application/x-ndjson",
	"application/javascript",
	"application/x-javascript",
	"application/ecmascript",
	"application/xml",
	"application/xhtml+xml",
	"application/rss+xml",
	"application/atom+xml",
	"application/wasm",
	"application/graphql-response+json",
	"application/vnd.ms-fontobject",
	"font/ttf",
	"font/otf",
	"image/svg+xml",
	"image/x-icon",
	"image/vnd.microsoft.icon",
	"image/bmp",
}

// maxMediaTypeLen bounds the media types looked up; longer ones are never
// compressible (and would not fit the stack buffer used to lowercase them).
const maxMediaTypeLen = 127

// typeSet matches a Content-Type against configured media types. Entries are
// exact ("application/json") or a whole top-level type ("text/*"). It is
// read-only after construction and safe for concurrent use.
type typeSet struct {
	exact    map[string]struct{}
	prefixes []string // "text/" for "text/*"
}

// newTypeSet validates and lowercases types (media types are
// case-insensitive, RFC 9110 §8.3.1).
func newTypeSet(types []string) (typeSet, error) {
	ts := typeSet{exact: make(map[string]struct{}, len(types))}
	for _, t := range types {
		lt := strings.ToLower(strings.TrimSpace(t))
		typ, sub, ok := strings.Cut(lt, "/")
		if !ok || !isToken([]byte(typ)) || typ == "*" || len(lt) > maxMediaTypeLen ||
			(sub != "*" && !isToken([]byte(sub))) {
			return typeSet{}, fmt.Errorf("%w: %q (want type/subtype or type/*)", ErrBadType, t)
		}
		if sub == "*" {
			ts.prefixes = append(ts.prefixes, typ+"/")
			continue
		}
		ts.exact[lt] = struct{}{}
	}
	return ts, nil
}

// match reports whether the media type of a Content-Type field value is in
// the set. Parameters (charset, boundary, ...) are ignored. It does not
// allocate.
func (ts *typeSet) match(contentType []byte) bool {
	mt := contentType
	if i := bytes.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = trimOWS(mt)
	if len(mt) == 0 || len(mt) > maxMediaTypeLen {
		return false
	}
	var buf [maxMediaTypeLen]byte
	lower := buf[:len(mt)]
	for i, c := range mt {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if _, ok := ts.exact[string(lower)]; ok {
		return true
	}
	for _, p := range ts.prefixes {
		if len(lower) > len(p) && string(lower[:len(p)]) == p {
			return true
		}
	}
	return false
}
