package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// defaultQueryMaxBytes is the memory of a zero QueryConfig.
const defaultQueryMaxBytes = 64 << 20

// queryEntryOverhead approximates the bookkeeping bytes of one stored
// result (map slot, list element, entry struct) for the memory bound.
const queryEntryOverhead = 160

// Errors returned by the query-result cache.
var (
	// ErrQueryTooBig is returned by a fill whose result is too large to
	// store; QueryCache.Get remembers it for the route's TTL and returns it
	// at once to later callers, who stream the result themselves.
	ErrQueryTooBig = errors.New("cache: query result too big to cache")
	// ErrQueryFillPanic is returned to coalesced waiters when the fill
	// panicked.
	ErrQueryFillPanic = errors.New("cache: query fill panicked")
)

// QueryConfig configures a QueryCache. Its zero value is usable.
type QueryConfig struct {
	// MaxBytes bounds the stored results (bodies, keys and overhead); the
	// oldest are evicted first. If zero, 64 MiB.
	MaxBytes int
	// Now is the clock. If nil, time.Now. // testing
	Now func() time.Time
}

// QueryResult is one stored answer of a query route: the encoded body,
// its validator and its HTTP status. Stored results are shared by every
// caller and must not be modified.
type QueryResult struct {
	Status int
	ETag   string
	Body   []byte
}

// QueryOutcome says how QueryCache.Get answered.
type QueryOutcome uint8

// Outcomes of QueryCache.Get.
const (
	QueryMiss      QueryOutcome = iota // this caller ran the fill
	QueryHit                           // served from the cache
	QueryCoalesced                     // waited for another caller's fill
)

var queryOutcomeNames = [...]string{"miss", "hit", "coalesced"}

func (o QueryOutcome) String() string { return queryOutcomeNames[o] }

// QueryCache stores query results by key for a per-call TTL, coalesces
// concurrent fills of one key into one (N identical concurrent queries,
// one database round trip), and drops results by tag. It is safe for
// concurrent use; lookups of stored results take a read lock only.
type QueryCache struct {
	maxBytes int
	now      func() time.Time

	mu      sync.RWMutex // guards the fields below
	entries map[string]*queryEntry
	order   list.List // of *queryEntry, oldest first (FIFO eviction)
	tags    map[string]map[string]struct{}
	flights map[string]*queryFlight
	bytes   int
	epoch   uint64 // bumped by every purge; fills started before one are not stored
}

type queryEntry struct {
	key     string
	res     *QueryResult // nil: a too-big marker
	expires time.Time
	tags    []string
	size    int
	elem    *list.Element
}

type queryFlight struct {
	waiters int // under QueryCache.mu
	done    chan struct{}
	res     *QueryResult
	err     error
}

// NewQueryCache returns an empty cache.
func NewQueryCache(cfg QueryConfig) (*QueryCache, error) {
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("%w: negative query cache size", ErrBadConfig)
	}
	q := &QueryCache{maxBytes: cfg.MaxBytes, now: cfg.Now,
		entries: map[string]*queryEntry{}, tags: map[string]map[string]struct{}{},
		flights: map[string]*queryFlight{}}
	if q.maxBytes == 0 {
		q.maxBytes = defaultQueryMaxBytes
	}
	if q.now == nil {
		q.now = time.Now
	}
	registerQuery(q)
	return q, nil
}

// Close drops every result and stops reporting metrics for q.
func (q *QueryCache) Close() {
	q.PurgeAll()
	unregisterQuery(q)
}

