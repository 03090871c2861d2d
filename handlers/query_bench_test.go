package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app"

	"github.com/edgeloop/edgeloop/cache"
	"github.com/edgeloop/edgeloop/pool"
)

// BenchmarkQueryCachedHit is a cached query route answering from the
// result cache: parameter binding, key building, lookup and the response.
func BenchmarkQueryCachedHit(b *testing.B) {
	db := openPG(b, testSchema(b, "CREATE TABLE items AS SELECT g AS id, 'item ' || g AS name FROM generate_series(1, 100) g"), pool.PGConfig{})
	qc, err := cache.NewQueryCache(cache.QueryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer qc.Close()
	q, err := NewQuery(QueryConfig{Route: "/items/{id}", SQL: "SELECT id, name FROM items WHERE id = $1",
		Params: map[string]string{"id": "int"}, Single: true, DB: db, Cache: qc, CacheTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := app.NewContext(0)
		for pb.Next() {
			c.Reset()
			c.Request.SetRequestURI("/items/42")
			c.Request.Header.SetMethod("GET")
			q.Handle(context.Background(), c)
			if c.Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", c.Response.StatusCode(), c.Response.Body())
			}
		}
	})
}
