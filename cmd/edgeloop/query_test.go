package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryPG returns the shared test database, skipping (or failing under
// EDGELOOP_REQUIRE_PG=1) when there is none.
func queryPG(t *testing.T) string {
	t.Helper()
	u := os.Getenv("EDGELOOP_TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("EDGELOOP_REQUIRE_PG") == "1" {
			t.Fatal("EDGELOOP_TEST_DATABASE_URL is not set and EDGELOOP_REQUIRE_PG=1")
		}
		t.Skip("no PostgreSQL: set EDGELOOP_TEST_DATABASE_URL (make test does)")
	}
	return u
}

var querySchemas atomic.Int64

// querySchema creates a schema for the test in the database at base, runs
// setup in it and returns a URL whose sessions use it.
func querySchema(t *testing.T, base, setup string) (string, *pgx.Conn) {
	t.Helper()
	name := fmt.Sprintf("e2e_%d_%d", os.Getpid(), querySchemas.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name+"; SET search_path="+name+"; "+setup); err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
		conn.Close(ctx)
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name, conn
}

const queryE2ESetup = `
CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'apple'), (2, 'pear');
CREATE TABLE calls (n int8); INSERT INTO calls VALUES (0);
CREATE FUNCTION counted_items() RETURNS SETOF items VOLATILE LANGUAGE sql AS
  'UPDATE calls SET n = n + 1; SELECT pg_sleep(0.3); SELECT * FROM items ORDER BY id';`

// queryConfig is a config with the query routes the tests use; the rate
// limit is off so concurrent requests from one address all pass.
func queryConfig(dbURL, extra string) string {
	return fmt.Sprintf(`rate_limit: {rate: "off"}
database:
  url: %q
  min_conns: 2
  acquire_timeout: 1s
routes:
  - path: /api/items/{id}
    sql: SELECT id, name FROM items WHERE id = $1
    params: {id: int}
    single: true
  - path: /api/items
    sql: SELECT id, name FROM items ORDER BY id
    max_rows: 10
  - path: /api/cached
    sql: SELECT * FROM counted_items()
    cache: {ttl: 300s, tags: [items]}
  - path: /api/broken
    sql: SELECT * FROM no_such_table
  - path: /api/big
    sql: SELECT g AS n, repeat('x', 200) AS pad FROM generate_series(1, 20000) g
  - path: /api/bigcached
    sql: SELECT g AS n, repeat('x', 200) AS pad FROM generate_series(1, 20000) g
    cache: {ttl: 60s}
%s  - path: /
    root: embedded
`, dbURL, extra)
}

func startQuery(t *testing.T, cfg string) *proc {
	t.Helper()
	return start(t, "--config", writeFile(t, "edgeloop.yaml", cfg))
}

func wantGet(t *testing.T, c *http.Client, u string, code int, body string, hdr ...string) *http.Response {
	t.Helper()
	resp, got := get(t, c, u, hdr...)
	if resp.StatusCode != code || (body != "" && got != body) {
		t.Fatalf("GET %s: %d %s; want %d %s", u, resp.StatusCode, got, code, body)
	}
	return resp
}