// Get returns the stored result for key, or runs fill once for all the
// concurrent callers of the same key and stores its result for ttl with
// tags. A fill error is returned to the leader and to every waiter and is
// not stored, except ErrQueryTooBig, remembered for ttl. Waiters give up
// when ctx ends. A ttl of zero or less coalesces but stores nothing.
func (q *QueryCache) Get(ctx context.Context, key string, ttl time.Duration, tags []string,
	fill func() (*QueryResult, error)) (*QueryResult, QueryOutcome, error) {
	now := q.now()
	q.mu.RLock()
	e := q.entries[key]
	if e != nil && now.Before(e.expires) {
		q.mu.RUnlock()
		countQuery(QueryHit)
		if e.res == nil {
			return nil, QueryHit, ErrQueryTooBig
		}
		return e.res, QueryHit, nil
	}
	q.mu.RUnlock()

	q.mu.Lock()
	if e := q.entries[key]; e != nil {
		if now.Before(e.expires) { // stored meanwhile
			q.mu.Unlock()
			countQuery(QueryHit)
			if e.res == nil {
				return nil, QueryHit, ErrQueryTooBig
			}
			return e.res, QueryHit, nil
		}
		q.removeLocked(e)
	}
	if f := q.flights[key]; f != nil {
		f.waiters++
		q.mu.Unlock()
		countQuery(QueryCoalesced)
		select {
		case <-f.done:
			return f.res, QueryCoalesced, f.err
		case <-ctx.Done():
			return nil, QueryCoalesced, ctx.Err()
		}
	}
	f := &queryFlight{done: make(chan struct{})}
	q.flights[key] = f
	epoch := q.epoch
	q.mu.Unlock()
	countQuery(QueryMiss)

	f.err = ErrQueryFillPanic
	defer func() {
		q.mu.Lock()
		delete(q.flights, key)
		store := ttl > 0 && q.epoch == epoch && (f.err == nil || errors.Is(f.err, ErrQueryTooBig))
		if store {
			q.storeLocked(key, f.res, q.now().Add(ttl), tags)
		}
		q.mu.Unlock()
		close(f.done)
	}()
	f.res, f.err = fill()
	return f.res, QueryMiss, f.err
}

func (q *QueryCache) storeLocked(key string, res *QueryResult, expires time.Time, tags []string) {
	size := len(key) + queryEntryOverhead
	if res != nil {
		size += len(res.Body) + len(res.ETag)
	}
	if size > q.maxBytes/8 {
		return // one result may not crowd out the rest
	}
	for q.bytes+size > q.maxBytes && q.order.Len() > 0 {
		q.removeLocked(q.order.Front().Value.(*queryEntry))
		countQueryEviction()
	}
	e := &queryEntry{key: key, res: res, expires: expires, tags: tags, size: size}
	e.elem = q.order.PushBack(e)
	q.entries[key] = e
	q.bytes += size
	for _, t := range tags {
		m := q.tags[t]
		if m == nil {
			m = map[string]struct{}{}
			q.tags[t] = m
		}
		m[key] = struct{}{}
	}
}

func (q *QueryCache) removeLocked(e *queryEntry) {
	delete(q.entries, e.key)
	q.order.Remove(e.elem)
	q.bytes -= e.size
	for _, t := range e.tags {
		if m := q.tags[t]; m != nil {
			delete(m, e.key)
			if len(m) == 0 {
				delete(q.tags, t)
			}
		}
	}
}

// PurgeTag drops every result stored with tag, and keeps fills that are
// running now from storing theirs (they may have read the old data). It
// returns the number of results dropped.
func (q *QueryCache) PurgeTag(tag string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.epoch++
	n := 0
	for key := range q.tags[tag] {
		if e := q.entries[key]; e != nil {
			q.removeLocked(e)
			n++
		}
	}
	countQueryPurge(n)
	return n
}

// PurgeAll drops every stored result (e.g. after invalidations may have
// been missed) and returns how many there were.
func (q *QueryCache) PurgeAll() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.epoch++
	n := len(q.entries)
	clear(q.entries)
	clear(q.tags)
	q.order.Init()
	q.bytes = 0
	countQueryPurge(n)
	return n
}

// Len returns the number of stored results (expired ones included until
// they are looked up or evicted) and their accounted bytes.
func (q *QueryCache) Len() (entries, bytes int) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return len(q.entries), q.bytes
}
