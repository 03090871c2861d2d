# shellcheck shell=bash
# bench/query.sh — the data API: one SQL statement (20 rows as JSON) answered by
#   el-query-cached    an edgeloop sql route with cache: {ttl: 60s} (result-cache hits)
#   el-query-uncached  the same route without the cache (a database round trip per request)
#   plain-pgx          a plain net/http + pgxpool + encoding/json server (bench/query/) running
#                      the same statement per request
# Same run, same throwaway PostgreSQL cluster (scripts/testdb.sh, its own, removed at the end);
# the servers are pinned to SERVER_CPU with GOMAXPROCS=1, wrk and PostgreSQL to CLIENT_CPU.
# Sourced by bench/run.sh after lib.sh (BIN and ROOT are set by run.sh):
#
#   bench/run.sh query                                   the scenario alone
#   QUERY_DURATION=2 QUERY_ROUNDS=1 bench/run.sh query   a smoke run
#
# Knobs: QUERY_ROUNDS (2), QUERY_DURATION (4 s per wrk round), QUERY_CONNS (64),
# QUERY_PORT_BASE (18390: plain-pgx; edgeloop +1).

query_rounds=${QUERY_ROUNDS:-2}
query_dur=${QUERY_DURATION:-4}
query_conns=${QUERY_CONNS:-64}
query_port=${QUERY_PORT_BASE:-18390}
query_el=$((query_port + 1))

query_main() {
  local out pgdir url peer el pm
  need_free_ports "$query_port" "$query_el" || return 1
  out=$(cd "$BENCH_OUT" && pwd)
  peer=$out/query-peer
  go build -o "$peer" ./bench/query || return 1

  pgdir=$(mktemp -d /tmp/edgeloop-bench-pg.XXXXXX)
  BENCH_CLEANUP+=("scripts/testdb.sh stop '$pgdir'; rm -rf '$pgdir'")
  url=$(scripts/testdb.sh start "$pgdir") || return 1
  # PostgreSQL (postmaster and the backends it forks) on the client CPU, away from the servers.
  pm=$(head -n1 "$pgdir/data/postmaster.pid")
  taskset -a -c -p "$CLIENT_CPU" "$pm" >/dev/null
  "$peer" -setup -db "$url" || return 1

  cat >"$out/edgeloop-query.yaml" <<EOF2
admin: "off"
log: {level: warn, access: false}
rate_limit: {rate: "off"}
limits: {max_connections_per_ip: -1}
guard: {mode: "off"}
compression: {enabled: false}
database: {url: "$url", max_conns: 64}
routes:
  - path: /cached
    sql: SELECT id, name, price, updated FROM bench_items ORDER BY id LIMIT 20
    cache: {ttl: 60s, tags: [bench_items]}
  - path: /uncached
    sql: SELECT id, name, price, updated FROM bench_items ORDER BY id LIMIT 20
EOF2
  "$BIN" config check "$out/edgeloop-query.yaml" >/dev/null || return 1

  start_bg query-plain "$SERVER_CPU" env GOMAXPROCS=1 "$peer" -listen "127.0.0.1:$query_port" -db "$url" -max-conns 64
  start_bg query-el "$SERVER_CPU" env GOMAXPROCS=1 "$BIN" serve --config "$out/edgeloop-query.yaml" \
    --listen "127.0.0.1:$query_el"
  el="http://127.0.0.1:$query_el"
  local plain="http://127.0.0.1:$query_port/"
  wait_http "$plain" 20 || return 1
  wait_http "$el/cached" 20 || return 1
  local u
  for u in "$el/cached" "$el/uncached" "$plain"; do
    if [ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$u")" != 200 ]; then
      echo "query: $u does not answer 200" >&2
      return 1
    fi
    echo "$u: $(curl -s --max-time 5 "$u" | head -c 160)..." >>"$BENCH_OUT/query-answers.txt"
  done

  local r=$query_rounds d=$query_dur c=$query_conns
  report_note "# data API: 20 rows as JSON; edgeloop sql route cached / uncached vs net/http+pgx; servers on CPU $SERVER_CPU, PostgreSQL and wrk on CPU $CLIENT_CPU; ${d}s x $r rounds, $c connections"
  ab_rounds "$r" "$c" "$d" el-query-cached "$el/cached" plain-pgx "$plain" || return 1
  report el-query-cached plain-pgx
  ab_rounds "$r" "$c" "$d" el-query-uncached "$el/uncached" plain-pgx "$plain" || return 1
  report el-query-uncached plain-pgx
  stop_bg query-el
  stop_bg query-plain
}

query_main