func TestQueryRoutesEndToEnd(t *testing.T) {
	dbURL, _ := querySchema(t, queryPG(t), queryE2ESetup)
	p := startQuery(t, queryConfig(dbURL, ""))
	c := client()
	wantGet(t, c, p.url("/api/items/1"), 200, `{"id":1,"name":"apple"}`)
	wantGet(t, c, p.url("/api/items/99"), 404, `{"error":"not found"}`)
	wantGet(t, c, p.url("/api/items/abc"), 400, `{"error":"bad parameter id: want an integer"}`)
	wantGet(t, c, p.url("/api/broken"), 500, `{"error":"query failed","code":"42P01"}`)
	resp := wantGet(t, c, p.url("/api/items"), 200, `[{"id":1,"name":"apple"},{"id":2,"name":"pear"}]`)
	etag := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Type") != "application/json" || etag == "" {
		t.Fatalf("headers %v", resp.Header)
	}
	wantGet(t, c, p.url("/api/items"), 304, "", "If-None-Match", etag)
	// Results over 1 MiB stream (chunked, no ETag), cached route or not.
	for _, path := range []string{"/api/big", "/api/bigcached", "/api/bigcached"} {
		resp, body := get(t, c, p.url(path))
		var rows []struct{ N int }
		if err := json.Unmarshal([]byte(body), &rows); err != nil || resp.StatusCode != 200 || len(rows) != 20000 ||
			rows[19999].N != 20000 || resp.ContentLength != -1 || resp.Header.Get("ETag") != "" {
			t.Fatalf("%s: %d, %d rows (%v), length %d, etag %q", path, resp.StatusCode, len(rows), err, resp.ContentLength, resp.Header.Get("ETag"))
		}
	}
	if !strings.Contains(p.logs(), "no_such_table") {
		t.Errorf("the query error's detail is not in the log")
	}
	_, metrics := get(t, c, "http://"+p.admin+"/metrics")
	for _, m := range []string{"edgeloop_pool_pg_total_connections", "edgeloop_pool_pg_idle_connections",
		"edgeloop_pool_pg_acquired_connections", "edgeloop_pool_pg_acquire_seconds_total",
		"edgeloop_pool_pg_canceled_acquires_total", "edgeloop_pool_pg_empty_acquires_total",
		`edgeloop_handlers_query_requests_total{outcome="bad_param",route="/api/items/{id}"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestQueryDatabaseDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connects are refused
	p := startQuery(t, queryConfig("postgres://edgeloop@"+addr+"/postgres?sslmode=disable", ""))
	c := client()
	began := time.Now()
	wantGet(t, c, p.url("/api/items/1"), 503, `{"error":"database unavailable"}`)
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("503 took %v, want within the 1s acquire timeout", d)
	}
	// Other routes keep serving.
	if resp, _ := get(t, c, p.url("/")); resp.StatusCode != 200 {
		t.Fatalf("static route: %d", resp.StatusCode)
	}
	wantGet(t, c, p.url("/api/items/abc"), 400, "") // bad input is still judged first
}

func TestQueryCoalescesConcurrentRequests(t *testing.T) {
	dbURL, conn := querySchema(t, queryPG(t), queryE2ESetup)
	p := startQuery(t, queryConfig(dbURL, ""))
	const n = 200
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	var wg sync.WaitGroup
	var bad atomic.Int64
	statuses := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(p.url("/api/cached"))
			if err != nil {
				bad.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != `[{"id":1,"name":"apple"},{"id":2,"name":"pear"}]` {
				bad.Add(1)
			}
			statuses <- resp.Header.Get("Cache-Status")
		}()
	}
	wg.Wait()
	close(statuses)
	if bad.Load() != 0 {
		t.Fatalf("%d of %d requests failed", bad.Load(), n)
	}
	kinds := map[string]int{}
	for s := range statuses {
		kinds[s]++
	}
	var calls int64
	if err := conn.QueryRow(context.Background(), "SELECT n FROM calls").Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the database ran the query %d times for %d concurrent requests, want 1 (%v)", calls, n, kinds)
	}
	t.Logf("%d requests, 1 query: %v", n, kinds)
}

func TestQueryNotifyInvalidates(t *testing.T) {
	dbURL, conn := querySchema(t, queryPG(t), queryE2ESetup)
	// A cached proxy route whose origin tags its responses "items": a
	// NOTIFY drops those as well.
	var version atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "items")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	p := startQuery(t, queryConfig(dbURL, fmt.Sprintf("  - path: /page\n    upstreams: [%q]\n    cache: {}\n", o.URL)))
	c := client()
	wantGet(t, c, p.url("/api/cached"), 200, `[{"id":1,"name":"apple"},{"id":2,"name":"pear"}]`)
	wantGet(t, c, p.url("/page"), 200, "v0")
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "INSERT INTO items VALUES (3, 'plum')"); err != nil {
		t.Fatal(err)
	}
	version.Store(1)
	// Both are still cached (the TTL is 300s)...
	wantGet(t, c, p.url("/api/cached"), 200, `[{"id":1,"name":"apple"},{"id":2,"name":"pear"}]`)
	wantGet(t, c, p.url("/page"), 200, "v0")
	// ...until the database says the items changed.
	if _, err := conn.Exec(ctx, "NOTIFY edgeloop_invalidate, 'items'"); err != nil {
		t.Fatal(err)
	}
	want := `[{"id":1,"name":"apple"},{"id":2,"name":"pear"},{"id":3,"name":"plum"}]`
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := get(t, c, p.url("/api/cached"))
		if body == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query result not invalidated 5s after NOTIFY: %s\n%s", body, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantGet(t, c, p.url("/page"), 200, "v1")

	// The trigger docs/query.md ships sends it on every change.
	if _, err := conn.Exec(ctx, docTrigger); err != nil {
		t.Fatalf("documented trigger: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE items SET name = 'apricot' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(5 * time.Second); ; {
		_, body := get(t, c, p.url("/api/cached"))
		if strings.Contains(body, "apricot") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trigger's NOTIFY did not invalidate: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// docTrigger is the trigger of docs/query.md, verbatim.
const docTrigger = `
CREATE OR REPLACE FUNCTION edgeloop_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- Statement-level: one notification per statement, however many rows it touched;
  -- PostgreSQL also folds identical notifications within one transaction.
  PERFORM pg_notify(coalesce(TG_ARGV[0], 'edgeloop_invalidate'), TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE TRIGGER items_edgeloop_invalidate
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON items
  FOR EACH STATEMENT EXECUTE FUNCTION edgeloop_notify();`

// ownCluster starts a throwaway PostgreSQL of the test's own (so stopping
// it does not disturb other tests) and returns its URL and a restart
// function that stops it, waits, and starts it again on the same port.
func ownCluster(t *testing.T) (dbURL string, stop, startAgain func()) {
	t.Helper()
	queryPG(t) // same skip rules as every database test
	if _, err := exec.LookPath("runuser"); err != nil && os.Getuid() == 0 {
		t.Skip("runuser not found")
	}
	root, _ := filepath.Abs("../../scripts/testdb.sh")
	dir, err := os.MkdirTemp("", "edgeloop-pg-own")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(root, "start", dir).Output()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testdb.sh start: %v", err)
	}
	dbURL = strings.TrimSpace(string(out))
	u, _ := url.Parse(dbURL)
	stop = func() {
		if err := exec.Command(root, "stop", dir).Run(); err != nil {
			t.Errorf("testdb.sh stop: %v", err)
		}
	}
	t.Cleanup(func() { stop(); os.RemoveAll(dir) })
	startAgain = func() {
		pgbin, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
		if len(pgbin) == 0 {
			t.Fatal("pg_ctl not found")
		}
		args := []string{pgbin[len(pgbin)-1], "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-t", "30",
			"-o", "-c listen_addresses=127.0.0.1 -p " + u.Port() + " -k " + dir + " -c fsync=off", "start"}
		if os.Getuid() == 0 {
			args = append([]string{"-u", "postgres", "--"}, args...)
			args = append([]string{"runuser"}, args...)
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("restart postgres: %v\n%s", err, out)
		}
	}
	return dbURL, stop, startAgain
}

func TestQueryRecoversAfterDatabaseRestart(t *testing.T) {
	base, stop, startAgain := ownCluster(t)
	dbURL, conn := querySchema(t, base, queryE2ESetup)
	conn.Close(context.Background())
	p := startQuery(t, queryConfig(dbURL, ""))
	c := client()
	wantGet(t, c, p.url("/api/items/1"), 200, `{"id":1,"name":"apple"}`)

	stop()
	began := time.Now()
	wantGet(t, c, p.url("/api/items/1"), 503, `{"error":"database unavailable"}`)
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("503 took %v with the database stopped", d)
	}
	if resp, _ := get(t, c, p.url("/")); resp.StatusCode != 200 {
		t.Fatalf("static route while the database is down: %d", resp.StatusCode)
	}

	startAgain()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body := get(t, c, p.url("/api/items/1"))
		if resp.StatusCode == 200 && body == `{"id":1,"name":"apple"}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route did not recover 15s after the database restarted: %d %s\n%s", resp.StatusCode, body, p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The LISTEN connection comes back too.
	for !strings.Contains(p.logs(), "LISTEN connection restored") {
		if time.Now().After(deadline) {
			t.Fatalf("LISTEN connection not restored\n%s", p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestQueryCacheSize: database.cache_size bounds the results the sql
// routes cache: thirty 1 KiB results in 16 KiB evict the oldest (one result
// may take at most an eighth of it).
func TestQueryCacheSize(t *testing.T) {
	dbURL, _ := querySchema(t, queryPG(t), queryE2ESetup)
	cfg := strings.Replace(queryConfig(dbURL, `  - path: /api/pad/{n}
    sql: SELECT $1::int8 AS n, repeat('x', 1000) AS pad
    params: {n: int}
    cache: {ttl: 60s}
`), "  acquire_timeout: 1s\n", "  acquire_timeout: 1s\n  cache_size: 16KiB\n", 1)
	p := startQuery(t, cfg)
	c := client()
	for n := 1; n <= 30; n++ {
		wantGet(t, c, p.url(fmt.Sprintf("/api/pad/%d", n)), 200, "")
	}
	if ev := metric(t, p, "edgeloop_cache_query_evicted_total"); ev < 10 {
		t.Fatalf("30 results of 1 KiB in a 16 KiB cache: %v evicted, want at least 10", ev)
	}
}
