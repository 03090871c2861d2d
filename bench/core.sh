# shellcheck shell=bash
# bench/core.sh — the serving core against nginx, and the transport decision.
# Sourced by bench/run.sh after lib.sh (BIN, ORIGIN_BIN and ROOT are set by run.sh).
#
#   (a) proxy:  GET /bytes/1024 through edgeloop and through nginx to the same origin, uncached
#   (b) static: GET /1k.txt, edgeloop from its embedded site, nginx the same bytes from disk
#   transport:  edgeloop with `transport: netpoll` against `transport: standard`, (a) and (b)
#   GOMAXPROCS: 2 against 1 on the one pinned server CPU, both transports, (a) and (b), once
#   writes:     (a) with io_uring batches (tune.io_uring: auto, the default) against write(2) (off)
#   Go benchmarks of the hot paths (ns/op, allocs/op)
#
# Every server runs for the whole scenario, each pinned to SERVER_CPU; only the one being
# measured gets traffic. The origin runs on CLIENT_CPU with GOMAXPROCS=1, beside wrk.
# Knobs: ROUNDS (3), BENCH_DURATION (8 s), BENCH_CONNS (64), GOBENCH_TIME (1s; "off" skips),
# CORE_PORT_BASE (18180: ports 18180..18187 on 127.0.0.1).

core_rounds=${ROUNDS:-3}
core_dur=${BENCH_DURATION:-8}
core_conns=${BENCH_CONNS:-64}
core_port=${CORE_PORT_BASE:-18180} # origin; nginx +1; edgeloop processes +2..+6

core_origin=$core_port
core_nginx=$((core_port + 1))

# core_config writes the edgeloop config shared by every edgeloop process:
# no access log, no rate limit (wrk is one IP), no kernel guard, and the
# same two routes nginx has.
core_config() {
  cat >"$BENCH_OUT/edgeloop-core.yaml" <<EOF
admin: "off"
log: {level: warn, access: false}
rate_limit: {rate: "off"}
limits: {max_connections_per_ip: -1}
guard: {mode: "off"}
routes:
  - path: /bytes/
    upstream: http://127.0.0.1:$core_origin
  - path: /
    root: embedded
EOF
  sed 's/^guard: .*/&\ntune: {io_uring: "off"}/' "$BENCH_OUT/edgeloop-core.yaml" >"$BENCH_OUT/edgeloop-core-write.yaml"
}

# core_nginx_config renders bench/nginx.conf.tmpl into $BENCH_OUT.
core_nginx_config() {
  local out user=nobody
  out=$(cd "$BENCH_OUT" && pwd)
  [ "$(id -u)" = 0 ] && user=root
  mkdir -p "$out/nginx-tmp" "$out/www"
  cp "$ROOT/handlers/site/1k.txt" "$out/www/1k.txt"
  sed -e "s|@OUT@|$out|g" -e "s|@PORT@|$core_nginx|g" -e "s|@ORIGIN_PORT@|$core_origin|g" \
    -e "s|@USER@|$user|g" "$ROOT/bench/nginx.conf.tmpl" >"$out/nginx.conf"
  echo "$out"
}

# core_el NAME PORT GOMAXPROCS [--transport T] starts one edgeloop process
# (with $CORE_CONFIG instead of the shared config when set).
core_el() {
  local name=$1 port=$2 procs=$3
  shift 3
  start_bg "$name" "$SERVER_CPU" env GOMAXPROCS="$procs" "$BIN" serve \
    --config "${CORE_CONFIG:-$BENCH_OUT/edgeloop-core.yaml}" --listen "127.0.0.1:$port" "$@"
}

# core_check URL: the response must be 200 with the 1 KiB body.
core_check() {
  local got
  got=$(curl -s --max-time 5 -o "$BENCH_OUT/check.body" -w '%{http_code} %{size_download}' "$1")
  if [ "$got" != "200 1024" ]; then
    echo "core: $1 answered '$got', want '200 1024'" >&2
    return 1
  fi
}

