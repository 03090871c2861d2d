# shellcheck shell=bash
# bench/lib.sh — helpers for edgeloop's load benchmarks. Source it; do not run it.
#
# Environment:
#   BENCH_OUT    output directory (logs, generated configs, results.tsv); default bench/out
#   SERVER_CPU   CPU the server under test is pinned to; default 0
#   CLIENT_CPU   CPU wrk (and the origin) are pinned to; default 1
#   BENCH_NICE   nice value for everything started here (e.g. -20 as root on a shared machine,
#                so other work on the box cannot preempt the servers and wrk); default 0
#
# API:
#   start_bg NAME CPU CMD...     start CMD pinned with taskset to CPU, logs in $BENCH_OUT/NAME.log;
#                                its PID is kept under NAME. Use `env VAR=x cmd` to pass variables.
#   stop_bg NAME                 stop it (SIGTERM, then SIGKILL after 5 s), by its PID only
#   wait_http URL [SECS]         wait until URL answers (any HTTP status); default 10 s; 1 if it never does
#   wrk_run LABEL URL CONNS DURATION [wrk args...]
#                                wrk pinned to CLIENT_CPU with --latency (one thread unless the args
#                                say otherwise); appends "LABEL<TAB>rps<TAB>p50_ms<TAB>p99_ms<TAB>errors"
#                                to $BENCH_OUT/results.tsv (errors: socket errors plus non-2xx/3xx)
#   ab_rounds ROUNDS CONNS DURATION LABEL_A URL_A LABEL_B URL_B
#                                alternating A/B wrk rounds (A,B then B,A ...), after one unrecorded
#                                BENCH_WARMUP s warm-up of each; each server alone on SERVER_CPU when the
#                                scenario maps labels to servers in BENCH_SOLO (see below)
#   report LABEL_A LABEL_B       prints the medians of both and the ratios A/B (rps, p99) as a table
#                                row, and appends the row to $BENCH_OUT/report.txt
#   need_free_ports PORT...      fails when something already listens on one of these loopback ports
#                                (another developer's benchmark, say), so a scenario never measures a
#                                server it did not start
#   report_note TEXT             appends a line (a section title, say) to $BENCH_OUT/report.txt
#
# Every process started with start_bg is stopped by PID when the sourcing shell exits (trap on
# EXIT, INT, TERM). Scenario files must not replace that trap; to add their own cleanup they can
# append commands to the BENCH_CLEANUP array. Only loopback URLs are accepted (127.0.0.0/8,
# localhost, [::1]). DURATION is seconds ("10" or "10s"); wrk is additionally bounded by
# `timeout` at DURATION+15 s.

BENCH_OUT=${BENCH_OUT:-bench/out}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_NICE=${BENCH_NICE:-0}
# A process in its first seconds is not what a benchmark should measure: on these VMs
# a fresh edgeloop process still takes hundreds of page faults a second for its first
# ~5 s (memory and code touched for the first time): its p99 in the first second is
# 3-4x its steady one, and its slowest requests stay slower until the faults stop
# (see docs/bench.md, "How the runs are set up").
BENCH_WARMUP=${BENCH_WARMUP:-5}
mkdir -p "$BENCH_OUT"
export BENCH_OUT SERVER_CPU CLIENT_CPU BENCH_NICE BENCH_WARMUP

declare -gA BENCH_PIDS=()
declare -ga BENCH_CLEANUP=()
# BENCH_SOLO maps a result label prefix to the start_bg name of the server that label
# measures (e.g. [el-hit]=el-c [nginx-hit]=nginx-c). When a scenario fills it, ab_rounds
# runs each server alone on SERVER_CPU: the other servers in the map are paused
# (SIGSTOP to their PIDs and their children's) during its rounds and resumed after.
# Idle servers pinned to the same CPU are not idle to the one measured: their timers
# and threads wake on its CPU (seen: edgeloop's paced p99 6-15 ms with four idle Go
# servers beside it, 2.2-4.7 ms alone).
declare -gA BENCH_SOLO=()

