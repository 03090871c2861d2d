#!/usr/bin/env bash
# Installs what `make test` needs from Debian's packages when it is missing:
# iproute2 (network namespaces for the XDP tests) and PostgreSQL (the data API
# tests' throwaway cluster). BPF objects are committed, so no clang is needed.
# Without root it installs nothing; the tests that need these parts then skip
# (or fail, under EDGELOOP_REQUIRE_BPF=1 / EDGELOOP_REQUIRE_PG=1).
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "${EDGELOOP_TEST_DATABASE_URL:-}" ] && { [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; }; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test-deps: not root, not installing: ${need[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
