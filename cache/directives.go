package cache

// Directives holds the parsed Cache-Control directives of a request or a
// response (RFC 9111 §5.2), or of a targeted field such as
// CDN-Cache-Control (RFC 9213). Durations are in seconds; -1 means the
// directive is absent. The zero value is not "empty": use Reset first.
//
// Parsing never allocates, so request directives can be read on the hit path.
type Directives struct {
	MaxAge               int64
	SMaxAge              int64
	MaxStale             int64 // with MaxStaleAny for a bare max-stale
	MinFresh             int64
	StaleWhileRevalidate int64 // RFC 5861
	StaleIfError         int64 // RFC 5861
	Flags                DirFlag
}

// DirFlag is a set of valueless directives.
type DirFlag uint16

// Directive flags. Qualified no-cache="field" and private="field" forms are
// treated as their unqualified form: RFC 9111 §5.2.2.4 and §5.2.2.7 allow a
// cache to do so, and a shared cache that strips fields would have to rewrite
// stored headers per field.
const (
	FlagNoStore DirFlag = 1 << iota
	FlagNoCache
	FlagPrivate
	FlagPublic
	FlagMustRevalidate
	FlagProxyRevalidate
	FlagOnlyIfCached
	FlagMaxStaleAny
	FlagImmutable
	FlagNoTransform
	FlagInvalid // a value could not be parsed (for targeted fields: ignore the field)
)

// maxDelta caps delta-seconds at 2^31 as RFC 9111 §1.2.2 asks.
const maxDelta = 1 << 31

// Reset clears d to "no directives".
func (d *Directives) Reset() {
	*d = Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
}

// Has reports whether all of f are set.
func (d *Directives) Has(f DirFlag) bool { return d.Flags&f == f }

// Parse adds the directives in one Cache-Control field value to d. It may be
// called once per field line; for repeated directives the first occurrence
// wins (RFC 9111 §4.2.1). Unknown directives are ignored (§5.2.3). An invalid
// delta-seconds value makes the directive 0, so that freshness derived from
// it is "stale" as §1.2.2 recommends, and sets FlagInvalid.
func (d *Directives) Parse(v []byte) {
	for i := 0; i < len(v); {
		// name
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		start := i
		for i < len(v) && v[i] != '=' && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != ';' {
			i++
		}
		name := v[start:i]
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		var val []byte
		hasVal := false
		if i < len(v) && v[i] == '=' {
			hasVal = true
			i++
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
			if i < len(v) && v[i] == '"' {
				i++
				vs := i
				for i < len(v) && v[i] != '"' {
					if v[i] == '\\' {
						i++
					}
					i++
				}
				if i > len(v) {
					i = len(v)
				}
				val = v[vs:i]
				if i < len(v) {
					i++ // closing quote
				} else {
					d.Flags |= FlagInvalid
				}
			} else {
				vs := i
				for i < len(v) && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != ';' {
					i++
				}
				val = v[vs:i]
			}
		}
		// skip parameters (structured-field dictionaries in targeted fields) and junk to the next comma
		for i < len(v) && v[i] != ',' {
			i++
		}
		if len(name) > 0 {
			d.set(name, val, hasVal)
		}
	}
}

func (d *Directives) set(name, val []byte, hasVal bool) {
	switch {
	case eqFold(name, "max-age"):
		d.delta(&d.MaxAge, val, hasVal)
	case eqFold(name, "s-maxage"):
		d.delta(&d.SMaxAge, val, hasVal)
	case eqFold(name, "max-stale"):
		if !hasVal {
			d.Flags |= FlagMaxStaleAny
			return
		}
		d.delta(&d.MaxStale, val, hasVal)
	case eqFold(name, "min-fresh"):
		d.delta(&d.MinFresh, val, hasVal)
	case eqFold(name, "stale-while-revalidate"):
		d.delta(&d.StaleWhileRevalidate, val, hasVal)
	case eqFold(name, "stale-if-error"):
		d.delta(&d.StaleIfError, val, hasVal)
	case eqFold(name, "no-store"):
		d.Flags |= FlagNoStore
	case eqFold(name, "no-cache"):
		d.Flags |= FlagNoCache
	case eqFold(name, "private"):
		d.Flags |= FlagPrivate
	case eqFold(name, "public"):
		d.Flags |= FlagPublic
	case eqFold(name, "must-revalidate"):
		d.Flags |= FlagMustRevalidate
	case eqFold(name, "proxy-revalidate"):
		d.Flags |= FlagProxyRevalidate
	case eqFold(name, "only-if-cached"):
		d.Flags |= FlagOnlyIfCached
	case eqFold(name, "immutable"):
		d.Flags |= FlagImmutable
	case eqFold(name, "no-transform"):
		d.Flags |= FlagNoTransform
	}
}

// delta stores a delta-seconds value into *dst unless already set (first wins).
func (d *Directives) delta(dst *int64, val []byte, hasVal bool) {
	if *dst >= 0 {
		return
	}
	n, ok := parseDelta(val)
	if !hasVal || !ok {
		d.Flags |= FlagInvalid
		n = 0
	}
	*dst = n
}

// parseDelta parses delta-seconds (RFC 9111 §1.2.2), capping at 2^31.
func parseDelta(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return n, true
}

// eqFold reports whether b equals the lower-case ASCII string s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v contains token t
// (case-insensitive), as used for Pragma: no-cache and Connection.
func hasToken(v []byte, t string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if eqFold(trimOWS(v[:i]), t) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
