#!/usr/bin/env bash
# Make sure the servers and tools the test suite starts for itself are installed:
# PostgreSQL server binaries (initdb/postgres), redis-server, and promtool (from
# Debian's `prometheus` package; it checks deploy/prometheus/). Skipped for a
# server whose TEST_*_URL points at one already running.
set -euo pipefail

need=()
if [[ -z "${TEST_DATABASE_URL:-}" ]] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [[ -z "${TEST_REDIS_URL:-}" ]] && ! command -v redis-server >/dev/null 2>&1; then
  need+=(redis-server)
fi
if ! command -v promtool >/dev/null 2>&1; then
  need+=(prometheus)
fi
if [[ ${#need[@]} -eq 0 ]]; then
  exit 0
fi

echo "installing test servers: ${need[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "error: need ${need[*]} for the test suite and cannot install them without root;" >&2
    echo "install them, or set TEST_DATABASE_URL / TEST_REDIS_URL to running servers" >&2
    echo "(promtool comes with Debian's prometheus package)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
# Debian starts packaged servers where it can; the suite runs its own on free ports.
for service in postgresql redis-server prometheus; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
