package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"
)

// flightWaiters returns the waiters of the running fill for key, or -1.
func flightWaiters(c *Cache, key []byte) int {
	c.co.mu.Lock()
	f := c.co.flights["f"+string(key)]
	c.co.mu.Unlock()
	if f == nil {
		return -1
	}
	return f.Waiters()
}

func TestCoalesceColdKey(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	defer origin.Close()

	c, clk := newTestCache(t, Config{})
	const n = 200
	url := "http://example.com/cold"
	var wg sync.WaitGroup
	bodies := make([]string, n)
	collapsed := make([]bool, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := mkReq("GET", url)
			res := NewResult()
			for attempt := 0; attempt < 2; attempt++ {
				if out := c.Lookup(req, nil, res); out == Hit {
					resp := protocol.AcquireResponse()
					if err := c.Serve(res, resp); err != nil {
						errs <- err
						return
					}
					bodies[i] = string(resp.Body())
					return
				}
				f, leader := c.Coalesce(res)
				if !leader {
					stored, err := f.Wait(context.Background())
					if err != nil || !stored {
						errs <- errors.New("waiter not served from the fill")
						return
					}
					collapsed[i] = true
					continue
				}
				reqTime := clk.Now()
				r, err := http.Get(origin.URL)
				if err != nil {
					f.Done(false)
					errs <- err
					return
				}
				body, _ := io.ReadAll(r.Body)
				r.Body.Close()
				resp := mkResp(r.StatusCode, string(body), "Cache-Control", r.Header.Get("Cache-Control"))
				err = c.Store(res, req, resp, reqTime, clk.Now())
				f.Done(err == nil)
				bodies[i] = string(body)
				return
			}
			errs <- errors.New("not served after the fill")
		}(i)
	}
	// Hold the origin until every other request has joined the fill.
	key := []byte("http://example.com/cold")
	for i := 0; i < 10000 && flightWaiters(c, key) != n-1; i++ {
		time.Sleep(time.Millisecond)
	}
	if w := flightWaiters(c, key); w != n-1 {
		t.Fatalf("waiters = %d, want %d", w, n-1)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := hits.Load(); h != 1 {
		t.Fatalf("origin requests = %d, want 1", h)
	}
	nc := 0
	for i, b := range bodies {
		if b != "from origin" {
			t.Fatalf("request %d got %q", i, b)
		}
		if collapsed[i] {
			nc++
		}
	}
	if nc != n-1 {
		t.Fatalf("collapsed = %d, want %d", nc, n-1)
	}
}

func TestCoalesceWaitBounded(t *testing.T) {
	timer := make(chan time.Time)
	var calls atomic.Int32
	var asked atomic.Value
	c, _ := newTestCache(t, Config{CoalesceWait: 3 * time.Second, After: func(d time.Duration) <-chan time.Time {
		asked.Store(d)
		if calls.Add(1) == 1 {
			return timer
		}
		return nil // later waits never time out
	}})
	res := NewResult()
	c.Lookup(mkReq("GET", "http://example.com/slow"), nil, res)
	leaderFlight, leader := c.Coalesce(res)
	if !leader {
		t.Fatal("first caller not leader")
	}
	res2 := NewResult()
	c.Lookup(mkReq("GET", "http://example.com/slow"), nil, res2)
	f, leader := c.Coalesce(res2)
	if leader || f != leaderFlight {
		t.Fatal("second caller did not join")
	}
	done := make(chan error)
	go func() { _, err := f.Wait(context.Background()); done <- err }()
	timer <- time.Time{} // CoalesceWait elapses while the leader is still fetching
	if err := <-done; !errors.Is(err, ErrCoalesceTimeout) {
		t.Fatalf("wait: %v", err)
	}
	if d, _ := asked.Load().(time.Duration); d != 3*time.Second {
		t.Fatalf("timer asked for %v", d)
	}
	// the leader's uncacheable result releases later waiters to fetch themselves
	f3, _ := c.Coalesce(res2)
	leaderFlight.Done(false)
	if stored, err := f3.Wait(context.Background()); stored || err != nil {
		t.Fatalf("after Done(false): %v %v", stored, err)
	}
	// a new fill can start once the flight ended
	if _, leader := c.Coalesce(res2); !leader {
		t.Fatal("no new leader after Done")
	}
}

func TestStaleWhileRevalidateOneRefresher(t *testing.T) {
	c, clk := newTestCache(t, Config{})
	url := "http://example.com/swr"
	req := mkReq("GET", url)
	if err := fetchStore(t, c, clk, req, mkResp(200, "old", "Cache-Control", "max-age=10, stale-while-revalidate=60")); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	var refreshers []*Result
	for i := 0; i < 20; i++ {
		out, resp, res := serve(t, c, req)
		if out != Stale || string(resp.Body()) != "old" {
			t.Fatalf("lookup %d: %v %q", i, out, resp.Body())
		}
		if cs := string(resp.Header.Peek("Cache-Status")); cs != "edgeloop; hit; ttl=-20; detail=stale-while-revalidate" {
			t.Fatalf("Cache-Status %q", cs)
		}
		if res.Refresher() {
			refreshers = append(refreshers, res)
		}
	}
	if len(refreshers) != 1 {
		t.Fatalf("refreshers = %d, want 1", len(refreshers))
	}
	// the refresher stores the new response and ends its flight
	r := refreshers[0]
	if err := c.Store(r, req, mkResp(200, "new", "Cache-Control", "max-age=10, stale-while-revalidate=60"), clk.Now(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	r.Done(true)
	if out, resp, _ := serve(t, c, req); out != Hit || string(resp.Body()) != "new" {
		t.Fatalf("after refresh: %v %q", out, resp.Body())
	}
	// past the window: revalidate, no stale serving
	clk.Add(71 * time.Second)
	if out, _, _ := serve(t, c, req); out != Miss && out != Revalidate {
		t.Fatalf("past swr window: %v", out)
	}
}

func TestStaleIfErrorGrace(t *testing.T) {
	c, clk := newTestCache(t, Config{StaleIfError: time.Minute})
	req := mkReq("GET", "http://example.com/sie")
	fetchStore(t, c, clk, req, mkResp(200, "keep", "Cache-Control", "max-age=10", "ETag", `"k"`))
	mr := mkReq("GET", "http://example.com/mr")
	fetchStore(t, c, clk, mr, mkResp(200, "strict", "Cache-Control", "max-age=10, must-revalidate", "ETag", `"k"`))
	clk.Add(40 * time.Second)
	res := NewResult()
	if out := c.Lookup(req, nil, res); out != Revalidate || !res.StaleOnError() {
		t.Fatalf("within grace: %v %v", out, res.StaleOnError())
	}
	// origin down: the proxy serves the stale response
	res.Status().Detail = "stale-if-error"
	resp := protocol.AcquireResponse()
	if err := c.Serve(res, resp); err != nil || string(resp.Body()) != "keep" {
		t.Fatalf("serve stale: %v %q", err, resp.Body())
	}
	if out := c.Lookup(req, &Route{StaleIfError: -1}, res); out != Revalidate || res.StaleOnError() {
		t.Fatalf("route without grace: %v", res.StaleOnError())
	}
	if out := c.Lookup(mr, nil, res); out != Revalidate || res.StaleOnError() {
		t.Fatalf("must-revalidate: %v %v", out, res.StaleOnError())
	}
	clk.Add(31 * time.Second)
	if c.Lookup(req, nil, res); res.StaleOnError() {
		t.Fatal("past grace")
	}
}
