#!/usr/bin/env bash
# bench/run.sh — edgeloop's load benchmarks (`make bench`). Each bench/*.sh scenario
# (core.sh first, then the others in name order; not lib.sh or run.sh) runs in its own
# shell with bench/lib.sh sourced, bounded in time; every process it starts is stopped
# by PID when it ends. One results table is printed at the end and kept in
# $BENCH_OUT/report.txt; raw wrk output and logs stay in $BENCH_OUT.
#
#   make bench                                     full run (about 8 minutes for core.sh)
#   BENCH_DURATION=3 ROUNDS=1 GOBENCH_TIME=100x bench/run.sh core   a quick smoke run
#
# Arguments name the scenarios to run (default: all). Environment: BENCH_OUT (bench/out),
# SERVER_CPU (0), CLIENT_CPU (1), ROUNDS (3), BENCH_DURATION (8, seconds per wrk round),
# BENCH_WARMUP (5, seconds of unrecorded load on each server before its A/B rounds),
# BENCH_CONNS (64), GOBENCH_TIME (1s, or "off"), SCENARIO_TIMEOUT (core 600 s, cache 360 s, others 180 s),
# BENCH_NO_BUILD (set: do not rebuild; measure $BIN, default bin/edgeloop).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export ROOT
export BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out}
export SERVER_CPU=${SERVER_CPU:-0} CLIENT_CPU=${CLIENT_CPU:-1}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bench: installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bench: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
if [ "$(nproc)" -lt 2 ] || [ "$SERVER_CPU" = "$CLIENT_CPU" ]; then
  echo "bench: need two CPUs (SERVER_CPU=$SERVER_CPU, CLIENT_CPU=$CLIENT_CPU, nproc=$(nproc))" >&2
  exit 1
fi

rm -rf "$BENCH_OUT"
mkdir -p "$BENCH_OUT"
export BIN=${BIN:-$ROOT/bin/edgeloop} ORIGIN_BIN=$BENCH_OUT/origin
# BENCH_NO_BUILD=1 measures the binary already built: $BIN, default bin/edgeloop.
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  go build -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
    -o "$BIN" ./cmd/edgeloop
fi
[ -x "$BIN" ] || { echo "bench: no $BIN; run make build" >&2; exit 1; }
go build -o "$ORIGIN_BIN" ./bench/origin

scenarios=()
if [ $# -gt 0 ]; then
  for s in "$@"; do scenarios+=("bench/${s%.sh}.sh"); done
else
  [ -f bench/core.sh ] && scenarios+=(bench/core.sh)
  for f in bench/*.sh; do
    case $f in bench/lib.sh | bench/run.sh | bench/core.sh) ;; *) scenarios+=("$f") ;; esac
  done
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
failed=()
for f in "${scenarios[@]}"; do
  [ -f "$f" ] || { echo "bench: no scenario $f" >&2; failed+=("$f"); continue; }
  name=$(basename "$f" .sh)
  case $name in core) deflimit=600 ;; cache) deflimit=360 ;; *) deflimit=180 ;; esac
  limit=${SCENARIO_TIMEOUT:-$deflimit}
  echo "bench: === $name (at most ${limit}s, load $(cut -d' ' -f1 /proc/loadavg)) ==="
  # timeout signals the whole process group (servers included) if the scenario overruns;
  # the scenario shell's trap then stops what it started, by PID.
  if ! timeout -k 30 "$limit" bash -c 'set -euo pipefail; source bench/lib.sh; source "$1"' _ "$f"; then
    echo "bench: scenario $name failed or timed out (see $BENCH_OUT)" >&2
    failed+=("$name")
    echo "# $name: FAILED (see its logs in $BENCH_OUT)" >>"$BENCH_OUT/report.txt"
  fi
done

{
  echo
  echo "edgeloop benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), $(git describe --tags --always --dirty 2>/dev/null || echo dev)"
  echo "kernel $(uname -r); CPU $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc);" \
    "server CPU $SERVER_CPU, client CPU $CLIENT_CPU"
  echo "load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg); took $((SECONDS - started)) s"
  echo "rps = requests/s (median of rounds), p50/p99 in ms, A/B = ratio of A to B; n = rounds"
  echo
  source bench/lib.sh
  trap - EXIT INT TERM
  report_header
  cat "$BENCH_OUT/report.txt" 2>/dev/null || true
} | tee "$BENCH_OUT/summary.txt"

if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
