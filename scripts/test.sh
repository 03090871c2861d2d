#!/usr/bin/env bash
# The test command behind `make test`: installs missing test dependencies,
# starts a throwaway PostgreSQL unless EDGELOOP_TEST_DATABASE_URL is given,
# and runs every Go test. Under CI=true, tests that need root, BPF or
# PostgreSQL fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh

if [ "${CI:-}" = true ]; then
  export EDGELOOP_REQUIRE_BPF=1 EDGELOOP_REQUIRE_PG=1
fi

pgdir=""
cleanup() { if [ -n "$pgdir" ]; then scripts/testdb.sh stop "$pgdir"; rm -rf "$pgdir"; fi; }
trap cleanup EXIT
if [ -z "${EDGELOOP_TEST_DATABASE_URL:-}" ]; then
  pgdir=$(mktemp -d /tmp/edgeloop-pg.XXXXXX)
  if url=$(scripts/testdb.sh start "$pgdir"); then
    export EDGELOOP_TEST_DATABASE_URL="$url"
    echo "test: throwaway PostgreSQL at $url"
  else
    echo "test: could not start PostgreSQL; database tests will skip (or fail under CI)" >&2
  fi
fi

go vet ./...
# Stage timing is compiled in only with -tags stagetime (internal/stagetime):
# check that build too, and that its timestamps come out in order.
go vet -tags stagetime ./...
go test -count=1 -timeout 14m "${@:-./...}"
if [ $# -eq 0 ]; then
  go test -count=1 -tags stagetime -run 'TestStageTimes' ./internal/fairpoll
  # The end-to-end tests once more with one scheduler slot, as each worker
  # and every server pinned to one CPU runs: connections are then read in
  # arrival order with lazily set deadlines (tune.wake_order auto).
  GOMAXPROCS=1 go test -count=1 -timeout 10m ./cmd/...
fi
