// Package limit holds edgeloop's user-space limits, the second line behind the
// kernel guard (package bpf): a per-client token bucket for requests
// (RateLimiter) and caps on open connections, in total and per client address
// (ConnLimiter).
//
// The package knows nothing of HTTP or hertz: the engine calls Allow from its
// L7 limiter middleware and wires ConnLimiter into its listeners (Listener) or
// into hertz's OnAccept hook (Acquire, Reset, Release) for transports that
// accept connections themselves.
//
// Client addresses are keyed the same way everywhere: IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2) count as the IPv4
// address, zones are ignored, and IPv6 clients are aggregated by prefix
// (default /64, the size RFC 6177 and RFC 7421 expect one end site or host to
// own, so one host cannot rotate through its own /64 to get fresh limits).
package limit

import "errors"

// Errors returned by NewRateLimiter and ConnConfig.Validate for bad
// configuration.
var (
	ErrBadRate       = errors.New("limit: rate must be a finite number of tokens per second between 0 and 1e9")
	ErrBadBurst      = errors.New("limit: burst must not be negative")
	ErrBadMaxClients = errors.New("limit: max clients must not be negative")
	ErrBadIPv6Prefix = errors.New("limit: ipv6 prefix must be between 1 and 128")
	ErrBadOffender   = errors.New("limit: offender threshold and window must not be negative")
	ErrBadBucket     = errors.New("limit: burst divided by rate is too long to represent")
)

// Errors returned by ConnLimiter.Acquire and ConnLimiter.Track when a new
// connection would exceed a cap. They are preallocated: the accept path does
// not allocate to refuse a connection.
var (
	ErrTooManyConns      = errors.New("limit: too many open connections")
	ErrTooManyConnsPerIP = errors.New("limit: too many open connections from one client address")
)
