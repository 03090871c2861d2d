#!/usr/bin/env bash
# testdb.sh start DIR  -> starts a throwaway PostgreSQL cluster in DIR on a free
#                         loopback port and prints its URL on stdout.
# testdb.sh stop DIR   -> stops it (the caller removes DIR).
# Uses initdb and pg_ctl from Debian's postgresql package. As root the cluster
# runs as the 'postgres' user, since PostgreSQL refuses to run as root.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -x "$pgbin/initdb" ] || { echo "testdb: no PostgreSQL server binaries found" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$pgbin/initdb" -D "$dir/data" -U edgeloop --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://edgeloop@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  [ -d "$dir/data" ] && as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: testdb.sh start|stop DIR" >&2; exit 2 ;;
esac
