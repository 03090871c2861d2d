package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWorkersFanOut: with workers: 2 every worker has its own cache and
// hubs; a purge or a publish sent to the supervisor's admin listener must
// reach all of them.
func TestWorkersFanOut(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, "cached body")
	})
	cfg := writeFile(t, "w.yaml", `workers: 2
rate_limit: {rate: "off"}
cache: {size: 16MiB}
routes:
  - path: /ws/{channel}
    websocket: {max_conns_per_ip: 50}
  - path: /
    upstream: `+o.URL+`
    cache: {}
`)
	p := start(t, "--config", cfg)

	// New connections spread over the workers' reuseport sockets by hash:
	// fetch on fresh connections until each worker has missed once.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 300 && o.hits.Load() < 2; i++ {
		if resp, _ := get(t, fresh, p.url("/item")); resp.StatusCode != 200 {
			t.Fatalf("GET /item: %d", resp.StatusCode)
		}
	}
	if n := o.hits.Load(); n != 2 {
		t.Fatalf("origin hits %d, want one miss per worker (2)", n)
	}
	purged := adminPost(t, "http://"+p.admin+"/cache/purge", "application/json",
		fmt.Sprintf(`{"url": %q}`, p.url("/item")))
	if purged["purged"] != 2.0 || purged["workers"] != 2.0 {
		t.Fatalf("purge through the supervisor: %v, want purged 2 from 2 workers", purged)
	}
	// Both copies are gone: each worker misses again.
	for i := 0; i < 300 && o.hits.Load() < 4; i++ {
		get(t, fresh, p.url("/item"))
	}
	if n := o.hits.Load(); n != 4 {
		t.Errorf("origin hits after purge %d, want 4", n)
	}

	// Subscribers land on either worker; a publish reaches them all.
	const subs = 8
	for i := 0; i < subs; i++ {
		mustWS(t, p.ws("/ws/news"))
	}
	var delivered float64
	for i := 0; i < 100 && delivered != subs; i++ {
		r := adminPost(t, "http://"+p.admin+"/publish/news", "text/plain", "hello")
		delivered, _ = r["delivered"].(float64)
		if delivered != subs {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if delivered != subs {
		t.Errorf("publish through the supervisor delivered %v, want %d", delivered, subs)
	}
}

func adminPost(t *testing.T, url, ctype, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: answer %q: %v", url, b, err)
	}
	return m
}
