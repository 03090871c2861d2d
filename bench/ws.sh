# shellcheck shell=bash
# bench/ws.sh — WebSocket pub/sub at scale: memory per idle connection and
# broadcast fan-out time. Sourced by bench/run.sh after lib.sh (BIN is set).
#
#   1. edgeloop (one process, pinned to SERVER_CPU) with a /ws/{channel} route;
#   2. WS_PROCS wsload client processes (a process holds at most 20,000 open
#      files here) open WS_CONNS idle subscriptions in total, each process from
#      its own 127.0.1.x source address (ephemeral ports are per address);
#   3. edgeloop's VmRSS and goroutines, total and per connection (RSS less the
#      RSS before any connection), and a heap profile (go tool pprof -top);
#   4. one publish to every subscriber; each client records receive time less
#      publish time; p50/p99 over all subscribers.
# Knobs: WS_CONNS (19000), WS_PROCS (4), WS_PORT (18190; admin +1),
# WS_WORKERS (1): with N > 1, edgeloop runs `workers: N` (each worker holds
# at most ~19,900 connections) and RSS is summed over all its processes,
# e.g. WS_WORKERS=6 WS_PROCS=6 WS_CONNS=100000 WS_CONNECT_WAIT=300 \
# SCENARIO_TIMEOUT=600 bench/run.sh ws.
# One command: bench/run.sh ws   (WS_CONNS=2000 bench/run.sh ws for a smoke run)

ws_conns=${WS_CONNS:-19000}
ws_procs=${WS_PROCS:-4}
ws_port=${WS_PORT:-18190}
ws_workers=${WS_WORKERS:-1}
ws_wait=${WS_CONNECT_WAIT:-90} # seconds for all clients to connect
ws_admin=$((ws_port + 1))
ws_load=$BENCH_OUT/wsload
go build -o "$ws_load" ./bench/wsload

cat >"$BENCH_OUT/edgeloop-ws.yaml" <<YAML
workers: $ws_workers
listen: ["127.0.0.1:$ws_port"]
admin: "127.0.0.1:$ws_admin"
log: {level: warn, access: false}
rate_limit: {rate: "off"}
limits: {max_connections: 19900, max_connections_per_ip: 19900}
guard: {mode: "off"}   # as in the other scenarios: XDP on lo would see every client packet too
routes:
  - path: /ws/{channel}
    websocket: {max_conns: 100000, max_conns_per_ip: 20000, ping_interval: 10m, idle_timeout: 10m}
YAML

start_bg ws-edgeloop "$SERVER_CPU" "$BIN" serve --config "$BENCH_OUT/edgeloop-ws.yaml"
ws_pid=${BENCH_PIDS[ws-edgeloop]}
wait_http "http://127.0.0.1:$ws_admin/healthz" 15
sleep 1
# ws_pids: every edgeloop process (the supervisor and its workers).
ws_pids() {
  echo "$ws_pid"
  ((ws_workers > 1)) && curl -s "http://127.0.0.1:$ws_admin/workers" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$' | grep -vx "$ws_pid"
}
ws_rss() { for pid in $(ws_pids); do awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; done | awk '{s += $1} END {print s}'; }
if ((ws_workers > 1)); then
  ws_up=$((SECONDS + 30))
  until [ "$(curl -s "http://127.0.0.1:$ws_admin/workers" | grep -c '"state": *"running"')" -ge "$ws_workers" ]; do
    ((SECONDS < ws_up)) || { echo "ws: the $ws_workers workers did not all run within 30 s" >&2; return 1; }
    sleep 0.5
  done
fi
ws_base=$(ws_rss)
bench_log "edgeloop pid $ws_pid, RSS before connections ${ws_base} KiB"

per=$(((ws_conns + ws_procs - 1) / ws_procs))
for ((i = 1; i <= ws_procs; i++)); do
  start_bg "ws-client-$i" "$CLIENT_CPU" "$ws_load" clients -url "ws://127.0.0.1:$ws_port/ws/bench" \
    -conns "$per" -src "127.0.1.$i" -out "$BENCH_OUT/ws-lat-$i.txt" -wait "${ws_wait}s"
done
deadline=$((SECONDS + ws_wait))
for ((i = 1; i <= ws_procs; i++)); do
  until grep -q '^ready' "$BENCH_OUT/ws-client-$i.log" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "ws: client $i did not connect in time" >&2; return 1; }
    sleep 0.5
  done
  bench_log "client $i: $(head -1 "$BENCH_OUT/ws-client-$i.log")"
