#!/usr/bin/env bash
# The trace page in a real headless browser: starts a local stack of its own (own state
# directory, stack name and pool, stopped again by its pid), runs connection workflows (served,
# invalid input, a failed query caught) and a small load harness with the aws CLI, then drives
# Debian's chromium through playwright-core (scripts/checks/trace-page.mjs): graph and coloured
# path, live refresh of a running execution, a task waiting for its callback, event history, Map
# iterations opening their child's trace, the pool's metrics chart.
# Screenshots go to target/trace-check/.
#
# Needs the local services' variables (scripts/test.sh exports .local/env; run alone, this
# reads .local/env). Installs chromium with apt-get and playwright-core with npm ci when
# missing (scripts/lib/browser.bash); never downloads a browser of its own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT="$ROOT/target/trace-check"

log() { printf 'trace-page: %s\n' "$*" >&2; }
die() { printf 'trace-page: error: %s\n' "$*" >&2; exit 1; }

# --- what the check needs -------------------------------------------------------------------
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  [ -f .local/env ] || die "the local services are not running: scripts/dev-env.sh up (or run scripts/test.sh)"
  set -a
  # shellcheck disable=SC1091
  . .local/env
  set +a
fi
[ -f .local/env ] || die ".local/env is missing: scripts/dev-env.sh up"
command -v aws >/dev/null 2>&1 || die "the aws CLI is missing (scripts/test.sh installs it: pip install awscli)"
# shellcheck source=scripts/lib/browser.bash
. "$ROOT/scripts/lib/browser.bash"
browser_ready

# shellcheck source=scripts/lib/proc.bash
. "$ROOT/scripts/lib/proc.bash"
# shellcheck source=scripts/lib/stack.bash
. "$ROOT/scripts/lib/stack.bash"

log "building the handlers and the stack"
stack_build

# --- a stack of its own ---------------------------------------------------------------------
# Its own state directory, stack name (tables, functions) and pool (the metrics' DBName), so
# that it neither touches nor sees another stack started with scripts/local-stack.sh.
rm -rf "$OUT"
mkdir -p "$OUT/stack"
run_id="tc$$"
pool="trace-$run_id"
trap 'stack_stop "trace-page stack" "$OUT/stack" "$OUT/stack.env"' EXIT
stack_start "$OUT/stack" "$OUT/stack.env" \
  --stack-name "leasehold-$run_id" --parameter "PoolName=$pool" --parameter PoolBudget=4
set -a
# shellcheck disable=SC1091
. "$OUT/stack.env"
set +a
log "stack up at $LOCAL_STACK_URL (pid $(stack_pid "$OUT/stack"), pool $pool)"

# --- executions to look at ------------------------------------------------------------------
start() {
  aws stepfunctions start-execution --endpoint-url "$AWS_ENDPOINT_URL_SFN" \
    --state-machine-arn "$1" --input "$2" --query executionArn --output text
}
# The connection executions take the polling path (Acquire); the harness's children the queued
# one (the default).
connection_arn=$(start "$CONNECTION_STATE_MACHINE_ARN" \
  "{\"pool\": \"$pool\", \"query\": \"listEmployees\", \"params\": {}, \"holdMs\": 200, \"mode\": \"polling\"}")
failed_arn=$(start "$CONNECTION_STATE_MACHINE_ARN" '{"query": "listEmployees"}')
caught_arn=$(start "$CONNECTION_STATE_MACHINE_ARN" "{\"pool\": \"$pool\", \"query\": \"noSuchQuery\", \"mode\": \"polling\"}")
harness_arn=$(start "$HARNESS_STATE_MACHINE_ARN" \
  "{\"iterations\": 3, \"concurrency\": 2, \"pool\": \"$pool\", \"query\": \"listEmployees\", \"params\": {}, \"holdMs\": 300}")

log "browser test (chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}'), playwright-core $PLAYWRIGHT_VERSION)"
TRACE_URL="$LOCAL_STACK_URL" TRACE_POOL="$pool" TRACE_OUT="$OUT" \
  CONNECTION_MACHINE_ARN="$CONNECTION_STATE_MACHINE_ARN" CONNECTION_ARN="$connection_arn" \
  FAILED_ARN="$failed_arn" CAUGHT_ARN="$caught_arn" HARNESS_ARN="$harness_arn" \
  RELEASE_FUNCTION_NAME="$RELEASE_FUNCTION_NAME" \
  node scripts/checks/trace-page.mjs
