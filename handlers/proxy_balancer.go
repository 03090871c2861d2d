package handlers

import (
	"sync/atomic"

	"github.com/edgeloop/edgeloop/pool"
)

// backend is one upstream of a route with its passive health state.
// All fields are safe for concurrent use.
type backend struct {
	up   *pool.Upstream
	name string // host:port, the metrics label
	host []byte // Host for HostUpstream: host:port without the default :80 (RFC 9110 §7.2)
	m    backendMetrics

	fails     atomic.Int32 // consecutive failed connects
	downUntil atomic.Int64 // unix nanoseconds; skipped by pick until then
	lastFail  atomic.Int64 // unix nanoseconds of the last failed connect
}

// balancer spreads requests round robin over backends, skipping those marked
// down by passive health checks (like nginx's max_fails/fail_timeout): a
// backend whose connect failed MaxFails times in a row is skipped for
// FailTimeout. It is safe for concurrent use.
type balancer struct {
	backends    []*backend
	next        atomic.Uint32
	maxFails    int32
	failTimeout int64 // nanoseconds
}

// pick returns the next backend in round-robin order that is not down at
// now and is not skip. When all candidates are down it returns the one that
// failed least recently rather than failing without trying. It returns nil
// only when skip is the sole backend.
func (b *balancer) pick(now int64, skip *backend) *backend {
	n := uint32(len(b.backends))
	start := b.next.Add(1) - 1
	var fallback *backend
	for i := uint32(0); i < n; i++ {
		be := b.backends[(start+i)%n]
		if be == skip {
			continue
		}
		if be.downUntil.Load() <= now {
			return be
		}
		if fallback == nil || be.lastFail.Load() < fallback.lastFail.Load() {
			fallback = be
		}
	}
	return fallback
}

// anyDown reports whether a backend is marked down, that is whether pick
// needs the time: a healthy route reads no clock to choose.
func (b *balancer) anyDown() bool {
	for _, be := range b.backends {
		if be.downUntil.Load() != 0 {
			return true
		}
	}
	return false
}

// failed records a failed connect at now.
func (b *balancer) failed(be *backend, now int64) {
	be.lastFail.Store(now)
	if be.fails.Add(1) >= b.maxFails {
		be.downUntil.Store(now + b.failTimeout)
	}
}

// succeeded records a connect that worked. It writes shared memory only
// when the state changes, to keep the healthy path free of cache-line
// contention between cores.
func (b *balancer) succeeded(be *backend) {
	if be.fails.Load() != 0 {
		be.fails.Store(0)
	}
	if be.downUntil.Load() != 0 {
		be.downUntil.Store(0)
	}
}
