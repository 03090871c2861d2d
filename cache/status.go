package cache

import "strconv"

// Cache-Status (RFC 9211).
//
// Values look like
//
//	edgeloop; hit; ttl=42
//	edgeloop; hit; ttl=-3; detail=stale-while-revalidate
//	edgeloop; fwd=uri-miss; fwd-status=200; stored
//	edgeloop; fwd=stale; fwd-status=304; ttl=60
//	edgeloop; fwd=request; collapsed
//
// A negative ttl marks a stale response (§2.5).

// CacheName is the cache identifier in Cache-Status (§2).
const CacheName = "edgeloop"

// Fwd is the Cache-Status fwd parameter (§2.2).
type Fwd uint8

// Forward reasons.
const (
	FwdNone     Fwd = iota
	FwdBypass       // configured or request kind (e.g. Range) not to use the cache
	FwdMethod       // the method is not cacheable
	FwdURIMiss      // no response stored for the URI
	FwdVaryMiss     // responses stored for the URI, none for these request headers
	FwdMiss         // stored responses could not be used
	FwdRequest      // the client asked for validation (no-cache, max-age, min-fresh)
	FwdStale        // the stored response was stale (or no-cache) and was validated
)

var fwdNames = [...]string{"", "bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale"}

func (f Fwd) String() string {
	if int(f) < len(fwdNames) {
		return fwdNames[f]
	}
	return "miss"
}

// Status is a Cache-Status entry under construction. The zero value
// with Fwd = FwdNone and Hit = false prints as a plain "edgeloop".
type Status struct {
	Hit       bool
	Fwd       Fwd
	FwdStatus int // status from the origin, 0 when not forwarded
	Stored    bool
	Collapsed bool // served from another request's fill
	TTL       int64
	HasTTL    bool
	Key       string // optional cache key (§2.7); keep empty on the hit path
	Detail    string // token, e.g. "stale-while-revalidate", "stale-if-error"
}

// AppendTo appends the field value to dst without allocating when dst has room.
func (s *Status) AppendTo(dst []byte) []byte {
	dst = append(dst, CacheName...)
	if s.Hit {
		dst = append(dst, "; hit"...)
	}
	if s.Fwd != FwdNone {
		dst = append(dst, "; fwd="...)
		dst = append(dst, s.Fwd.String()...)
	}
	if s.FwdStatus > 0 {
		dst = append(dst, "; fwd-status="...)
		dst = strconv.AppendInt(dst, int64(s.FwdStatus), 10)
	}
	if s.Stored {
		dst = append(dst, "; stored"...)
	}
	if s.Collapsed {
		dst = append(dst, "; collapsed"...)
	}
	if s.HasTTL {
		dst = append(dst, "; ttl="...)
		dst = strconv.AppendInt(dst, s.TTL, 10)
	}
	if s.Key != "" {
		dst = append(dst, "; key="...)
		dst = strconv.AppendQuote(dst, s.Key)
	}
	if s.Detail != "" {
		dst = append(dst, "; detail="...)
		dst = append(dst, s.Detail...)
	}
	return dst
}

// String returns the field value.
func (s *Status) String() string { return string(s.AppendTo(nil)) }
