package cache

import "github.com/cloudwego/hertz/pkg/protocol"

// Accessors a proxy needs beyond the outcome switch.

// Found reports whether Lookup found a stored response (Hit, NotModified,
// Stale, Revalidate).
func (r *Result) Found() bool { return r.found }

// Identity reports whether the stored response found by Lookup has no
// content coding: a proxy may code it once for a client and keep the coded
// bytes with StoreEncoded.
func (r *Result) Identity() bool { return r.found && r.m.coding == codingIdentity }

// Head reports whether the looked-up request was a HEAD.
func (r *Result) Head() bool { return r.head }

// Ranged reports whether the looked-up request has a Range header. Such a
// request is served from a fresh (or stale-while-revalidate) stored
// response, which the caller cuts to the range (RFC 9110 §14), and is
// otherwise passed to the origin as it is (Pass), its answer not stored.
func (r *Result) Ranged() bool { return r.ranged }

// TakeRefresh hands this request's background refresh (Stale with
// Refresher) to the caller, which must call Done on the returned Flight
// when the refresh ends; it returns nil when r is not the refresher. After
// it, r no longer owns the refresh, so r may be released at once.
func (r *Result) TakeRefresh() *Flight {
	f := r.flight
	r.flight = nil
	return f
}

// ClientNotModified evaluates the client's If-None-Match (weak comparison)
// or If-Modified-Since against the stored response found by Lookup (RFC
// 9110 §13.2.2), e.g. after a revalidation refreshed it.
func (c *Cache) ClientNotModified(h *protocol.RequestHeader, res *Result) bool {
	return res.found && c.clientNotModified(h, res)
}
