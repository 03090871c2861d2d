package cache

import (
	"encoding/binary"
	"sort"
	"strings"
	"unsafe"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// Variants (RFC 9111 §4.1).
//
// Per URL the cache keeps a small index entry (key 'i'+primary) holding a
// generation, the normalised Vary field names, a bit set of the content
// codings stored, and the list of stored variants (bounded, for purge).
// Each variant is stored under
//
//	'e' + primary + 0x00 + generation + coding + for each Vary name: value
//
// The content coding is always a dimension of the variant key, whether or
// not the origin sends Vary: Accept-Encoding: a request's Accept-Encoding is
// reduced to the codings it accepts, and the cache tries the stored codings
// in its preference order (br, zstd, gzip, deflate, identity). So
// "gzip, deflate, br" and "br;q=1, gzip" hit the same br variant, the
// identity variant serves clients accepting nothing else, and br/gzip
// variants made once by edgeloop (StoreEncoded) serve every later client
// without compression CPU. Other Vary values are normalised by trimming
// whitespace around ',' and ';' (and lower-casing Accept-* values) before
// comparison, as §4.1 allows.
//
// Purging a URL deletes its index entry; a later store starts a new
// generation, so no variant of the old generation can be selected again even
// if it was not in the bounded list.

// Content codings known to the cache. Order is preference order.
const (
	codingBr uint8 = iota
	codingZstd
	codingGzip
	codingDeflate
	codingIdentity
	numCodings
	codingUnknown = 255
)

var codingNames = [numCodings]string{"br", "zstd", "gzip", "deflate", "identity"}

// maxVariants bounds the per-URL variant list (not the number of variants).
const maxVariants = 32

// codingOf maps a Content-Encoding value to a coding.
func codingOf(ce []byte) uint8 {
	ce = trimOWS(ce)
	if len(ce) == 0 || eqFold(ce, "identity") {
		return codingIdentity
	}
	for i := uint8(0); i < codingIdentity; i++ {
		if eqFold(ce, codingNames[i]) {
			return i
		}
	}
	if eqFold(ce, "x-gzip") {
		return codingGzip
	}
	return codingUnknown
}

// CodingName returns the Content-Encoding token for a coding index used by
// StoreEncoded ("br", "gzip", ...).
func codingByName(name string) uint8 { return codingOf([]byte(name)) }

// acceptedCodings parses Accept-Encoding (RFC 9110 §12.5.3) into a bit set
// of acceptable codings. Without the field every coding is acceptable, but
// the cache still prefers identity for such clients (see lookup order).
func acceptedCodings(ae []byte) (mask uint8, present bool) {
	if len(trimOWS(ae)) == 0 {
		return 1 << codingIdentity, false
	}
	var listed, ok uint8
	star, starOK := false, false
	for len(ae) > 0 {
		i := indexByte(ae, ',')
		if i < 0 {
			i = len(ae)
		}
		item := ae[:i]
		name, q := item, true
		if j := indexByte(item, ';'); j >= 0 {
			name = item[:j]
			q = qNonZero(item[j+1:])
		}
		name = trimOWS(name)
		if len(name) == 1 && name[0] == '*' {
			star, starOK = true, q
		} else if c := codingOf(name); c != codingUnknown && !(c == codingIdentity && len(name) == 0) {
			listed |= 1 << c
			if q {
				ok |= 1 << c
			}
		}
		if i == len(ae) {
			break
		}
		ae = ae[i+1:]
	}
	if star && starOK {
		ok |= ^listed & (1<<numCodings - 1)
	}
	// identity is acceptable unless excluded explicitly or by "*;q=0"
	if listed&(1<<codingIdentity) == 0 && !(star && !starOK) {
		ok |= 1 << codingIdentity
	}
	return ok, true
}

// qNonZero reports whether the parameters hold no "q=0" (q=0, q=0.0, q=0.000).
func qNonZero(params []byte) bool {
	p := trimOWS(params)
	if len(p) < 3 || lower(p[0]) != 'q' || p[1] != '=' {
		return true
	}
	for _, c := range p[2:] {
		if c != '0' && c != '.' && c != ' ' {
			return true
		}
	}
	return false
}

// varyNames normalises the Vary field lines of a response: lower-case,
// deduplicated, sorted, without accept-encoding (always a dimension).
// star reports "Vary: *", which never matches (§4.1) and is not stored.
func varyNames(lines [][]byte) (names []string, star bool) {
	for _, l := range lines {
		for _, f := range strings.Split(string(l), ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			switch f {
			case "":
			case "*":
				return nil, true
			case "accept-encoding":
			default:
				names = append(names, f)
			}
		}
	}
	sort.Strings(names)
	out := names[:0]
	for i, n := range names {
		if i == 0 || n != names[i-1] {
			out = append(out, n)
		}
	}
	return out, false
}

// appendVaryValues appends, for each name, the request's normalised value
// (u16 length, 0xFFFF when absent). names is the encoded list from the index.
func appendVaryValues(dst []byte, req *protocol.RequestHeader, names []byte) []byte {
	for len(names) > 0 {
		n := int(names[0])
		if 1+n > len(names) {
			break
		}
		name := names[1 : 1+n]
		names = names[1+n:]
		v := req.Peek(unsafe.String(unsafe.SliceData(name), len(name)))
		if v == nil {
			dst = append(dst, 0xFF, 0xFF)
			continue
		}
		lenAt := len(dst)
		dst = append(dst, 0, 0)
		dst = appendNormValue(dst, v, len(name) > 6 && string(name[:6]) == "accept")
		l := len(dst) - lenAt - 2
		if l >= 0xFFFF {
			l = 0xFFFE
			dst = dst[:lenAt+2+l]
		}
		binary.LittleEndian.PutUint16(dst[lenAt:], uint16(l))
	}
	return dst
}

// appendNormValue trims OWS at the ends and around ',' and ';'.
func appendNormValue(dst, v []byte, fold bool) []byte {
	v = trimOWS(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' {
			j := i
			for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
				j++
			}
			if j < len(v) && (v[j] == ',' || v[j] == ';') || len(dst) > 0 && (dst[len(dst)-1] == ',' || dst[len(dst)-1] == ';') {
				i = j - 1
				continue
			}
		}
		if fold {
			c = lower(c)
		}
		dst = append(dst, c)
	}
	return dst
}

