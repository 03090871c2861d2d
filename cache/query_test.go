package cache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestQueryCache(t *testing.T, maxBytes int) (*QueryCache, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	q, err := NewQueryCache(QueryConfig{MaxBytes: maxBytes, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q, clk
}

func fillWith(n *atomic.Int64, body string) func() (*QueryResult, error) {
	return func() (*QueryResult, error) {
		n.Add(1)
		return &QueryResult{Status: 200, ETag: `"x"`, Body: []byte(body)}, nil
	}
}

func TestQueryCacheTTLSteps(t *testing.T) {
	q, clk := newTestQueryCache(t, 0)
	var fills atomic.Int64
	start := clk.t
	ctx := context.Background()
	for i, step := range []struct {
		at        time.Duration
		want      QueryOutcome
		wantFills int64
	}{
		{0, QueryMiss, 1},
		{time.Second, QueryHit, 1},
		{4999 * time.Millisecond, QueryHit, 1},
		{5 * time.Second, QueryMiss, 2}, // expired exactly at ttl
		{6 * time.Second, QueryHit, 2},
		{10 * time.Second, QueryMiss, 3},
	} {
		clk.t = start.Add(step.at)
		res, out, err := q.Get(ctx, "r\x00k", 5*time.Second, nil, fillWith(&fills, "[1]"))
		if err != nil || out != step.want || string(res.Body) != "[1]" || fills.Load() != step.wantFills {
			t.Fatalf("step %d (+%v): outcome %v fills %d err %v; want %v fills %d", i, step.at, out, fills.Load(), err, step.want, step.wantFills)
		}
	}
}

func TestQueryCacheZeroTTLStoresNothing(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	var fills atomic.Int64
	for i := 0; i < 3; i++ {
		if _, out, _ := q.Get(context.Background(), "k", 0, nil, fillWith(&fills, "x")); out != QueryMiss {
			t.Fatalf("get %d: %v, want miss", i, out)
		}
	}
	if n, _ := q.Len(); n != 0 || fills.Load() != 3 {
		t.Fatalf("stored %d, fills %d; want 0 and 3", n, fills.Load())
	}
}

func TestQueryCacheCoalesces200(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	var fills atomic.Int64
	release := make(chan struct{})
	fill := func() (*QueryResult, error) {
		fills.Add(1)
		<-release
		return &QueryResult{Status: 200, Body: []byte("[]")}, nil
	}
	const n = 200
	var wg sync.WaitGroup
	outcomes := make([]QueryOutcome, n)
	errs := make([]error, n)
	started := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			_, outcomes[i], errs[i] = q.Get(context.Background(), "k", time.Minute, nil, fill)
		}()
	}
	for i := 0; i < n; i++ {
		<-started
	}
	// Every goroutine is at most about to call Get; wait until all but the
	// leader are parked on the flight, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for waiters(q, "k") < n-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	misses := 0
	for i := range outcomes {
		if errs[i] != nil {
			t.Fatalf("get %d: %v", i, errs[i])
		}
		if outcomes[i] == QueryMiss {
			misses++
		}
	}
	if fills.Load() != 1 || misses != 1 {
		t.Fatalf("fills %d, misses %d; want 1 and 1", fills.Load(), misses)
	}
}

func coalescedWaiting(q *QueryCache, key string) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.flights[key] != nil
}

func waiters(q *QueryCache, key string) int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if f := q.flights[key]; f != nil {
		return f.waiters
	}
	return -1
}

