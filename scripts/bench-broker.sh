#!/usr/bin/env bash
# Benchmark of the lease broker (not a test): acquire + release latency next to the raw
# DynamoDB calls they make, and the throughput of 32 holders sharing a pool of 8.
#
#   scripts/bench-broker.sh [ITERATIONS]     (default 200)
#
# Runs against the local moto server (started when needed, stopped again afterwards), in a
# debug build: the time goes to the HTTP round trips, which both columns share.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
case "${1:-200}" in
  ''|*[!0-9]*) echo "usage: scripts/bench-broker.sh [ITERATIONS]" >&2; exit 2 ;;
esac
if ! scripts/dev-env.sh status >/dev/null 2>&1; then
  scripts/dev-env.sh up
  trap 'scripts/dev-env.sh down' EXIT
fi
set -a; . .local/env; set +a
cargo run --quiet -p leasehold-broker --example lease_latency -- "${1:-200}"