bench_log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# _bench_cleanup stops every process this shell started, then runs BENCH_CLEANUP.
_bench_cleanup() {
  local name c
  for name in "${!BENCH_PIDS[@]}"; do
    stop_bg "$name"
  done
  for c in "${BENCH_CLEANUP[@]}"; do
    eval "$c" || true
  done
}
trap '_bench_cleanup' EXIT
trap '_bench_cleanup; trap - EXIT; exit 130' INT
trap '_bench_cleanup; trap - EXIT; exit 143' TERM

start_bg() {
  if [ $# -lt 3 ]; then
    echo "usage: start_bg NAME CPU CMD..." >&2
    return 2
  fi
  local name=$1 cpu=$2
  shift 2
  if [ -n "${BENCH_PIDS[$name]:-}" ]; then
    echo "start_bg: $name is already running (pid ${BENCH_PIDS[$name]})" >&2
    return 1
  fi
  nice -n "$BENCH_NICE" taskset -c "$cpu" "$@" >"$BENCH_OUT/$name.log" 2>&1 </dev/null &
  BENCH_PIDS[$name]=$!
  bench_log "started $name (pid $!, cpu $cpu): $*"
}

# _bench_tree PID prints PID and its descendants' PIDs.
_bench_tree() {
  local c
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null); do
    _bench_tree "$c"
  done
}

# _bench_signal SIG NAME sends SIG to the process started as NAME and to its children.
_bench_signal() {
  local pid=${BENCH_PIDS[$2]:-} p
  [ -n "$pid" ] || return 0
  for p in $(_bench_tree "$pid"); do
    kill "-$1" "$p" 2>/dev/null || true
  done
}

