# shellcheck shell=bash
# bench/cache.sh — cache hits: edgeloop's response cache against nginx proxy_cache and
# Varnish (malloc storage), same origin, same run, each server pinned to SERVER_CPU.
# Sourced by bench/run.sh after lib.sh (BIN, ORIGIN_BIN and ROOT are set by run.sh):
#
#   bench/run.sh cache                                   the scenario alone
#   CACHE_DURATION=2 CACHE_ROUNDS=1 bench/run.sh cache   a smoke run
#
#   (a) 1 KiB object, 64 connections     (b) 64 KiB object, 64 connections
#   (c) 1 KiB object, 1,024 connections  (errors reported in the table's err column)
#   (d) 1 KiB object, 1,024 connections paced: each waits CACHE_PACE_MS (50) ms on average,
#       uniformly 0..2x, between requests (wrk's delay() hook), about 20,000 requests/s offered in all, a load every
#       server here sustains. (c) saturates the server with a closed loop, where the mean
#       latency is connections / throughput by Little's law (1,024 / 40,000 req/s = 26 ms)
#       whatever the server does; (d) shows the latency at 1,024 connections below saturation.
#       Its rounds last CACHE_PACE_DURATION (15 s): wrk opens its 1,024 connections at once,
#       and the first requests wait behind that connect burst, which in a 4 s round is more
#       than 1% of the requests and so sets the p99 (seen: 22.8 ms in 6 s, 4.0 ms in 20 s).
#
# Every URL is warmed before it is measured, so only hits are timed; the hit headers each
# server sent are kept in $BENCH_OUT/cache-hits.txt. Peers are configured fairly (DESIGN.md): nginx with one pinned worker,
# proxy_cache_lock on, tcp_nopush off, keys zone and cache files under $BENCH_OUT;
# varnishd in the foreground (-F), one malloc store of 256 MiB, workdir under $BENCH_OUT.
# Knobs: CACHE_ROUNDS (2), CACHE_DURATION (4 s per wrk round), CACHE_PORT_BASE (18280),
# CACHE_PACE_MS (50), CACHE_PACE_DURATION (15 s).

cache_rounds=${CACHE_ROUNDS:-2}
cache_dur=${CACHE_DURATION:-4}
cache_port=${CACHE_PORT_BASE:-18280} # origin; nginx +1; varnish +2; edgeloop +3
cache_origin=$cache_port
cache_nginx=$((cache_port + 1))
cache_varnish=$((cache_port + 2))
cache_el=$((cache_port + 3))

# 1,024 client connections plus the servers' own need more than the usual 1,024 files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cache_files() {
  local out user=nobody
  out=$(cd "$BENCH_OUT" && pwd)
  [ "$(id -u)" = 0 ] && user=root
  mkdir -p "$out/nginx-cache-tmp" "$out/nginx-cache" "$out/varnish"

  cat >"$out/edgeloop-cache.yaml" <<EOF
admin: "off"
log: {level: warn, access: false}
rate_limit: {rate: "off"}
limits: {max_connections_per_ip: -1}
guard: {mode: "off"}
cache: {size: 256MiB}
routes:
  - path: /
    upstream: http://127.0.0.1:$cache_origin
    cache: {}
EOF

  cat >"$out/nginx-cache.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
master_process on;
pid $out/nginx-cache.pid;
error_log $out/nginx-cache-error.log warn;
user $user;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    server_tokens off;
    client_body_temp_path $out/nginx-cache-tmp/body;
    proxy_temp_path $out/nginx-cache-tmp/proxy;
    fastcgi_temp_path $out/nginx-cache-tmp/fastcgi;
    uwsgi_temp_path $out/nginx-cache-tmp/uwsgi;
    scgi_temp_path $out/nginx-cache-tmp/scgi;
    proxy_cache_path $out/nginx-cache levels=1:2 keys_zone=edge:10m max_size=256m inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$cache_origin; keepalive 64; keepalive_requests 100000000; }
    server {
        listen 127.0.0.1:$cache_nginx backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF

  cat >"$out/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$cache_origin"; }
EOF
  echo "$out"
}

# cache_check URL SIZE: the response must be a 200 of SIZE bytes (after warming: a hit).
cache_check() {
  local got
  got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "$1")
  if [ "$got" != "200 $2" ]; then
    echo "cache: $1 answered '$got', want '200 $2'" >&2
    return 1
  fi
}

# cache_hit_header URL: print the header that says whether it was a hit.
cache_hit_header() {
  curl -s --max-time 5 -D - -o /dev/null "$1" | tr -d '\r' | grep -iE '^(cache-status|x-cache|age|x-varnish):' | tr '\n' ' '
}

