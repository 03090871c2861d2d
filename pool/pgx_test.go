package pool

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

func pgTestURL(t *testing.T) string {
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

func openTestPG(t *testing.T, cfg PGConfig) *PG {
	t.Helper()
	if cfg.MinConns == 0 {
		cfg.MinConns = 1
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	p, err := NewPG(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestNewPGConfig(t *testing.T) {
	p, err := NewPG(PGConfig{URL: "postgres://u@127.0.0.1:1/db"})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Config()
	if got.MaxConns != 100 || got.MinConns != 10 || got.AcquireTimeout != 5*time.Second || got.IdleTimeout != 600*time.Second ||
		got.MaxLifetime != 1800*time.Second || got.HealthCheckPeriod != time.Minute {
		t.Fatalf("defaults %+v", got)
	}
	if p.Stat() != nil {
		t.Fatal("a pool that is not open has statistics")
	}
	if _, err := p.Query(context.Background(), "SELECT 1"); !errors.Is(err, ErrPGClosed) {
		t.Fatalf("query before Open: %v", err)
	}
	for _, cfg := range []PGConfig{
		{URL: "mysql://x"},
		{URL: ""},
		{URL: "postgres://u:secret@h:notaport/db"},
		{URL: "postgres://u@h/db", MaxConns: -1},
		{URL: "postgres://u@h/db", AcquireTimeout: -time.Second},
	} {
		_, err := NewPG(cfg)
		if !errors.Is(err, ErrPGConfig) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if p, _ := NewPG(PGConfig{URL: "postgres://u@h/db", MaxConns: 3}); p.Config().MinConns != 3 {
		t.Errorf("min conns not capped at max conns: %d", p.Config().MinConns)
	}
}

func TestPGErrorClasses(t *testing.T) {
	p := openTestPG(t, PGConfig{URL: pgTestURL(t)})
	ctx := context.Background()
	if _, err := p.Query(ctx, "SELEKT 1"); !errors.Is(err, ErrPGQuery) {
		t.Fatalf("syntax error: %v", err)
	}
	rows, err := p.Query(ctx, "SELECT 1/0")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	if !errors.Is(rows.Err(), ErrPGQuery) {
		t.Fatalf("execution error: %v", rows.Err())
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	rows, err = p.Query(tctx, "SELECT pg_sleep(5)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
	}
	if !errors.Is(err, ErrPGTimeout) {
		t.Fatalf("deadline: %v", err)
	}
	// The pool works after all of it, and no connection is left checked out.
	var n int
	rows, err = p.Query(ctx, "SELECT 41 + 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		rows.Scan(&n)
	}
	// A connection interrupted by its deadline is closed by pgxpool in the
	// background; allow it that moment.
	for deadline := time.Now().Add(3 * time.Second); p.Stat().AcquiredConns() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n != 42 || p.Stat().AcquiredConns() != 0 {
		t.Fatalf("after errors: %d, %d acquired", n, p.Stat().AcquiredConns())
	}
}

func TestPGUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := openTestPG(t, PGConfig{URL: "postgres://u@" + addr + "/db", AcquireTimeout: time.Second})
	if _, err := p.Query(context.Background(), "SELECT 1"); !errors.Is(err, ErrPGUnavailable) {
		t.Fatalf("refused: %v", err)
	}
	// An acquire the pool cannot satisfy in time is unavailable too: one
	// connection, held.
	q := openTestPG(t, PGConfig{URL: pgTestURL(t), MaxConns: 1, MinConns: 1, AcquireTimeout: 100 * time.Millisecond})
	held, err := q.Query(context.Background(), "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := q.Query(context.Background(), "SELECT 1"); !errors.Is(err, ErrPGUnavailable) {
		t.Fatalf("exhausted pool: %v", err)
	}
	if st := q.Stat(); st.CanceledAcquireCount() == 0 {
		t.Fatalf("canceled acquire not counted")
	}
}

func TestPGStatementsCachedPerConnection(t *testing.T) {
	p := openTestPG(t, PGConfig{URL: pgTestURL(t), MaxConns: 1})
	ctx := context.Background()
	const sql = "SELECT $1::int8 + 1 AS statement_cache_probe"
	for i := 0; i < 3; i++ {
		rows, err := p.Query(ctx, sql, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	rows, err := p.Query(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", sql)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for rows.Next() {
		rows.Scan(&n)
	}
	if n != 1 {
		t.Fatalf("%d prepared statements for the query on its one connection, want 1", n)
	}
}

func TestPGMetrics(t *testing.T) {
	p := openTestPG(t, PGConfig{URL: pgTestURL(t)})
	rows, err := p.Query(context.Background(), "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "edgeloop_pool_pg_") && len(mf.Metric) == 1 {
			m := mf.Metric[0]
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for _, name := range []string{"edgeloop_pool_pg_acquires_total", "edgeloop_pool_pg_total_connections",
		"edgeloop_pool_pg_max_connections", "edgeloop_pool_pg_new_connections_total"} {
		if got[name] < 1 {
			t.Errorf("%s = %v, want >= 1 (%v)", name, got[name], got)
		}
	}
	for _, name := range []string{"edgeloop_pool_pg_idle_connections", "edgeloop_pool_pg_acquired_connections",
		"edgeloop_pool_pg_canceled_acquires_total", "edgeloop_pool_pg_empty_acquires_total", "edgeloop_pool_pg_acquire_seconds_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

func TestPGListenReconnects(t *testing.T) {
	url := pgTestURL(t)
	p, err := NewPG(PGConfig{URL: url, AcquireTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type note struct{ ch, payload string }
	notes := make(chan note, 16)
	listens := make(chan bool, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Listen(ctx, ListenConfig{
			Channels:   []string{"pool_test_a", "Pool Test B"},
			OnNotify:   func(ch, payload string) { notes <- note{ch, payload} },
			OnListen:   func(reconnected bool) { listens <- reconnected },
			MinBackoff: 10 * time.Millisecond,
		})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Listen did not return after cancel")
		}
	}()
	wait := func(what string) bool {
		t.Helper()
		select {
		case r := <-listens:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("no LISTEN %s", what)
		}
		return false
	}
	if wait("at start") {
		t.Fatal("first LISTEN reported as a reconnect")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	send := func(ch, payload string) {
		t.Helper()
		if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", ch, payload); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-notes:
			if n.ch != ch || n.payload != payload {
				t.Fatalf("got %+v, want %s %s", n, ch, payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("notification on %q not delivered", ch)
		}
	}
	send("pool_test_a", "items")
	send("Pool Test B", "room:hello")
	// Kill the listening backend; Listen reconnects and says so.
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN "pool_test_a"%'`); err != nil {
		t.Fatal(err)
	}
	if !wait("after the backend was terminated") {
		t.Fatal("reconnect not reported")
	}
	send("pool_test_a", "after")
}
