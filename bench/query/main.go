// Command query is the peer of edgeloop's query routes in bench/query.sh: a
// plain net/http server with a pgxpool that runs one SQL statement per
// request and answers its rows as a JSON array of objects (encoding/json),
// the way a small Go data API is usually written.
//
//	query -setup -db URL                   create and fill the bench table
//	query -listen 127.0.0.1:18390 -db URL  serve GET / with the bench query
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Query is the statement every server in the benchmark runs.
const Query = "SELECT id, name, price, updated FROM bench_items ORDER BY id LIMIT 20"

const setup = `
DROP TABLE IF EXISTS bench_items;
CREATE TABLE bench_items (id int8 PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL,
  updated timestamptz NOT NULL DEFAULT now());
INSERT INTO bench_items (id, name, price)
  SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 1000) g;
ANALYZE bench_items;`

func main() {
	listen := flag.String("listen", "127.0.0.1:18390", "listen `addr`ess")
	db := flag.String("db", "", "postgres:// `url`")
	maxConns := flag.Int("max-conns", 64, "pool size")
	doSetup := flag.Bool("setup", false, "create and fill the bench table, then exit")
	flag.Parse()
	if err := run(*listen, *db, *maxConns, *doSetup); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

func run(listen, db string, maxConns int, doSetup bool) error {
	cfg, err := pgxpool.ParseConfig(db)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(maxConns)
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if doSetup {
		_, err := pool.Exec(ctx, setup)
		return err
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		qctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		rows, err := pool.Query(qctx, Query)
		if err != nil {
			http.Error(w, `{"error":"database unavailable"}`, 503)
			return
		}
		defer rows.Close()
		fields := rows.FieldDescriptions()
		out := make([]map[string]any, 0, 20)
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				http.Error(w, `{"error":"query failed"}`, 500)
				return
			}
			m := make(map[string]any, len(vals))
			for i, v := range vals {
				m[fields[i].Name] = v
			}
			out = append(out, m)
		}
		if rows.Err() != nil {
			http.Error(w, `{"error":"query failed"}`, 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	log.Printf("listening on %s", listen)
	return http.ListenAndServe(listen, nil)
}