cache_main() {
  local out u size
  out=$(cache_files)
  "$BIN" config check "$out/edgeloop-cache.yaml" >/dev/null

  start_bg origin-c "$CLIENT_CPU" env GOMAXPROCS=1 "$ORIGIN_BIN" -listen "127.0.0.1:$cache_origin"
  start_bg nginx-c "$SERVER_CPU" nginx -e "$out/nginx-cache-error.log" -p "$out" -c "$out/nginx-cache.conf"
  start_bg varnish "$SERVER_CPU" varnishd -F -a "127.0.0.1:$cache_varnish" -f "$out/varnish.vcl" \
    -s malloc,256m -n "$out/varnish" -p thread_pool_min=50
  start_bg el-c "$SERVER_CPU" env GOMAXPROCS=1 "$BIN" serve --config "$out/edgeloop-cache.yaml" \
    --listen "127.0.0.1:$cache_el"
  for u in "$cache_origin" "$cache_nginx" "$cache_varnish" "$cache_el"; do
    wait_http "http://127.0.0.1:$u/" 20 || return 1
  done
  # Each server is measured alone on the server CPU, the others paused (lib.sh).
  BENCH_SOLO=([el-]=el-c [nginx-]=nginx-c [varnish-]=varnish)

  local el="http://127.0.0.1:$cache_el" ng="http://127.0.0.1:$cache_nginx" vn="http://127.0.0.1:$cache_varnish"
  local p1k="/bytes/1024?cc=max-age%3D3600" p64k="/bytes/65536?cc=max-age%3D3600"
  for u in "$el" "$ng" "$vn"; do
    for size in 1024 65536; do
      local path=$p1k
      [ "$size" = 65536 ] && path=$p64k
      cache_check "$u$path" "$size" || return 1 # the miss fills
      cache_check "$u$path" "$size" || return 1
      echo "$u$path: $(cache_hit_header "$u$path")" >>"$BENCH_OUT/cache-hits.txt"
    done
  done

  local r=$cache_rounds d=$cache_dur
  report_note "# cache hits: edgeloop vs nginx proxy_cache vs Varnish malloc, all pinned to CPU $SERVER_CPU; ${d}s x $r rounds"
  ab_rounds "$r" 64 "$d" el-hit-1k "$el$p1k" nginx-hit-1k "$ng$p1k" || return 1
  report el-hit-1k nginx-hit-1k
  ab_rounds "$r" 64 "$d" el-hit-1k "$el$p1k" varnish-hit-1k "$vn$p1k" || return 1
  report el-hit-1k varnish-hit-1k
  ab_rounds "$r" 64 "$d" el-hit-64k "$el$p64k" nginx-hit-64k "$ng$p64k" || return 1
  report el-hit-64k nginx-hit-64k
  ab_rounds "$r" 64 "$d" el-hit-64k "$el$p64k" varnish-hit-64k "$vn$p64k" || return 1
  report el-hit-64k varnish-hit-64k
  ab_rounds "$r" 1024 "$d" el-hit-1k-c1024 "$el$p1k" nginx-hit-1k-c1024 "$ng$p1k" || return 1
  report el-hit-1k-c1024 nginx-hit-1k-c1024
  ab_rounds "$r" 1024 "$d" el-hit-1k-c1024 "$el$p1k" varnish-hit-1k-c1024 "$vn$p1k" || return 1
  report el-hit-1k-c1024 varnish-hit-1k-c1024

  # Uniform in [0, 2 x CACHE_PACE_MS]: a fixed delay would keep the 1,024 connections in
  # step, sending bursts of 1,024 requests at once.
  printf 'function delay() return math.random(0, %d) end\n' "$((2 * ${CACHE_PACE_MS:-50}))" >"$BENCH_OUT/pace.lua"
  report_note "# (d) 1,024 connections, each waiting ${CACHE_PACE_MS:-50} ms on average between requests (offered load below saturation), ${CACHE_PACE_DURATION:-15}s x 1 round"
  BENCH_WRK_EXTRA="-s $BENCH_OUT/pace.lua" ab_rounds 1 1024 "${CACHE_PACE_DURATION:-15}" el-hit-1k-paced "$el$p1k" nginx-hit-1k-paced "$ng$p1k" || return 1
  report el-hit-1k-paced nginx-hit-1k-paced
  BENCH_WRK_EXTRA="-s $BENCH_OUT/pace.lua" ab_rounds 1 1024 "${CACHE_PACE_DURATION:-15}" el-hit-1k-paced "$el$p1k" varnish-hit-1k-paced "$vn$p1k" || return 1
  report el-hit-1k-paced varnish-hit-1k-paced

  for u in el-c varnish nginx-c origin-c; do
    stop_bg "$u"
  done
}

cache_main
