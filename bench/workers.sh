# shellcheck shell=bash
# bench/workers.sh — one serving process against `workers: 2` (a supervisor and two
# CPU-pinned SO_REUSEPORT workers), and GOMAXPROCS 1 against 2 in one pinned process,
# same run. Sourced by bench/run.sh after lib.sh (BIN is set by run.sh):
#
#   bench/run.sh workers                                       the scenario alone
#   WORKERS_DURATION=2 WORKERS_ROUNDS=1 bench/run.sh workers   a smoke run
#
#   (a) one process pinned to SERVER_CPU  vs  workers: 2 on SERVER_CPU and CLIENT_CPU
#   (b) one process pinned to SERVER_CPU with GOMAXPROCS=1 vs GOMAXPROCS=2
#
# All serve the built-in default site (1,969 bytes) from memory over 64 connections.
# On a 2-CPU machine the second worker shares CLIENT_CPU with wrk: (a) shows what a
# second worker costs and gains when the load generator competes with it, not the
# scaling of a many-core host (see docs/workers.md).
# Knobs: WORKERS_ROUNDS (2), WORKERS_DURATION (5 s per wrk round), WORKERS_CONNS (64),
# WORKERS_PORT_BASE (18380: one process, +1 workers, +2 GOMAXPROCS=1, +3 GOMAXPROCS=2).

workers_rounds=${WORKERS_ROUNDS:-2}
workers_dur=${WORKERS_DURATION:-5}
workers_conns=${WORKERS_CONNS:-64}
workers_port=${WORKERS_PORT_BASE:-18380}

need_free_ports "$workers_port" $((workers_port + 1)) $((workers_port + 2)) $((workers_port + 3))

workers_cfg=$BENCH_OUT/edgeloop-workers.yaml
cat >"$workers_cfg" <<EOF
admin: "off"
log: {level: warn, access: false}
rate_limit: {rate: "off"}
limits: {max_connections_per_ip: -1}
guard: {mode: "off"}
EOF

# (a) one process vs two pinned workers. The supervisor is started on both CPUs so
# that it may pin one worker to each.
start_bg wk-one "$SERVER_CPU" "$BIN" serve --config "$workers_cfg" --listen "127.0.0.1:$workers_port" --workers 1
start_bg wk-two "$SERVER_CPU,$CLIENT_CPU" "$BIN" serve --config "$workers_cfg" --listen "127.0.0.1:$((workers_port + 1))" --workers 2
wait_http "http://127.0.0.1:$workers_port/"
wait_http "http://127.0.0.1:$((workers_port + 1))/"
ab_rounds "$workers_rounds" "$workers_conns" "$workers_dur" \
  one-process "http://127.0.0.1:$workers_port/" \
  workers-2 "http://127.0.0.1:$((workers_port + 1))/"
stop_bg wk-one
stop_bg wk-two
report_note "# workers: one process pinned to CPU $SERVER_CPU vs workers: 2 on CPUs $SERVER_CPU,$CLIENT_CPU (wrk on $CLIENT_CPU too)"
report one-process workers-2

# (b) GOMAXPROCS in a pinned process (what each worker is).
start_bg wk-g1 "$SERVER_CPU" env GOMAXPROCS=1 "$BIN" serve --config "$workers_cfg" --listen "127.0.0.1:$((workers_port + 2))"
start_bg wk-g2 "$SERVER_CPU" env GOMAXPROCS=2 "$BIN" serve --config "$workers_cfg" --listen "127.0.0.1:$((workers_port + 3))"
wait_http "http://127.0.0.1:$((workers_port + 2))/"
wait_http "http://127.0.0.1:$((workers_port + 3))/"
ab_rounds "$workers_rounds" "$workers_conns" "$workers_dur" \
  pinned-gomaxprocs-1 "http://127.0.0.1:$((workers_port + 2))/" \
  pinned-gomaxprocs-2 "http://127.0.0.1:$((workers_port + 3))/"
stop_bg wk-g1
stop_bg wk-g2
report_note "# workers: one process pinned to CPU $SERVER_CPU, GOMAXPROCS=1 vs 2"
report pinned-gomaxprocs-1 pinned-gomaxprocs-2