func TestQueryCacheErrorsAreShared(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	boom := errors.New("db down")
	var calls int
	_, _, err := q.Get(context.Background(), "k", time.Minute, nil, func() (*QueryResult, error) { calls++; return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	var fills atomic.Int64
	if _, out, err := q.Get(context.Background(), "k", time.Minute, nil, fillWith(&fills, "x")); err != nil || out != QueryMiss {
		t.Fatalf("after an error: %v %v, want a fresh miss (errors are not stored)", out, err)
	}
}

func TestQueryCacheTooBigRemembered(t *testing.T) {
	q, clk := newTestQueryCache(t, 0)
	calls := 0
	big := func() (*QueryResult, error) { calls++; return nil, ErrQueryTooBig }
	for i := 0; i < 3; i++ {
		if _, _, err := q.Get(context.Background(), "k", time.Second, nil, big); !errors.Is(err, ErrQueryTooBig) {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	clk.t = clk.t.Add(time.Second)
	q.Get(context.Background(), "k", time.Second, nil, big)
	if calls != 2 {
		t.Fatalf("fills %d, want 2 (marker kept for the ttl)", calls)
	}
}

func TestQueryCachePurgeTag(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	var fills atomic.Int64
	ctx := context.Background()
	q.Get(ctx, "a", time.Minute, []string{"items"}, fillWith(&fills, "a"))
	q.Get(ctx, "b", time.Minute, []string{"items", "users"}, fillWith(&fills, "b"))
	q.Get(ctx, "c", time.Minute, []string{"users"}, fillWith(&fills, "c"))
	if n := q.PurgeTag("items"); n != 2 {
		t.Fatalf("purged %d, want 2", n)
	}
	if n := q.PurgeTag("items"); n != 0 {
		t.Fatalf("second purge dropped %d", n)
	}
	for key, want := range map[string]QueryOutcome{"a": QueryMiss, "b": QueryMiss, "c": QueryHit} {
		if _, out, _ := q.Get(ctx, key, time.Minute, nil, fillWith(&fills, key)); out != want {
			t.Errorf("%s after purge: %v, want %v", key, out, want)
		}
	}
	if n := q.PurgeAll(); n != 3 {
		t.Fatalf("purge all: %d, want 3", n)
	}
}

func TestQueryCachePurgeDuringFillNotStored(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	ctx := context.Background()
	q.Get(ctx, "k", time.Minute, []string{"items"}, func() (*QueryResult, error) {
		q.PurgeTag("items") // the data changed while the query ran
		return &QueryResult{Body: []byte("old")}, nil
	})
	var fills atomic.Int64
	if _, out, _ := q.Get(ctx, "k", time.Minute, nil, fillWith(&fills, "new")); out != QueryMiss {
		t.Fatalf("got %v: a result read before a purge was stored", out)
	}
}

func TestQueryCacheWaiterGivesUp(t *testing.T) {
	q, _ := newTestQueryCache(t, 0)
	release := make(chan struct{})
	go q.Get(context.Background(), "k", time.Minute, nil, func() (*QueryResult, error) {
		<-release
		return &QueryResult{}, nil
	})
	defer close(release)
	deadline := time.Now().Add(5 * time.Second)
	for !coalescedWaiting(q, "k") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, out, err := q.Get(ctx, "k", time.Minute, nil, nil); out != QueryCoalesced || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v %v", out, err)
	}
}

func TestQueryCacheMemoryBound(t *testing.T) {
	const maxBytes = 64 << 10
	q, _ := newTestQueryCache(t, maxBytes)
	var fills atomic.Int64
	body := strings.Repeat("x", 1000)
	for i := 0; i < 500; i++ {
		q.Get(context.Background(), "k"+string(rune('a'+i%26))+strings.Repeat("y", i/26), time.Minute, []string{"t"}, fillWith(&fills, body))
		if _, b := q.Len(); b > maxBytes {
			t.Fatalf("after %d stores: %d bytes > %d", i+1, b, maxBytes)
		}
	}
	n, _ := q.Len()
	if n == 0 || n >= 500 {
		t.Fatalf("%d entries stored; want some, bounded", n)
	}
	// The newest is kept, the oldest evicted.
	if _, out, _ := q.Get(context.Background(), "ka", time.Minute, nil, fillWith(&fills, body)); out != QueryMiss {
		t.Fatalf("oldest entry still stored")
	}
	// Oversized results are not stored.
	q.Get(context.Background(), "huge", time.Minute, nil, fillWith(&fills, strings.Repeat("z", maxBytes)))
	if _, out, _ := q.Get(context.Background(), "huge", time.Minute, nil, fillWith(&fills, "")); out != QueryMiss {
		t.Fatalf("a result bigger than an eighth of the cache was stored")
	}
	if got := q.PurgeTag("t"); got == 0 {
		t.Fatalf("tag index lost track of the entries")
	}
}

func TestQueryCacheBadConfig(t *testing.T) {
	if _, err := NewQueryCache(QueryConfig{MaxBytes: -1}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err %v", err)
	}
}
