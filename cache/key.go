package cache

import (
	"strings"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// The primary cache key (RFC 9111 §2) is the normalised target URI:
//
//	scheme "://" host path [ "?" sorted-query ]
//
// GET and HEAD share it (HEAD is answered from the stored GET, §4); no other
// method is stored, so the method is not part of the key. Normalisation
// makes equivalent URIs (RFC 3986 §6.2.2) one key: scheme and host are
// lower-cased, the default port dropped, percent-encodings of unreserved
// characters decoded and the rest upper-cased, and query parameters sorted
// (a CDN convention: origins almost never give parameter order meaning).
// '+' and "%20" stay distinct, since only form encoding makes them equal.

// maxQueryParams bounds the on-stack sort of query parameters; longer
// queries are sorted in an allocated slice (never on a normal hit path).
const maxQueryParams = 32

var strHTTP = []byte("http")

// AppendKey appends the primary key of req to dst. It does not allocate
// when dst has room.
func AppendKey(dst []byte, req *protocol.Request) []byte {
	u := req.URI()
	return appendKey(dst, u.Scheme(), req.Host(), u.PathOriginal(), u.QueryString())
}

func appendKey(dst, scheme, host, path, query []byte) []byte {
	if len(scheme) == 0 {
		scheme = strHTTP
	}
	for _, c := range scheme {
		dst = append(dst, lower(c))
	}
	dst = append(dst, "://"...)
	host = stripDefaultPort(scheme, host)
	for _, c := range host {
		dst = append(dst, lower(c))
	}
	if len(path) == 0 || path[0] != '/' {
		dst = append(dst, '/')
	}
	// PathOriginal may hold the query when hertz kept the raw request URI.
	if i := indexByte(path, '?'); i >= 0 {
		if len(query) == 0 {
			query = path[i+1:]
		}
		path = path[:i]
	}
	dst = appendPctNorm(dst, path)
	return appendQuery(dst, query)
}

func stripDefaultPort(scheme, host []byte) []byte {
	n := len(host)
	switch {
	case n > 3 && string(host[n-3:]) == ":80" && eqFold(scheme, "http"):
		return host[:n-3]
	case n > 4 && string(host[n-4:]) == ":443" && eqFold(scheme, "https"):
		return host[:n-4]
	}
	return host
}

// appendQuery appends "?" and the sorted, percent-normalised parameters.
func appendQuery(dst, q []byte) []byte {
	var stack [maxQueryParams][]byte
	params := stack[:0]
	for len(q) > 0 {
		i := indexByte(q, '&')
		if i < 0 {
			i = len(q)
		}
		if i > 0 {
			params = append(params, q[:i]) // allocates only past maxQueryParams
		}
		if i == len(q) {
			break
		}
		q = q[i+1:]
	}
	if len(params) == 0 {
		return dst
	}
	// insertion sort: allocation-free and fast for the usual handful
	for i := 1; i < len(params); i++ {
		for j := i; j > 0 && lessPct(params[j], params[j-1]); j-- {
			params[j], params[j-1] = params[j-1], params[j]
		}
	}
	dst = append(dst, '?')
	for i, p := range params {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = appendPctNorm(dst, p)
	}
	return dst
}

// lessPct orders parameters by their normalised form without building it.
func lessPct(a, b []byte) bool {
	for len(a) > 0 && len(b) > 0 {
		ca, na := pctAt(a)
		cb, nb := pctAt(b)
		if ca != cb {
			return ca < cb
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) < len(b)
}

// pctAt returns a comparable code for the first (possibly %XX) character and
// its width: decoded unreserved characters compare as themselves, remaining
// escapes compare above all literal bytes so "%2F" sorts consistently.
func pctAt(b []byte) (int, int) {
	if b[0] == '%' && len(b) >= 3 && isHex(b[1]) && isHex(b[2]) {
		c := unhex(b[1])<<4 | unhex(b[2])
		if isUnreserved(c) {
			return int(c), 3
		}
		return 256 + int(c), 3
	}
	return int(b[0]), 1
}

// appendPctNorm appends b with unreserved %XX decoded and other escapes'
// hex digits upper-cased (RFC 3986 §6.2.2.1, §6.2.2.2).
func appendPctNorm(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			d := unhex(b[i+1])<<4 | unhex(b[i+2])
			if isUnreserved(d) {
				dst = append(dst, d)
			} else {
				dst = append(dst, '%', upperHex(b[i+1]), upperHex(b[i+2]))
			}
			i += 2
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// NormalizeURL returns the primary key of an absolute http(s) URL, as used
// by PurgeURL and for Location targets.
func NormalizeURL(raw string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")) {
		return "", ErrBadURL
	}
	host, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if host == "" || strings.ContainsAny(host, " \t@") {
		return "", ErrBadURL
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	var query string
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	return string(appendKey(nil, []byte(scheme), []byte(host), []byte(path), []byte(query))), nil
}

// normalizePrefix normalises the scheme and host of a URL prefix and the
// percent-encoding of its path, keeping it a prefix (no query sorting).
func normalizePrefix(raw string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")) {
		return "", ErrBadURL
	}
	host, path := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	if host == "" {
		return "", ErrBadURL
	}
	dst := []byte(strings.ToLower(scheme) + "://")
	for _, c := range stripDefaultPort([]byte(scheme), []byte(host)) {
		dst = append(dst, lower(c))
	}
	return string(appendPctNorm(dst, []byte(path))), nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