// index is the decoded per-URL variant index.
//
//	gen u64 | codings u8 | names-len u16 | names (u8 len + bytes)* | n u8 | (u16 len + suffix)*
type index struct {
	gen      uint64
	codings  uint8
	names    []byte // encoded names, as appendVaryValues expects
	variants [][]byte
}

func decodeIndex(b []byte, ix *index, withVariants bool) bool {
	if len(b) < 12 {
		return false
	}
	ix.gen = binary.LittleEndian.Uint64(b)
	ix.codings = b[8]
	nl := int(binary.LittleEndian.Uint16(b[9:]))
	if 11+nl+1 > len(b) {
		return false
	}
	ix.names = b[11 : 11+nl]
	if !withVariants {
		return true
	}
	rest := b[11+nl:]
	n := int(rest[0])
	rest = rest[1:]
	ix.variants = ix.variants[:0]
	for i := 0; i < n; i++ {
		if len(rest) < 2 {
			return false
		}
		l := int(binary.LittleEndian.Uint16(rest))
		if 2+l > len(rest) {
			return false
		}
		ix.variants = append(ix.variants, rest[2:2+l])
		rest = rest[2+l:]
	}
	return true
}

func encodeNames(names []string) []byte {
	var b []byte
	for _, n := range names {
		if len(n) > 255 {
			n = n[:255]
		}
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b
}

func encodeIndex(ix *index) []byte {
	b := make([]byte, 11, 64)
	binary.LittleEndian.PutUint64(b, ix.gen)
	b[8] = ix.codings
	binary.LittleEndian.PutUint16(b[9:], uint16(len(ix.names)))
	b = append(b, ix.names...)
	b = append(b, byte(len(ix.variants)))
	for _, v := range ix.variants {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

// addVariant returns the updated index value for a store of variant suffix
// with the given names, and the generation to key the variant with.
// newGen is called only when a new generation is needed.
func addVariant(old []byte, found bool, names []byte, suffix []byte, coding uint8, newGen func() uint64) ([]byte, uint64) {
	var ix index
	if !found || !decodeIndex(old, &ix, true) || string(ix.names) != string(names) {
		ix = index{gen: newGen(), names: names}
	}
	ix.codings |= 1 << coding
	for _, v := range ix.variants {
		if string(v) == string(suffix) {
			return encodeIndex(&ix), ix.gen
		}
	}
	if len(ix.variants) >= maxVariants {
		ix.variants = ix.variants[1:]
	}
	ix.variants = append(ix.variants, suffix)
	return encodeIndex(&ix), ix.gen
}

// appendEntryKey appends 'e' + primary + 0 + gen + suffix.
func appendEntryKey(dst, primary []byte, gen uint64, suffix []byte) []byte {
	dst = append(dst, 'e')
	dst = append(dst, primary...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, gen)
	return append(dst, suffix...)
}
