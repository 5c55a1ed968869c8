#!/usr/bin/env bash
# ASL interpreter conformance: the pass count over the recorded AWS executions must not drop
# below the committed baseline (crates/asl/conformance-baseline.txt). Skips, with a message,
# only when the data folder ../shared/conformance is absent (a plain clone).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/../shared/conformance"
BASELINE_FILE="$ROOT/crates/asl/conformance-baseline.txt"

if [ ! -d "$DIR" ]; then
    echo "20-conformance: SKIPPED: no conformance data at ../shared/conformance"
    exit 0
fi

baseline="$(tr -dc '0-9' < "$BASELINE_FILE")"
if [ -z "$baseline" ]; then
    echo "20-conformance: FAILED: no baseline number in crates/asl/conformance-baseline.txt"
    exit 1
fi

out="$("$ROOT/scripts/conformance.sh" "$DIR")"
status=$?
echo "$out"
summary="$(echo "$out" | grep -E '^conformance: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)"
if [ -z "$summary" ]; then
    echo "20-conformance: FAILED: the runner printed no summary line (exit $status)"
    exit 1
fi
passed="$(echo "$summary" | sed -E 's/^conformance: ([0-9]+) passed.*/\1/')"
if [ "$passed" -lt "$baseline" ]; then
    echo "20-conformance: FAILED: $passed cases pass, below the baseline of $baseline"
    exit 1
fi
echo "20-conformance: OK: $passed cases pass (baseline $baseline)"
