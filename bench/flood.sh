# shellcheck shell=bash
# bench/flood.sh — a connect storm from a few attacker addresses while one legitimate
# client runs wrk, with edgeloop's guard in XDP (native) mode, in user-space mode and
# off. Sourced by bench/run.sh after lib.sh (BIN is set by run.sh):
#
#   bench/run.sh flood                                      the scenario alone (~70 s)
#   FLOOD_DURATION=2 bench/run.sh flood                     a smoke run
#
# Everything happens inside two network namespaces this scenario creates and removes
# (fl-srv-*, fl-cli-*), joined by a veth pair: edgeloop listens on 10.79.0.1:8080 in
# the server namespace with the XDP guard on its veth end; in the client namespace
# 10.79.0.2 runs wrk (16 keep-alive connections, GET / of the built-in site) and
# 10.79.0.10-17 run bench/flood (32 connectors each, connect then reset, as fast as
# they can). guard.syn_rate is 100/s per source (burst 50), far below the storm and
# far above the legitimate client's 16 connections.
#
# For each mode: a quiet wrk round, a wrk round under the storm, then the storm alone
# for as long. Reported: the legitimate client's requests/s and p99 (flood vs quiet:
# the share it keeps), and edgeloop's CPU seconds (utime+stime from /proc/PID/stat)
# in each of the three windows; "flood alone" is what the attack itself costs it.
# Note: XDP on a veth runs in the softirq of the sending CPU (the client's), so the
# drops cost edgeloop's process nothing; on a NIC they cost the receiving CPU's
# softirq time, which /proc/PID/stat does not show either.
# On one 2-CPU machine the attacker shares CLIENT_CPU with the legitimate wrk (on a real
# network its CPU is on other hosts), and veth processes every packet, the XDP program's
# drops included, on the sending CPU. So the legitimate client loses CPU to the attacker
# whatever edgeloop does: the report gives the attacker's own CPU seconds in the
# flood+wrk window beside edgeloop's.
# Needs root (namespaces, XDP). Knobs: FLOOD_DURATION (5 s per round), FLOOD_CONNS (16),
# FLOOD_WORKERS (32 per attacker address), FLOOD_ATTACKER_NICE (0; 19 makes the attacker
# yield CLIENT_CPU to wrk, which also throttles the storm while wrk runs).

flood_dur=${FLOOD_DURATION:-5}
flood_conns=${FLOOD_CONNS:-16}
flood_workers=${FLOOD_WORKERS:-32}
flood_nice=${FLOOD_ATTACKER_NICE:-0}

if [ "$(id -u)" != 0 ] || ! command -v nsenter >/dev/null || ! command -v ip >/dev/null; then
  bench_log "flood: needs root, ip and nsenter; skipped"
  report_note "# flood: skipped (needs root)"
  return 0
fi

flood_id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
flood_srv=fl-srv-$flood_id
flood_cli=fl-cli-$flood_id
flood_pin=/sys/fs/bpf/edgeloop-bench-$flood_id
flood_cg=edgeloop-bench-$flood_id
flood_bin=$BENCH_OUT/flood

go build -o "$flood_bin" ./bench/flood

ip netns add "$flood_srv"
BENCH_CLEANUP+=("ip netns del $flood_srv")
ip netns add "$flood_cli"
BENCH_CLEANUP+=("ip netns del $flood_cli")
# Pins and the cgroup go once the servers have stopped (lib.sh stops them first).
BENCH_CLEANUP+=("rm -f $flood_pin/* && rmdir $flood_pin")
BENCH_CLEANUP+=("rmdir /sys/fs/cgroup/unified/$flood_cg 2>/dev/null")
ip link add "vfc$flood_id" netns "$flood_cli" type veth peer name "vfs$flood_id" netns "$flood_srv"
ip -n "$flood_srv" link set lo up
ip -n "$flood_cli" link set lo up
ip -n "$flood_srv" link set "vfs$flood_id" up
ip -n "$flood_cli" link set "vfc$flood_id" up
ip -n "$flood_srv" addr add 10.79.0.1/24 dev "vfs$flood_id"
# The first address is the source of wrk's connections; the attackers bind theirs.
ip -n "$flood_cli" addr add 10.79.0.2/24 dev "vfc$flood_id"
flood_srcs=""
for i in $(seq 10 17); do
  ip -n "$flood_cli" addr add "10.79.0.$i/24" dev "vfc$flood_id"
  flood_srcs="$flood_srcs${flood_srcs:+,}10.79.0.$i"
done

in_srv() { nsenter --net="/var/run/netns/$flood_srv" "$@"; }
in_cli() { nsenter --net="/var/run/netns/$flood_cli" "$@"; }

