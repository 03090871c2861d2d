package cache

import (
	"context"
	"sync"
	"time"
)

// Request coalescing ("collapsed forwarding", nginx proxy_cache_lock).
//
// N concurrent misses for one URL make one origin request: the first
// caller of Coalesce is the leader, fetches, stores and calls Done; the
// others Wait, then Lookup again and are served from the stored response.
// If the leader's response was not stored (uncacheable, too big, origin
// error), or it takes longer than Config.CoalesceWait, waiters fetch by
// themselves — a slow or uncacheable URL never serialises its clients.
//
// The same table, under a different key space, elects the one request that
// refreshes a stale-while-revalidate entry in the background.

// Flight is one in-progress fill. It is safe for concurrent use.
type Flight struct {
	co      *coalescer
	key     string
	done    chan struct{}
	mu      sync.Mutex // guards stored and ended
	stored  bool
	ended   bool
	waiters int
}

type coalescer struct {
	mu      sync.Mutex // guards flights and each Flight.waiters
	flights map[string]*Flight
	wait    time.Duration
	after   func(time.Duration) <-chan time.Time
}

func (co *coalescer) init(wait time.Duration, after func(time.Duration) <-chan time.Time) {
	co.flights = make(map[string]*Flight)
	co.wait, co.after = wait, after
}

// join returns the flight for key, creating it (leader) when none runs.
func (co *coalescer) join(key string) (*Flight, bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if f, ok := co.flights[key]; ok {
		f.waiters++
		return f, false
	}
	f := &Flight{co: co, key: key, done: make(chan struct{})}
	co.flights[key] = f
	return f, true
}

// tryRefresh elects a background refresher for a stale entry: it returns a
// flight when none was running for key, else nil. Not allocation-free, but
// only reached for stale entries.
func (co *coalescer) tryRefresh(vkey []byte) *Flight {
	co.mu.Lock()
	defer co.mu.Unlock()
	key := "r" + string(vkey)
	if _, ok := co.flights[key]; ok {
		return nil
	}
	f := &Flight{co: co, key: key, done: make(chan struct{})}
	co.flights[key] = f
	return f
}

// Coalesce joins the fill for res's URL. The leader (leader == true) must
// fetch and call f.Done(stored) whatever happens; other callers Wait.
func (c *Cache) Coalesce(res *Result) (f *Flight, leader bool) {
	f, leader = c.co.join("f" + string(res.primary))
	if !leader {
		coalescedWaits.Inc()
	}
	return f, leader
}

// Waiters reports how many callers joined this flight besides the leader.
func (f *Flight) Waiters() int {
	f.co.mu.Lock()
	defer f.co.mu.Unlock()
	return f.waiters
}

// Done ends the flight and wakes waiters; stored tells them whether a
// Lookup will now find the response. Calling Done twice is harmless.
func (f *Flight) Done(stored bool) {
	f.co.mu.Lock()
	if f.co.flights[f.key] == f {
		delete(f.co.flights, f.key)
	}
	f.co.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return
	}
	f.ended, f.stored = true, stored
	close(f.done)
}

// Wait blocks until the leader is Done, ctx ends, or CoalesceWait passes.
// It returns whether the leader stored the response; on ErrCoalesceTimeout
// or a false result the caller fetches by itself.
func (f *Flight) Wait(ctx context.Context) (bool, error) {
	select {
	case <-f.done:
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.stored, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-f.co.after(f.co.wait):
		coalesceTimeouts.Inc()
		return false, ErrCoalesceTimeout
	}
}