done
ws_open=$(curl -s "http://127.0.0.1:$ws_admin/metrics" | awk '/^edgeloop_ws_connections_open\{/ {s += $NF} END {print s}')
sleep 3 # let the connection storm's garbage be collected
if ((ws_workers > 1)); then
  ws_now=$(ws_rss)
  ws_stats="processes $(ws_pids | wc -l) rss_kib $ws_now rss_per_conn_kib $(awk -v a="$ws_now" -v b="$ws_base" -v n="${ws_open:-$ws_conns}" 'BEGIN {printf "%.2f", (a - b) / n}')"
else
  ws_stats=$("$ws_load" stats -admin "http://127.0.0.1:$ws_admin" -pid "$ws_pid" -base-rss "$ws_base" -conns "${ws_open:-$ws_conns}")
fi
bench_log "idle: open ${ws_open} $ws_stats"
ws_gone=$(curl -s "http://127.0.0.1:$ws_admin/metrics" | awk '/^edgeloop_ws_(disconnects|refused)_total\{/ {split($0, a, " "); k = a[1]; sub(/,?worker="[^"]*"/, "", k); s[k] += a[2]} END {for (k in s) if (s[k]) printf "%s %d; ", k, s[k]}')
bench_log "closed or refused so far: ${ws_gone:-none}"
go tool pprof -top -sample_index=inuse_space "http://127.0.0.1:$ws_admin/debug/pprof/heap" \
  >"$BENCH_OUT/ws-heap.txt" 2>/dev/null || true
curl -s "http://127.0.0.1:$ws_admin/debug/pprof/goroutine?debug=1" | head -40 >"$BENCH_OUT/ws-goroutines.txt"

ws_pub=$("$ws_load" publish -admin "http://127.0.0.1:$ws_admin" -channel bench)
bench_log "publish: $ws_pub"
for ((i = 1; i <= ws_procs; i++)); do
  until grep -q '^received' "$BENCH_OUT/ws-client-$i.log" 2>/dev/null; do
    ((SECONDS < deadline + 30)) || break
    sleep 0.2
  done
done
ws_fan=$("$ws_load" report "$BENCH_OUT"/ws-lat-*.txt)
# edgeloop's own view: publish to written on the socket (histogram bucket bounds).
# With workers, each worker's series comes labelled worker="N": buckets are summed by le.
ws_srv=$(curl -s "http://127.0.0.1:$ws_admin/metrics" | awk '
  /^edgeloop_ws_fanout_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
    if (!(le in n)) { k++; b[k] = le }; n[le] += $NF }
  /^edgeloop_ws_fanout_seconds_count/ { tot += $NF }
  END { for (i = 1; i <= k; i++) { c = n[b[i]]; if (!p50 && c >= tot * .5) p50 = b[i]; if (!p99 && c >= tot * .99) p99 = b[i] }
        printf "server-side fanout p50 <= %ss p99 <= %ss (of %d writes)", p50, p99, tot }')
ws_after=$( ((ws_workers > 1)) && echo "rss_kib $(ws_rss)" || "$ws_load" stats -admin "http://127.0.0.1:$ws_admin" -pid "$ws_pid")
bench_log "fan-out: $ws_fan; $ws_srv; after: $ws_after"
report_note "# ws: ${ws_open} idle WebSocket connections in edgeloop (workers: $ws_workers; $ws_procs client processes)"
report_note "ws idle: RSS before ${ws_base} KiB; $ws_stats"
report_note "ws closed or refused before the broadcast: ${ws_gone:-none}"
report_note "ws broadcast: $ws_pub -> $ws_fan; $ws_srv"
report_note "ws heap profile: $BENCH_OUT/ws-heap.txt"
for ((i = 1; i <= ws_procs; i++)); do stop_bg "ws-client-$i"; done
stop_bg ws-edgeloop