# flood_cpu NAME prints the CPU seconds (utime+stime) of the process started as NAME.
flood_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/${BENCH_PIDS[$1]}/stat"
}

# flood_wrk LABEL: wrk from the legitimate address inside the client namespace,
# recorded in results.tsv like lib.sh's wrk_run (which takes loopback URLs only).
flood_wrk() {
  local label=$1 n=1 out
  while [ -e "$BENCH_OUT/wrk-$label-$n.txt" ]; do n=$((n + 1)); done
  out="$BENCH_OUT/wrk-$label-$n.txt"
  in_cli nice -n "${BENCH_NICE:-0}" taskset -c "$CLIENT_CPU" timeout -k 5 $((flood_dur + 15)) \
    wrk -t1 -c"$flood_conns" -d"${flood_dur}s" --timeout 2s --latency http://10.79.0.1:8080/ >"$out" 2>&1 || {
    echo "flood: wrk failed for $label (see $out)" >&2
    return 1
  }
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  p50=$(_bench_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(_bench_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  errs=$(awk '/Socket errors:/ {gsub(/,/, ""); s += $4 + $6 + $8 + $10}
              /Non-2xx or 3xx responses:/ {s += $5} END {print s + 0}' "$out")
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "${rps:-0}" "$p50" "$p99" "$errs" >>"$BENCH_OUT/results.tsv"
  bench_log "$(printf '%-24s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s' "$label" "$rps" "$p50" "$p99" "$errs")"
}

report_note "# flood: legitimate client under a connect storm from 8 addresses (attacker at nice $flood_nice); A = under flood, B = quiet"
for mode in xdp userspace off; do
  gmode=$mode
  [ "$mode" = xdp ] && gmode=native
  cfg=$BENCH_OUT/edgeloop-flood-$mode.yaml
  cat >"$cfg" <<EOF
log: {level: warn, access: false}
rate_limit: {rate: "off"}
guard:
  mode: $gmode
  syn_rate: 100/s
  syn_burst: 50
  pin_path: $flood_pin
  cgroup: $flood_cg
EOF
  # nsenter and taskset exec, so the PID kept is edgeloop's own.
  start_bg "flood-srv-$mode" "$SERVER_CPU" nsenter --net="/var/run/netns/$flood_srv" \
    "$BIN" serve --config "$cfg" --listen 10.79.0.1:8080 --admin 127.0.0.1:18191
  for _ in $(seq 100); do
    in_cli curl -s -o /dev/null --max-time 1 http://10.79.0.1:8080/ && break
    sleep 0.1
  done
  grep -h 'guard: mode' "$BENCH_OUT/flood-srv-$mode.log" >&2 || true

  c0=$(flood_cpu "flood-srv-$mode")
  flood_wrk "flood-$mode-quiet"
  c1=$(flood_cpu "flood-srv-$mode")

  start_bg "flood-atk-$mode" "$CLIENT_CPU" nsenter --net="/var/run/netns/$flood_cli" \
    nice -n "$flood_nice" "$flood_bin" -target 10.79.0.1:8080 -src "$flood_srcs" -workers "$flood_workers" -duration "$((2 * flood_dur + 3))s"
  sleep 1
  c2=$(flood_cpu "flood-srv-$mode")
  a2=$(flood_cpu "flood-atk-$mode")
  flood_wrk "flood-$mode-flood"
  c3=$(flood_cpu "flood-srv-$mode")
  a3=$(flood_cpu "flood-atk-$mode")
  # The storm alone: what the attack itself costs edgeloop.
  sleep "$flood_dur"
  c4=$(flood_cpu "flood-srv-$mode")
  # The attacker stops by itself (-duration) and then prints its counts.
  for _ in $(seq 100); do
    kill -0 "${BENCH_PIDS[flood-atk-$mode]}" 2>/dev/null || break
    sleep 0.1
  done
  stop_bg "flood-atk-$mode"
  cat "$BENCH_OUT/flood-atk-$mode.log" >&2
  if [ "$mode" != off ]; then
    in_srv "$BIN" guard status --admin 127.0.0.1:18191 | sed -n '1,7p' >&2 || true
  fi
  stop_bg "flood-srv-$mode"

  report flood-$mode-flood flood-$mode-quiet
  report_note "$(printf '  %s: edgeloop CPU s per %s s: quiet %s, flood+wrk %s (attacker %s), flood alone %s; attacker: %s' \
    "$mode" "$flood_dur" "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v a="$c2" -v b="$c3" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v a="$a2" -v b="$a3" 'BEGIN {printf "%.2f", b - a}')" \
    "$(awk -v a="$c3" -v b="$c4" 'BEGIN {printf "%.2f", b - a}')" \
    "$(tail -n1 "$BENCH_OUT/flood-atk-$mode.log")")"
done
