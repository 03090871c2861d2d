package cache

import "errors"

// Errors returned by the cache. They are preallocated so the hit path never
// builds an error value.
var (
	// ErrNotStorable is returned by Store and BeginFill when RFC 9111 §3 (or
	// edgeloop's policy, e.g. Set-Cookie) forbids storing the response. The
	// response is still served to the client; it is just not cached.
	ErrNotStorable = errors.New("cache: response not storable")
	// ErrTooBig is returned when a body exceeds Config.MaxObjectSize, or when
	// its headers alone do not fit one freecache entry.
	ErrTooBig = errors.New("cache: object larger than max object size")
	// ErrAbandoned is returned by Fill.Commit after the fill was abandoned
	// (body over MaxObjectSize, Abort, or a purge raced with the fill).
	ErrAbandoned = errors.New("cache: fill abandoned")
	// ErrNoEntry is returned by Serve, Refresh and StoreEncoded when the
	// entry a Result refers to is gone (evicted, purged or overwritten since
	// Lookup). The caller fetches from the origin as on a miss; any partial
	// body Serve appended has been reset.
	ErrNoEntry = errors.New("cache: entry no longer stored")
	// ErrValidatorMismatch is returned by Refresh when a 304's strong ETag
	// does not match the stored one (RFC 9111 §4.3.4): the stored response
	// must not be updated or served; fetch unconditionally.
	ErrValidatorMismatch = errors.New("cache: 304 validator does not match stored response")
	// ErrCoalesceTimeout is returned by Flight.Wait after Config.CoalesceWait:
	// the waiter fetches from the origin by itself.
	ErrCoalesceTimeout = errors.New("cache: coalesced fill not ready in time")
	// ErrIndexFull is returned when the URL index (used for prefix and
	// surrogate-key purge) is full of live URLs: storing more would make
	// them unpurgeable, so the response passes uncached.
	ErrIndexFull = errors.New("cache: url index full")
	// ErrBadURL is returned by purge functions given a URL that does not
	// parse as scheme://host/path.
	ErrBadURL = errors.New("cache: bad url")
	// ErrBadConfig is wrapped by New for invalid configuration values.
	ErrBadConfig = errors.New("cache: bad config")
	// ErrCorrupt is returned when a stored entry cannot be decoded; the
	// entry is treated as absent.
	ErrCorrupt = errors.New("cache: corrupt entry")
	// ErrClosed is returned by operations on a closed Cache.
	ErrClosed = errors.New("cache: closed")
)
