package handlers

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/cache"
)

func newTestCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.New(cache.Config{Size: 8 << 20, MaxObjectSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestProxyCacheConcurrentFill runs concurrent misses, hits and purges of
// a few URLs through a real hertz server (run with -race): every response
// is complete and correct, and each URL reaches the origin at most once per
// purge.
func TestProxyCacheConcurrentFill(t *testing.T) {
	var hits atomic.Int32
	body := strings.Repeat("x", 100<<10) // chunked into several cache entries
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(50 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, r.URL.Path+body)
	})
	c := newTestCache(t)
	_, addr := startProxy(t, ProxyConfig{Route: "t", Upstreams: []string{origin}, Cache: c})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := []string{"/a", "/b", "/c"}[i%3]
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				bad.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != path+body || resp.Header.Get("Cache-Status") == "" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad responses", bad.Load())
	}
	if hits.Load() != 3 {
		t.Fatalf("origin saw %d requests for 3 URLs", hits.Load())
	}
	if n, _ := c.PurgeURL("http://" + addr + "/a"); n != 1 {
		t.Fatalf("purged %d", n)
	}
	if _, b := get(t, "http://"+addr+"/a"); b != "/a"+body || hits.Load() != 4 {
		t.Fatalf("after purge: %d bytes, origin %d", len(b), hits.Load())
	}
}

// TestProxyCacheUncacheablePassesThrough: a response with Set-Cookie is
// not stored, and concurrent requests for it all reach the origin.
func TestProxyCacheUncacheablePassesThrough(t *testing.T) {
	var hits atomic.Int32
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Set-Cookie", "s=1")
		io.WriteString(w, "private-ish")
	})
	_, addr := startProxy(t, ProxyConfig{Route: "t", Upstreams: []string{origin}, Cache: newTestCache(t)})
	for i := 1; i <= 3; i++ {
		resp, b := get(t, "http://"+addr+"/p")
		if b != "private-ish" || hits.Load() != int32(i) || strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
			t.Fatalf("request %d: %q origin %d Cache-Status %q", i, b, hits.Load(), resp.Header.Get("Cache-Status"))
		}
	}
}
