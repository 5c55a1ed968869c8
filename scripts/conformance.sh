#!/usr/bin/env bash
# Runs the ASL interpreter (crates/asl) against the Step Functions executions recorded on AWS.
#
#   scripts/conformance.sh [DIR]
#
# DIR defaults to ../shared/conformance (beside the repository). Prints a per-category table
# and the final line `conformance: N passed, M failed`; writes every case's result (and, for a
# failure, the first difference) to $CONFORMANCE_RESULTS (default
# target/conformance/results.json). Exits non-zero when DIR is missing or a case fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$ROOT/../shared/conformance}"

if [ ! -d "$DIR/cases" ]; then
    echo "conformance: no conformance data at '$DIR' (expected '$DIR/cases'); nothing was run" >&2
    exit 2
fi

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
RESULTS="${CONFORMANCE_RESULTS:-$TARGET/conformance/results.json}"
mkdir -p "$(dirname "$RESULTS")"

cd "$ROOT"
# The dev profile is what `cargo test` already built; the 416 cases take about a second.
cargo build --quiet -p leasehold-asl --example conformance
OUT="$("$TARGET/debug/examples/conformance" "$DIR" "$RESULTS")"
echo "$OUT"
echo "results: $RESULTS"
case "$(echo "$OUT" | tail -n 1)" in
    *", 0 failed") exit 0 ;;
    *) exit 1 ;;
esac
