#!/usr/bin/env bash
# The README's main command, small, end to end: scripts/demo.sh with bad options (exit 2 and a
# plain message), then a small run, a small run with container kills and a harness stopped
# part way, and a run with more kills (the queued run must still leave no lease and no waiter
# behind and never go above the budget), each checked from its JSON report by
# scripts/demo/check_report.py, and the HTML report in headless chromium
# (scripts/demo/report-page.mjs). Each demo runs the load three times (queued, polling,
# ungoverned). Then one small hotspot scenario (two applications on one pool: the steady one
# alone, both ungoverned, on one shared pool and with shares), checked from its JSON
# (check_report.py --hotspot) and its page (scripts/demo/hotspot-page.mjs). Reports and
# screenshots go to target/demo-check/.
#
# MariaDB's max_connections is lowered to 10 for the runs and put back afterwards by the demo
# itself. Runs alone too: scripts/demo.sh starts the local services when they are not running.
# Installs chromium with apt-get and playwright-core with npm ci when missing
# (scripts/lib/browser.bash).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT="$ROOT/target/demo-check"
# Small, and far above the budget: max_connections 10 leaves a budget of 3 (80 % minus the
# reserve of 5) for 20 concurrent executions.
LOAD=(--executions 40 --concurrency 20 --hold-ms 500 --max-connections 10)

log() { printf '30-demo: %s\n' "$*" >&2; }
die() { printf '30-demo: error: %s\n' "$*" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"

# --- bad options: exit 2, the option named, no trace -------------------------------------------
bad_option() {
  local needle=$1 status=0
  shift
  scripts/demo.sh "$@" >"$OUT/bad.out" 2>"$OUT/bad.err" || status=$?
  if [ "$status" -ne 2 ] || ! grep -qF -- "$needle" "$OUT/bad.err" || grep -qiE 'panicked|traceback' "$OUT/bad.err"; then
    cat "$OUT/bad.err" >&2
    die "scripts/demo.sh $* exited $status; wanted 2 with \"$needle\""
  fi
}
bad_option "--executions: must be between 1 and 1000" --executions 0
bad_option "--concurrency: must be between 1 and 40" --concurrency 41
bad_option "--hold-ms: not a whole number" --hold-ms soon
bad_option "--kill-probability: must be between 0 and 0.5" --kill-probability 0.9
bad_option "--kill-probability: not a number" --kill-probability=often
bad_option "--budget: 18 plus the admin reserve" --budget 18
bad_option "--seed needs a value" --seed
bad_option "unknown option '--fast'" --fast
bad_option "--report: needs a file path" --report ""
bad_option "--abort-harness-after: must be between 1 and 600" --abort-harness-after 0
bad_option "--scenario: queue or hotspot" --scenario hot
bad_option "--hot-max: only with --scenario hotspot" --hot-max 3
bad_option "--executions: not with --scenario hotspot" --scenario hotspot --executions 10
bad_option "add up to more than the budget 11" --scenario hotspot --steady-reserved 10
bad_option "--steady-max: 2 is below the reservation 4" --scenario hotspot --steady-max 2
bad_option "--hot-start-ms: must be between 0 and 60000" --scenario hotspot --hot-start-ms 60001
bad_option "--hot-start-ms: only with --scenario hotspot" --hot-start-ms 100
log "bad options: exit 2 with a plain message"

# --- what the browser check needs ------------------------------------------------------------
# shellcheck source=scripts/lib/browser.bash
. "$ROOT/scripts/lib/browser.bash"
browser_ready

# --- a small demo, then one with kills ---------------------------------------------------------
run_demo() {
  local name=$1 status=0 start=$SECONDS
  shift
  log "scripts/demo.sh ${LOAD[*]} $* --report target/demo-check/$name/report.json"
  scripts/demo.sh "${LOAD[@]}" "$@" --report "$OUT/$name/report.json" >"$OUT/$name.out" 2>"$OUT/$name.err" || status=$?
  cat "$OUT/$name.out"
  [ "$status" -eq 0 ] || { tail -n 20 "$OUT/$name.err" >&2; die "the $name demo exited $status"; }
  log "the $name demo took $((SECONDS - start)) s"
}

run_demo plain
python3 scripts/demo/check_report.py "$OUT/plain/report.json"

# Kills on the acquire, query and release functions: a probability at which every function
# loses containers in 40 executions, yet three kills of the same release in a row (the only
# way a served execution keeps its lease until expiry) stay unlikely. Each governed harness is
# also stopped mid-load and started again: the stopped children's queries run on, and the
# budget must hold all the same.
run_demo kills --kill-probability 0.05 --seed 7 --abort-harness-after 3
python3 scripts/demo/check_report.py "$OUT/kills/report.json" --kills --aborted

# Kills alone, more of them and on a longer load: one acquire, query or release in ten dies in
# the middle. A killed acquire may have queued its request, a killed release may have handed
# its slot over: still, at the end no lease and no waiter may be left (counters and records),
# and the connections never above the budget. The demo's exit status counts only these
# promises when faults are injected; check_report reads them again from the JSON (the queued
# run's leases and waiters at the end, its peak against the budget, its kills).
run_demo queued-kills --executions 60 --kill-probability 0.1 --seed 11
python3 scripts/demo/check_report.py "$OUT/queued-kills/report.json" --kills

node scripts/demo/report-page.mjs "$OUT/plain/report.html" "$OUT/report.png"

# The hotspot scenario, small: max_connections 12 leaves a budget of 4; the steady application
# runs 2 at once (reserved 1), the hot one 16 (reserved 1, and by default at most 4 - 2 = 2).
# The promises (no DatabaseBusy with leases, budget and every max kept, nothing left) decide;
# the goals are timing and only shown.
HOTSPOT=(--scenario hotspot --max-connections 12 --hold-ms 500 --steady-executions 10
  --steady-concurrency 2 --steady-reserved 1 --hot-executions 24 --hot-concurrency 16
  --hot-reserved 1)
status=0
start=$SECONDS
log "scripts/demo.sh ${HOTSPOT[*]} --report target/demo-check/hotspot/report.json"
scripts/demo.sh "${HOTSPOT[@]}" --report "$OUT/hotspot/report.json" >"$OUT/hotspot.out" 2>"$OUT/hotspot.err" || status=$?
cat "$OUT/hotspot.out"
[ "$status" -eq 0 ] || { tail -n 20 "$OUT/hotspot.err" >&2; die "the hotspot demo exited $status"; }
log "the hotspot demo took $((SECONDS - start)) s"
python3 scripts/demo/check_report.py "$OUT/hotspot/report.json" --hotspot
node scripts/demo/hotspot-page.mjs "$OUT/hotspot/report.html" "$OUT/hotspot.png"
log "all demo checks passed"
