package handlers

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/common/ut"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/pool"
)

const itemsSetup = `
CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags jsonb,
  created timestamptz NOT NULL DEFAULT '2024-05-01T12:00:00Z', day date DEFAULT '2024-05-01', uid uuid);
INSERT INTO items (id, name, price, tags, uid) VALUES
  (1, 'apple', 1.50, '{"color":"red","n":12345678901234567890}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, 'pear "quoted"', 2.00, NULL, NULL),
  (3, 'plum', NULL, '[1,2]', NULL);`

func TestQueryParamTypes(t *testing.T) {
	db := openPG(t, testSchema(t, ""), pool.PGConfig{})
	for _, tc := range []struct {
		typ, sqlType, good, want, bad string
	}{
		{ParamInt, "int8", "-42", `-42`, "4x2"},
		{ParamInt, "int8", "9223372036854775807", `9223372036854775807`, "9223372036854775808"},
		{ParamFloat, "float8", "2.5e3", `2500`, "NaN"},
		{ParamText, "text", "caf%C3%A9%20o'k", `"café o'k"`, "%00"},
		{ParamBool, "bool", "true", `true`, "maybe"},
		{ParamBool, "bool", "0", `false`, "2"},
		{ParamUUID, "uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "a0eebc99-9c0b"},
		{ParamUUID, "uuid", "a0eebc999c0b4ef8bb6d6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "zzeebc999c0b4ef8bb6d6bb9bd380a11"},
		{ParamTimestamp, "timestamptz", "2024-05-01T12:00:00%2B02:00", `"2024-05-01T10:00:00Z"`, "yesterday"},
		{ParamTimestamp, "timestamptz", "2024-05-01T12:00:00+02:00", `"2024-05-01T10:00:00Z"`, "2024-13-01"},
		{ParamTimestamp, "timestamptz", "2024-05-01", `"2024-05-01T00:00:00Z"`, "2024-05-01T25:00:00Z"},
	} {
		t.Run(tc.typ+"/"+tc.good, func(t *testing.T) {
			e, _ := queryEngine(t, QueryConfig{Route: "/v/{x}", SQL: "SELECT $1::" + tc.sqlType + " AS v",
				Params: map[string]string{"x": tc.typ}, Single: true, DB: db})
			r := do(e, "/v/"+tc.good)
			if r.StatusCode() != 200 || string(r.Body()) != `{"v":`+tc.want+`}` {
				t.Fatalf("good %q: %d %s, want {\"v\":%s}", tc.good, r.StatusCode(), r.Body(), tc.want)
			}
			r = do(e, "/v/"+tc.bad)
			if r.StatusCode() != 400 || !strings.Contains(string(r.Body()), "bad parameter x") {
				t.Fatalf("bad %q: %d %s, want 400 naming x", tc.bad, r.StatusCode(), r.Body())
			}
			if ct := string(r.Header.ContentType()); ct != "application/json" {
				t.Errorf("400 content type %q", ct)
			}
		})
	}
}

func TestQueryBindingOrderAndQueryString(t *testing.T) {
	db := openPG(t, testSchema(t, ""), pool.PGConfig{})
	// $1 = id (path), then query parameters sorted by name: $2 = alpha, $3 = beta.
	e, _ := queryEngine(t, QueryConfig{Route: "/o/{id}/x/{name}",
		SQL:    "SELECT $1::int8 AS id, $2::text AS name, $3::int8 AS alpha, $4::bool AS beta",
		Params: map[string]string{"id": "int", "beta": "bool", "alpha": "int"}, Single: true, DB: db})
	f := func(path string, code int, want string) {
		t.Helper()
		r := do(e, path)
		if r.StatusCode() != code || (want != "" && string(r.Body()) != want) {
			t.Fatalf("GET %s: %d %s; want %d %s", path, r.StatusCode(), r.Body(), code, want)
		}
	}
	f("/o/7/x/bob?beta=true&alpha=3", 200, `{"id":7,"name":"bob","alpha":3,"beta":true}`)
	f("/o/7/x/bob", 200, `{"id":7,"name":"bob","alpha":null,"beta":null}`) // absent → NULL
	f("/o/7/x/bob?alpha=1&alpha=2", 400, `{"error":"bad parameter alpha: given more than once"}`)
	f("/o/7/x/bob?beta=perhaps", 400, `{"error":"bad parameter beta: want true or false"}`)
	f("/o/seven/x/bob", 400, `{"error":"bad parameter id: want an integer"}`)
	f("/o/7/y/bob", 404, `{"error":"not found"}`)
	f("/o/7/x/bob/more", 404, `{"error":"not found"}`)
	f("/o/7/x/", 404, `{"error":"not found"}`)
	f("/o/7/x/bob?unknown=1", 200, "") // undeclared query parameters are ignored
}

func TestQueryNeverInterpolates(t *testing.T) {
	url := testSchema(t, itemsSetup)
	db := openPG(t, url, pool.PGConfig{})
	e, _ := queryEngine(t, QueryConfig{Route: "/by-name/{name}", SQL: "SELECT id FROM items WHERE name = $1", DB: db})
	r := do(e, "/by-name/x'%3B%20DROP%20TABLE%20items%3B%20--")
	if r.StatusCode() != 200 || string(r.Body()) != "[]" {
		t.Fatalf("%d %s", r.StatusCode(), r.Body())
	}
	if r := do(e, "/by-name/plum"); string(r.Body()) != `[{"id":3}]` {
		t.Fatalf("table damaged: %d %s", r.StatusCode(), r.Body())
	}
}

func TestQueryRowsSingleMaxRowsAndTypes(t *testing.T) {
	db := openPG(t, testSchema(t, itemsSetup), pool.PGConfig{})
	all, _ := queryEngine(t, QueryConfig{Route: "/items", SQL: "SELECT id, name, price, tags, created, day, uid FROM items ORDER BY id", DB: db})
	r := do(all, "/items")
	want := `[{"id":1,"name":"apple","price":1.50,"tags":{"n": 12345678901234567890, "color": "red"},"created":"2024-05-01T12:00:00Z","day":"2024-05-01","uid":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},` +
		`{"id":2,"name":"pear \"quoted\"","price":2.00,"tags":null,"created":"2024-05-01T12:00:00Z","day":"2024-05-01","uid":null},` +
		`{"id":3,"name":"plum","price":null,"tags":[1, 2],"created":"2024-05-01T12:00:00Z","day":"2024-05-01","uid":null}]`
	if r.StatusCode() != 200 || string(r.Body()) != want {
		t.Fatalf("%d\n got %s\nwant %s", r.StatusCode(), r.Body(), want)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(r.Body(), &decoded); err != nil || len(decoded) != 3 {
		t.Fatalf("not valid JSON: %v", err)
	}

	capped, _ := queryEngine(t, QueryConfig{Route: "/items", SQL: "SELECT id FROM items ORDER BY id", MaxRows: 2, DB: db})
	if r := do(capped, "/items"); string(r.Body()) != `[{"id":1},{"id":2}]` {
		t.Fatalf("max_rows: %s", r.Body())
	}

	one, _ := queryEngine(t, QueryConfig{Route: "/items/{id}", SQL: "SELECT id, name FROM items WHERE id = $1",
		Params: map[string]string{"id": "int"}, Single: true, DB: db})
	if r := do(one, "/items/3"); r.StatusCode() != 200 || string(r.Body()) != `{"id":3,"name":"plum"}` {
		t.Fatalf("single: %d %s", r.StatusCode(), r.Body())
	}
	if r := do(one, "/items/99"); r.StatusCode() != 404 || string(r.Body()) != `{"error":"not found"}` {
		t.Fatalf("single, no row: %d %s", r.StatusCode(), r.Body())
	}
	if r := ut.PerformRequest(one, "POST", "/items/3", nil).Result(); r.StatusCode() != 405 || string(r.Header.Peek("Allow")) != "GET, HEAD" {
		t.Fatalf("POST: %d", r.StatusCode())
	}
}

func TestQueryETagRevalidation(t *testing.T) {
	url := testSchema(t, itemsSetup)
	db := openPG(t, url, pool.PGConfig{})
	e, _ := queryEngine(t, QueryConfig{Route: "/items", SQL: "SELECT id, name FROM items ORDER BY id", DB: db})
	r := do(e, "/items")
	etag := string(r.Header.Peek("ETag"))
	if r.StatusCode() != 200 || len(etag) != 18 || etag[0] != '"' {
		t.Fatalf("%d etag %q", r.StatusCode(), etag)
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		r = do(e, "/items", ut.Header{Key: "If-None-Match", Value: inm})
		if r.StatusCode() != 304 || len(r.Body()) != 0 || string(r.Header.Peek("ETag")) != etag {
			t.Fatalf("If-None-Match %s: %d %q", inm, r.StatusCode(), r.Body())
		}
	}
	if r = do(e, "/items", ut.Header{Key: "If-None-Match", Value: `"stale"`}); r.StatusCode() != 200 {
		t.Fatalf("other etag: %d", r.StatusCode())
	}
	// A change in the data changes the ETag.
	conn := openPG(t, url, pool.PGConfig{MinConns: 1, MaxConns: 1})
	rows, err := conn.Query(t.Context(), "UPDATE items SET name = 'apricot' WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	r = do(e, "/items", ut.Header{Key: "If-None-Match", Value: etag})
	if r.StatusCode() != 200 || string(r.Header.Peek("ETag")) == etag || !strings.Contains(string(r.Body()), "apricot") {
		t.Fatalf("after update: %d %q %s", r.StatusCode(), r.Header.Peek("ETag"), r.Body())
	}
}

func TestQueryErrorIs500WithCodeOnly(t *testing.T) {
	db := openPG(t, testSchema(t, itemsSetup), pool.PGConfig{})
	for _, sql := range []string{
		"SELECT * FROM no_such_table",     // fails at prepare
		"SELECT 1 / (id - id) FROM items", // fails while executing
	} {
		e, _ := queryEngine(t, QueryConfig{Route: "/x", SQL: sql, DB: db})
		r := do(e, "/x")
		if r.StatusCode() != 500 || !strings.HasPrefix(string(r.Body()), `{"error":"query failed","code":"`) ||
			strings.Contains(string(r.Body()), "no_such_table") {
			t.Fatalf("%s: %d %s", sql, r.StatusCode(), r.Body())
		}
	}
	// The pool is still healthy afterwards.
	e, _ := queryEngine(t, QueryConfig{Route: "/x", SQL: "SELECT count(*) AS n FROM items", Single: true, DB: db})
	if r := do(e, "/x"); string(r.Body()) != `{"n":3}` {
		t.Fatalf("after errors: %s", r.Body())
	}
}

func TestQueryUnavailableIs503Quickly(t *testing.T) {
	// A loopback port nobody listens on: connects are refused.
	db := openPG(t, "postgres://edgeloop@127.0.0.1:1/postgres?sslmode=disable", pool.PGConfig{AcquireTimeout: 2 * time.Second})
	e, _ := queryEngine(t, QueryConfig{Route: "/x", SQL: "SELECT 1", DB: db})
	r := do(e, "/x")
	if r.StatusCode() != 503 || string(r.Body()) != `{"error":"database unavailable"}` {
		t.Fatalf("%d %s", r.StatusCode(), r.Body())
	}
	db.Close()
	if r := do(e, "/x"); r.StatusCode() != 503 {
		t.Fatalf("closed pool: %d", r.StatusCode())
	}
}

func TestQueryStreamsLargeResults(t *testing.T) {
	db := openPG(t, testSchema(t, ""), pool.PGConfig{})
	e, _ := queryEngine(t, QueryConfig{Route: "/s", SQL: "SELECT g AS n, repeat('x', 100) AS pad FROM generate_series(1, 5000) g",
		StreamAbove: 4096, DB: db})
	r := do(e, "/s")
	var rows []struct{ N int }
	if err := json.Unmarshal(r.Body(), &rows); err != nil {
		t.Fatalf("streamed body is not JSON: %v (%d bytes)", err, len(r.Body()))
	}
	if r.StatusCode() != 200 || len(rows) != 5000 || rows[4999].N != 5000 || len(r.Header.Peek("ETag")) != 0 {
		t.Fatalf("%d rows %d etag %q", r.StatusCode(), len(rows), r.Header.Peek("ETag"))
	}
	if st := db.Stat(); st.AcquiredConns() != 0 {
		t.Fatalf("%d connections still acquired after the stream", st.AcquiredConns())
	}
}

func TestQueryCachedRouteStreamsTooBigResults(t *testing.T) {
	db := openPG(t, testSchema(t, ""), pool.PGConfig{})
	qc, err := cache.NewQueryCache(cache.QueryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.Close()
	e, _ := queryEngine(t, QueryConfig{Route: "/s", SQL: "SELECT g AS n FROM generate_series(1, 3000) g",
		StreamAbove: 1000, DB: db, Cache: qc, CacheTTL: time.Minute})
	for i := 0; i < 2; i++ { // the fill finds it too big, then the remembered verdict
		r := do(e, "/s")
		var rows []struct{ N int }
		if err := json.Unmarshal(r.Body(), &rows); err != nil || len(rows) != 3000 || len(r.Header.Peek("ETag")) != 0 {
			t.Fatalf("request %d: %d rows, err %v, etag %q", i, len(rows), err, r.Header.Peek("ETag"))
		}
	}
	if n, _ := qc.Len(); n != 1 {
		t.Fatalf("%d entries; want the one too-big marker", n)
	}
}

func TestQueryCacheHitAndKeying(t *testing.T) {
	url := testSchema(t, itemsSetup+`CREATE TABLE calls (n int8); INSERT INTO calls VALUES (0);
CREATE FUNCTION counted(i int8) RETURNS int8 VOLATILE LANGUAGE sql AS 'UPDATE calls SET n = n + 1; SELECT i';`)
	db := openPG(t, url, pool.PGConfig{})
	qc, err := cache.NewQueryCache(cache.QueryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.Close()
	e, _ := queryEngine(t, QueryConfig{Route: "/c/{id}", SQL: "SELECT counted($1) AS id",
		Params: map[string]string{"id": "int"}, Single: true, DB: db, Cache: qc, CacheTTL: time.Minute, CacheTags: []string{"items"}})
	for i, step := range []struct{ path, xcache, body string }{
		{"/c/1", "edgeloop; fwd=miss", `{"id":1}`},
		{"/c/1", "edgeloop; hit", `{"id":1}`},
		{"/c/01", "edgeloop; hit", `{"id":1}`}, // same bound argument, same key
		{"/c/2", "edgeloop; fwd=miss", `{"id":2}`},
	} {
		r := do(e, step.path)
		if got := string(r.Header.Peek("Cache-Status")); got != step.xcache || string(r.Body()) != step.body {
			t.Fatalf("step %d %s: Cache-Status %q body %s", i, step.path, got, r.Body())
		}
	}
	qc.PurgeTag("items")
	if r := do(e, "/c/1"); string(r.Header.Peek("Cache-Status")) != "edgeloop; fwd=miss" {
		t.Fatalf("after purge: %q", r.Header.Peek("Cache-Status"))
	}
	rows, err := db.Query(t.Context(), "SELECT n FROM calls")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for rows.Next() {
		rows.Scan(&n)
	}
	if n != 3 {
		t.Fatalf("database ran the query %d times, want 3", n)
	}
}

func TestNewQueryRejects(t *testing.T) {
	db, err := pool.NewPG(pool.PGConfig{URL: "postgres://x@127.0.0.1:1/db"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []QueryConfig{
		{Route: "/a/{id}", SQL: "SELECT 1"},           // $1 unused
		{Route: "/a", SQL: "SELECT $1"},               // no parameter for $1
		{Route: "/a/{id}/{id}", SQL: "SELECT $1, $2"}, // twice
		{Route: "/a/x{id}", SQL: "SELECT $1"},         // not a whole segment
		{Route: "/a/{id}", SQL: "SELECT $1", Params: map[string]string{"id": "money"}},
		{Route: "/a", SQL: ""},
	} {
		if _, err := NewQuery(QueryConfig{Route: cfg.Route, SQL: cfg.SQL, Params: cfg.Params, DB: db}); !errors.Is(err, ErrBadQueryConfig) {
			t.Errorf("%q %q: err %v", cfg.Route, cfg.SQL, err)
		}
	}
}
