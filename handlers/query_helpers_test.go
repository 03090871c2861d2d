package handlers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/common/config"
	"github.com/cloudwego/hertz/pkg/common/ut"
	"github.com/cloudwego/hertz/pkg/protocol"
	"github.com/cloudwego/hertz/pkg/route"
	"github.com/jackc/pgx/v5"

	"github.com/edgeloop/edgeloop/pool"
)

// pgURL returns the test database, skipping (or failing under
// EDGELOOP_REQUIRE_PG=1) when there is none.
func pgURL(t testing.TB) string {
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

var schemaSeq atomic.Int64

// testSchema creates a schema of its own for the test, runs setup SQL in
// it, and returns a URL whose connections use it (search_path).
func testSchema(t testing.TB, setup string) string {
	t.Helper()
	base := pgURL(t)
	name := fmt.Sprintf("hq_%d_%d", os.Getpid(), schemaSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect test database: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name+"; SET search_path="+name+"; "+setup); err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			c.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name
}

func openPG(t testing.TB, url string, cfg pool.PGConfig) *pool.PG {
	t.Helper()
	cfg.URL = url
	if cfg.MinConns == 0 {
		cfg.MinConns = 1
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 8
	}
	p, err := pool.NewPG(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func queryEngine(t testing.TB, cfg QueryConfig) (*route.Engine, *Query) {
	t.Helper()
	q, err := NewQuery(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := route.NewEngine(config.NewOptions(nil))
	e.NoRoute(func(ctx context.Context, c *app.RequestContext) {
		c.Response.SetStatusCode(200)
		q.Handle(ctx, c)
	})
	return e, q
}

func do(e *route.Engine, path string, hdr ...ut.Header) *protocol.Response {
	return ut.PerformRequest(e, "GET", path, nil, hdr...).Result()
}