# bench_solo LABEL resumes the server LABEL measures (the longest BENCH_SOLO prefix of
# LABEL) and pauses the other servers of BENCH_SOLO. No-op when BENCH_SOLO is empty or no
# prefix matches.
bench_solo() {
  local label=$1 k best="" name
  [ ${#BENCH_SOLO[@]} -gt 0 ] || return 0
  for k in "${!BENCH_SOLO[@]}"; do
    if [[ $label == "$k"* ]] && [ ${#k} -gt ${#best} ]; then best=$k; fi
  done
  [ -n "$best" ] || return 0
  for name in $(printf '%s\n' "${BENCH_SOLO[@]}" | sort -u); do
    if [ "$name" = "${BENCH_SOLO[$best]}" ]; then
      _bench_signal CONT "$name"
    else
      _bench_signal STOP "$name"
    fi
  done
  sleep 0.2 # let the resumed server catch up on its timers before it is measured
}

# bench_resume_all resumes every server paused by bench_solo.
bench_resume_all() {
  local name
  for name in "${BENCH_SOLO[@]}"; do
    _bench_signal CONT "$name"
  done
}

stop_bg() {
  local name=$1 pid i
  pid=${BENCH_PIDS[$name]:-}
  [ -n "$pid" ] || return 0
  _bench_signal CONT "$name" # a paused process would not act on SIGTERM
  unset 'BENCH_PIDS[$name]'
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      bench_log "$name (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  bench_log "stopped $name (pid $pid)"
}

need_free_ports() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "bench: port $p on 127.0.0.1 is already in use; pick other ports (see the scenario's *_PORT_BASE)" >&2
      return 1
    fi
  done
}

# _bench_loopback URL: succeeds only for http(s) URLs whose host is a loopback address.
_bench_loopback() {
  local url=$1 hostport host
  hostport=${url#*://}
  hostport=${hostport%%/*}
  hostport=${hostport##*@}
  case $hostport in
    \[*\]*) host=${hostport%%]*}; host=${host#[} ;;
    *) host=${hostport%%:*} ;;
  esac
  if ! [[ $host == localhost || $host == ::1 || $host =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]]; then
    echo "bench: refusing non-loopback URL $url" >&2
    return 1
  fi
  case $url in
    http://* | https://*) return 0 ;;
    *) echo "bench: not an http URL: $url" >&2; return 1 ;;
  esac
}

wait_http() {
  local url=$1 secs=${2:-10} deadline
  _bench_loopback "$url" || return 1
  deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if curl -s -o /dev/null --max-time 1 "$url"; then
      return 0
    fi
    sleep 0.1
  done
  echo "wait_http: $url did not answer within ${secs}s" >&2
  return 1
}

# _bench_ms converts a wrk latency ("512.00us", "1.20ms", "2.01s", "1.5m") to milliseconds.
_bench_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

wrk_run() {
  if [ $# -lt 4 ]; then
    echo "usage: wrk_run LABEL URL CONNS DURATION [wrk args...]" >&2
    return 2
  fi
  local label=$1 url=$2 conns=$3 dur=${4%s}
  shift 4
  _bench_loopback "$url" || return 1
  local n=1 out
  while [ -e "$BENCH_OUT/wrk-$label-$n.txt" ]; do n=$((n + 1)); done
  out="$BENCH_OUT/wrk-$label-$n.txt"
  # One wrk thread: the client has one CPU. Caller args come last and win.
  if ! nice -n "$BENCH_NICE" taskset -c "$CLIENT_CPU" timeout -k 5 $((dur + 15)) \
    wrk -t1 -c"$conns" -d"${dur}s" --latency ${BENCH_WRK_EXTRA:-} "$@" "$url" >"$out" 2>&1; then
    echo "wrk_run: wrk failed for $label (see $out)" >&2
    cat "$out" >&2
    return 1
  fi
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  p50=$(_bench_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(_bench_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  errs=$(awk '/Socket errors:/ {gsub(/,/, ""); s += $4 + $6 + $8 + $10}
              /Non-2xx or 3xx responses:/ {s += $5} END {print s + 0}' "$out")
  if [ -z "$rps" ]; then
    echo "wrk_run: no result in $out" >&2
    return 1
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$rps" "$p50" "$p99" "$errs" >>"$BENCH_OUT/results.tsv"
  bench_log "$(printf '%-28s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s' "$label" "$rps" "$p50" "$p99" "$errs")"
}

ab_rounds() {
  if [ $# -ne 7 ]; then
    echo "usage: ab_rounds ROUNDS CONNS DURATION LABEL_A URL_A LABEL_B URL_B" >&2
    return 2
  fi
  local rounds=$1 conns=$2 dur=$3 la=$4 ua=$5 lb=$6 ub=$7 i
  _bench_loopback "$ua" && _bench_loopback "$ub" || return 1
  # Warm-up: fill pools and caches, settle the CPU frequency; not recorded.
  # BENCH_WRK_EXTRA (e.g. "-s pace.lua") applies to every wrk run.
  local wt=$((BENCH_WARMUP + 20))
  bench_solo "$la"
  nice -n "$BENCH_NICE" taskset -c "$CLIENT_CPU" timeout -k 5 "$wt" wrk -t1 -c"$conns" -d"${BENCH_WARMUP}s" ${BENCH_WRK_EXTRA:-} "$ua" >/dev/null 2>&1 || true
  bench_solo "$lb"
  nice -n "$BENCH_NICE" taskset -c "$CLIENT_CPU" timeout -k 5 "$wt" wrk -t1 -c"$conns" -d"${BENCH_WARMUP}s" ${BENCH_WRK_EXTRA:-} "$ub" >/dev/null 2>&1 || true
  local rc=0
  for ((i = 1; i <= rounds; i++)); do
    if ((i % 2)); then
      bench_solo "$la" && wrk_run "$la" "$ua" "$conns" "$dur" || { rc=1; break; }
      bench_solo "$lb" && wrk_run "$lb" "$ub" "$conns" "$dur" || { rc=1; break; }
    else
      bench_solo "$lb" && wrk_run "$lb" "$ub" "$conns" "$dur" || { rc=1; break; }
      bench_solo "$la" && wrk_run "$la" "$ua" "$conns" "$dur" || { rc=1; break; }
    fi
  done
  bench_resume_all
  return $rc
}

# _bench_median LABEL COLUMN prints the median of a results.tsv column for LABEL.
_bench_median() {
  awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$BENCH_OUT/results.tsv" 2>/dev/null |
    sort -g | awk '{v[NR] = $1} END {
      if (NR == 0) { print "-"; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

report_note() { echo "$*" >>"$BENCH_OUT/report.txt"; }

# report_header prints the column names of report's rows.
report_header() {
  printf '%-24s %-24s %9s %9s %6s %8s %8s %8s %8s %6s %5s\n' \
    A B rps_A rps_B A/B p50_A p50_B p99_A p99_B A/B n
}

report() {
  local la=$1 lb=$2 ra rb pa pb qa qb ea eb n rr qr
  ra=$(_bench_median "$la" 2) rb=$(_bench_median "$lb" 2)
  pa=$(_bench_median "$la" 3) pb=$(_bench_median "$lb" 3)
  qa=$(_bench_median "$la" 4) qb=$(_bench_median "$lb" 4)
  ea=$(awk -F'\t' -v l="$la" '$1 == l {s += $5} END {print s + 0}' "$BENCH_OUT/results.tsv" 2>/dev/null)
  eb=$(awk -F'\t' -v l="$lb" '$1 == l {s += $5} END {print s + 0}' "$BENCH_OUT/results.tsv" 2>/dev/null)
  n=$(awk -F'\t' -v l="$la" '$1 == l {n++} END {print n + 0}' "$BENCH_OUT/results.tsv" 2>/dev/null)
  rr=$(awk -v a="$ra" -v b="$rb" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
  qr=$(awk -v a="$qa" -v b="$qb" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
  local row
  # rps medians of an even number of rounds are averages: show whole requests/s.
  [ "$ra" = - ] || ra=$(printf '%.0f' "$ra")
  [ "$rb" = - ] || rb=$(printf '%.0f' "$rb")
  row=$(printf '%-24s %-24s %9s %9s %6s %8s %8s %8s %8s %6s %5s' \
    "$la" "$lb" "$ra" "$rb" "$rr" "$pa" "$pb" "$qa" "$qb" "$qr" "$n")
  # Rounds of A and B run next to each other (ab_rounds alternates them), so
  # each pair's ratio is measured in one machine state; on a machine whose
  # speed drifts between rounds the pairs say more than the medians do.
  local pairs
  # A label may be in several comparisons (el-hit-1k against nginx, then
  # Varnish): pair a row of A with the row of B next to it among A's and
  # B's rows, each row in one pair at most.
  pairs=$(awk -F'\t' -v a="$la" -v b="$lb" '
    $1 != a && $1 != b {next}
    prev != "" && $1 != prev && !used { ra = ($1 == a) ? $2 : pv; rb = ($1 == b) ? $2 : pv
      if (rb > 0) s = s (s == "" ? "" : ",") sprintf("%.2f", ra / rb); used = 1; prev = $1; pv = $2; next }
    {prev = $1; pv = $2; used = 0}
    END {print s}' "$BENCH_OUT/results.tsv" 2>/dev/null)
  if [ -n "$pairs" ] && [ "$n" -gt 1 ]; then
    row="$row  pairs: $pairs"
  fi
  if [ "$((ea + eb))" -gt 0 ]; then
    row="$row  errors: $la=$ea $lb=$eb"
  fi
  report_header
  echo "$row"
  echo "$row" >>"$BENCH_OUT/report.txt"
}