core_main() {
  local nginx_dir u
  core_config
  nginx_dir=$(core_nginx_config)
  "$BIN" config check "$BENCH_OUT/edgeloop-core.yaml" >/dev/null
  "$BIN" config check "$BENCH_OUT/edgeloop-core-write.yaml" >/dev/null

  need_free_ports $(seq "$core_port" $((core_port + 7)))
  start_bg origin "$CLIENT_CPU" env GOMAXPROCS=1 "$ORIGIN_BIN" -listen "127.0.0.1:$core_origin"
  start_bg nginx "$SERVER_CPU" nginx -e "$nginx_dir/nginx-error.log" -p "$nginx_dir" -c "$nginx_dir/nginx.conf"
  core_el el "$((core_port + 2))" 1 # the default transport
  core_el el-std "$((core_port + 3))" 1 --transport standard
  core_el el-np "$((core_port + 4))" 1 --transport netpoll
  core_el el-std-g2 "$((core_port + 5))" 2 --transport standard
  core_el el-np-g2 "$((core_port + 6))" 2 --transport netpoll
  CORE_CONFIG="$BENCH_OUT/edgeloop-core-write.yaml" core_el el-wr "$((core_port + 7))" 1

  for ((u = 0; u <= 7; u++)); do
    wait_http "http://127.0.0.1:$((core_port + u))/" 15 || return 1
  done
  # Each server is measured alone on the server CPU, the others paused (lib.sh).
  BENCH_SOLO=([el-]=el [nginx-]=nginx [netpoll-]=el-np [standard-]=el-std
    [netpoll-g2]=el-np-g2 [standard-g2]=el-std-g2 [uring-]=el [write-]=el-wr)
  for ((u = 1; u <= 7; u++)); do
    core_check "http://127.0.0.1:$((core_port + u))/bytes/1024" || return 1
    core_check "http://127.0.0.1:$((core_port + u))/1k.txt" || return 1
  done
  cmp -s "$BENCH_OUT/check.body" "$ROOT/handlers/site/1k.txt" ||
    { echo "core: edgeloop's /1k.txt differs from handlers/site/1k.txt" >&2; return 1; }

  local el="http://127.0.0.1:$((core_port + 2))" ng="http://127.0.0.1:$core_nginx"
  local std="http://127.0.0.1:$((core_port + 3))" np="http://127.0.0.1:$((core_port + 4))"
  local std2="http://127.0.0.1:$((core_port + 5))" np2="http://127.0.0.1:$((core_port + 6))"
  local wr="http://127.0.0.1:$((core_port + 7))"
  local r=$core_rounds c=$core_conns d=$core_dur

  report_note "# core: edgeloop (default transport, GOMAXPROCS=1) vs nginx (1 worker); $c conns, ${d}s x $r rounds"
  ab_rounds "$r" "$c" "$d" el-proxy "$el/bytes/1024" nginx-proxy "$ng/bytes/1024" || return 1
  report el-proxy nginx-proxy
  ab_rounds "$r" "$c" "$d" el-static "$el/1k.txt" nginx-static "$ng/1k.txt" || return 1
  report el-static nginx-static

  report_note "# writes: io_uring batches (tune.io_uring auto, the default) vs write(2) (off), GOMAXPROCS=1"
  ab_rounds "$r" "$c" "$d" uring-proxy "$el/bytes/1024" write-proxy "$wr/bytes/1024" || return 1
  report uring-proxy write-proxy

  report_note "# transport: netpoll vs standard, GOMAXPROCS=1"
  ab_rounds "$r" "$c" "$d" netpoll-proxy "$np/bytes/1024" standard-proxy "$std/bytes/1024" || return 1
  report netpoll-proxy standard-proxy
  ab_rounds "$r" "$c" "$d" netpoll-static "$np/1k.txt" standard-static "$std/1k.txt" || return 1
  report netpoll-static standard-static

  report_note "# GOMAXPROCS=2 vs 1 on the one pinned server CPU (1 round)"
  ab_rounds 1 "$c" "$d" standard-g2-proxy "$std2/bytes/1024" standard-g1-proxy "$std/bytes/1024" || return 1
  report standard-g2-proxy standard-g1-proxy
  ab_rounds 1 "$c" "$d" standard-g2-static "$std2/1k.txt" standard-g1-static "$std/1k.txt" || return 1
  report standard-g2-static standard-g1-static
  ab_rounds 1 "$c" "$d" netpoll-g2-proxy "$np2/bytes/1024" netpoll-g1-proxy "$np/bytes/1024" || return 1
  report netpoll-g2-proxy netpoll-g1-proxy
  ab_rounds 1 "$c" "$d" netpoll-g2-static "$np2/1k.txt" netpoll-g1-static "$np/1k.txt" || return 1
  report netpoll-g2-static netpoll-g1-static

  for u in el el-std el-np el-std-g2 el-np-g2 el-wr nginx origin; do
    stop_bg "$u"
  done
  core_gobench
}

# core_gobench runs the hot-path Go benchmarks and adds ns/op and allocs/op to the report.
core_gobench() {
  local t=${GOBENCH_TIME:-1s}
  [ "$t" = off ] && return 0
  bench_log "go benchmarks (-benchtime=$t)"
  (cd "$ROOT" && go test -run '^$' -bench 'Proxy|Static|Hit|Allow|Negotiate|ReadDeadline|Send' -benchtime="$t" \
    -benchmem ./handlers/ ./cache/ ./engine/... ./internal/fairpoll/ ./internal/uring/) >"$BENCH_OUT/gobench.txt" 2>&1 ||
    { echo "core: go benchmarks failed (see $BENCH_OUT/gobench.txt)" >&2; cat "$BENCH_OUT/gobench.txt" >&2; return 1; }
  report_note "# Go benchmarks (-benchtime=$t): name, ns/op, B/op, allocs/op"
  awk '/^pkg:/ {pkg = $2; sub(/.*edgeloop\/edgeloop\//, "", pkg)}
       /^Benchmark/ {
         for (i = 3; i < NF; i++) {
           if ($(i + 1) == "ns/op") ns = $i
           if ($(i + 1) == "B/op") by = $i
           if ($(i + 1) == "allocs/op") al = $i
         }
         printf "%-62s %12s ns/op %8s B/op %6s allocs/op\n", pkg "." $1, ns, by, al
       }' "$BENCH_OUT/gobench.txt" >>"$BENCH_OUT/report.txt"
}

core_main
