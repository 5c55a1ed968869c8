#!/usr/bin/env bash
# The main demo: the same load three times on the local stack, one run after another: through
# leasehold's connection workflow with requests queued for a slot (queued), the same workflow
# retrying with backoff (polling), and the same query function without leases (ungoverned),
# against a MariaDB with a deliberately small max_connections; then a report with the numbers.
# With --scenario hotspot: two applications on one pool, a steady one and a hot one bursting to
# several times the budget, run as the steady one alone, both ungoverned, both on one shared
# pool and both on the pool divided between them (shares), all queued.
#
#   scripts/demo.sh [OPTIONS]     set up what is missing, run the scenario, report, stop what it started
#   scripts/demo.sh down          stop a stack left running with --keep (and what it started)
#
# Options (defaults in brackets):
#   --scenario S           queue: queued, polling, ungoverned; hotspot: two applications [queue]
#   --executions N         connection workflows per run, 1..1000 [300]
#   --concurrency C        how many run at once, 1..40 [40]
#   --hold-ms H            how long each query holds its connection, 0..30000 ms [1000]
#   --budget B             the pool's budget [derived: 80 % of max_connections minus the reserve]
#   --max-connections M    MariaDB's max_connections during the demo, 10..10000 [20]
#   --kill-probability P   kill a container of the acquire, query and release functions in the
#                          middle of an invocation with probability P, 0..0.5 [0]
#   --seed S               seed of fault injection and ids [1]
#   --abort-harness-after S  stop each run's load harness after S seconds, 1..600, and start the
#                          same load again at once, as an operator would [off]
#   --report PATH          the JSON report [.local/demo/report.json]; the HTML page goes beside it
#   --keep                 leave the stack (and the services) running for exploring
#
# Hotspot scenario only (--executions, --concurrency, --kill-probability and
# --abort-harness-after belong to the queue scenario; the other options apply to both):
#   --steady-executions N  the steady application's executions per run, 1..1000 [150]
#   --steady-concurrency C how many of them run at once, 1..40 [6]
#   --steady-reserved R    its reservation of the budget [4]
#   --steady-max M         its ceiling, R..budget [the budget]
#   --hot-executions N     the hot application's executions per run, 1..1000 [240]
#   --hot-concurrency C    how many of them run at once, 1..40 [40]
#   --hot-reserved R       its reservation of the budget [2]
#   --hot-max M            its ceiling, R..budget [the budget minus the steady concurrency]
#   --hot-start-ms T       how long after the steady application the hot one starts in the
#                          runs of both, 0..60000 ms [twice --hold-ms; 0: together]
#
# The report's fields are described in docs/report.md. The first run builds the workspace
# (a few minutes on 2 cores); later runs take about as long as the three load runs.
set -euo pipefail

CALLER_DIR=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE="$ROOT/.local/demo"
STACK_STATE="$STATE/stack"
STACK_ENV="$STATE/stack.env"
STARTED_DEV_ENV="$STATE/started-dev-env"
SAVED_MAX="$STATE/max-connections-before"
STACK_NAME=leasehold-demo
RESERVE=5
BUDGET_PERCENT=80

log() { printf 'demo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
# The header comment above, without the shebang and the code after it.
usage() { sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }
bad() {
  printf 'demo: %s\n' "$*" >&2
  printf 'demo: see scripts/demo.sh --help\n' >&2
  exit 2
}

# shellcheck source=scripts/lib/proc.bash
. "$ROOT/scripts/lib/proc.bash"
# shellcheck source=scripts/lib/stack.bash
. "$ROOT/scripts/lib/stack.bash"

# A whole number between two bounds, or exit 2 naming the option.
whole() {
  local flag=$1 value=$2 low=$3 high=$4
  [[ $value =~ ^[0-9]+$ ]] || bad "$flag: not a whole number: '$value'"
  # Compare as strings of digits first so that huge values cannot overflow the shell.
  if [ ${#value} -gt 12 ] || [ $((10#$value)) -lt "$low" ] || [ $((10#$value)) -gt "$high" ]; then
    bad "$flag: must be between $low and $high, got $value"
  fi
}

# --- MariaDB's limit --------------------------------------------------------------------------

db_root() {
  local user
  if [ "$(id -u)" = 0 ]; then user=root; else user=$(id -un); fi
  # The administrator's way in: the private socket with the OS account (no password).
  mariadb --no-defaults --protocol=socket --socket="$DB_SOCKET" -u "$user" -N -B "$@"
}

load_dev_env() {
  set -a
  # shellcheck disable=SC1091
  . "$ROOT/.local/env"
  set +a
}

# --- stopping ---------------------------------------------------------------------------------

stop_stack() {
  stack_stop "the demo stack" "$STACK_STATE" "$STACK_ENV"
}

restore_services() {
  if services_down "$STARTED_DEV_ENV"; then
    rm -f "$SAVED_MAX"
    return
  fi
  if [ -f "$SAVED_MAX" ]; then
    local before
    before=$(tr -dc '0-9' <"$SAVED_MAX")
    if [ -n "$before" ] && [ -f "$ROOT/.local/env" ]; then
      load_dev_env
      if db_root -e "SET GLOBAL max_connections = $before" 2>/dev/null; then
        log "MariaDB's max_connections is back to $before"
      else
        log "could not set MariaDB's max_connections back to $before"
      fi
    fi
    rm -f "$SAVED_MAX"
  fi
}

cmd_down() {
  stop_stack
  restore_services
}

# --- options ----------------------------------------------------------------------------------

EXECUTIONS=300
CONCURRENCY=40
HOLD_MS=1000
BUDGET=""
ABORT_AFTER=""
MAX_CONNECTIONS=20
KILL=0
SEED=1
REPORT="$STATE/report.json"
KEEP=""
SCENARIO=queue
# Options given, to refuse those of the other scenario; hotspot options to pass on.
GIVEN=()
HOTSPOT_ARGS=()

if [ "${1:-}" = down ]; then
  [ $# -eq 1 ] || bad "down takes no options"
  cmd_down
  exit 0
fi

while [ $# -gt 0 ]; do
  arg=$1
  shift
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --keep) KEEP=1; continue ;;
    --*=*) flag=${arg%%=*}; value=${arg#*=} ;;
    --*) flag=$arg; value="" ;;
    *) bad "unexpected argument '$arg'" ;;
  esac
  case "$flag" in
    --executions|--concurrency|--hold-ms|--budget|--max-connections|--seed|--kill-probability|--abort-harness-after|--report) ;;
    --scenario|--steady-executions|--steady-concurrency|--steady-reserved|--steady-max) ;;
    --hot-executions|--hot-concurrency|--hot-reserved|--hot-max|--hot-start-ms) ;;
    --keep) bad "--keep takes no value" ;;
    *) bad "unknown option '$flag'" ;;
  esac
  if [ "$arg" = "$flag" ]; then
    [ $# -gt 0 ] || bad "$flag needs a value"
    value=$1
    shift
  fi
  GIVEN+=("$flag")
  case "$flag" in
    --scenario)
      case "$value" in
        queue|hotspot) SCENARIO=$value ;;
        *) bad "--scenario: queue or hotspot, got '$value'" ;;
      esac ;;
    --steady-executions|--hot-executions)
      whole "$flag" "$value" 1 1000; HOTSPOT_ARGS+=("$flag" "$((10#$value))") ;;
    --steady-concurrency|--hot-concurrency)
      whole "$flag" "$value" 1 40; HOTSPOT_ARGS+=("$flag" "$((10#$value))") ;;
    --steady-reserved|--hot-reserved)
      whole "$flag" "$value" 0 10000; HOTSPOT_ARGS+=("$flag" "$((10#$value))") ;;
    --steady-max|--hot-max)
      whole "$flag" "$value" 1 10000; HOTSPOT_ARGS+=("$flag" "$((10#$value))") ;;
    --hot-start-ms)
      whole "$flag" "$value" 0 60000; HOTSPOT_ARGS+=("$flag" "$((10#$value))") ;;
    --executions) whole "$flag" "$value" 1 1000; EXECUTIONS=$((10#$value)) ;;
    --concurrency) whole "$flag" "$value" 1 40; CONCURRENCY=$((10#$value)) ;;
    --hold-ms) whole "$flag" "$value" 0 30000; HOLD_MS=$((10#$value)) ;;
    --budget) whole "$flag" "$value" 1 10000; BUDGET=$((10#$value)) ;;
    --max-connections) whole "$flag" "$value" 10 10000; MAX_CONNECTIONS=$((10#$value)) ;;
    --seed) whole "$flag" "$value" 0 999999999999; SEED=$((10#$value)) ;;
    --abort-harness-after) whole "$flag" "$value" 1 600; ABORT_AFTER=$((10#$value)) ;;
    --kill-probability)
      [[ $value =~ ^([0-9]*\.)?[0-9]+$ ]] \
        || bad "--kill-probability: not a number: '$value'"
      python3 -c 'import sys; sys.exit(0 if 0 <= float(sys.argv[1]) <= 0.5 else 1)' "$value" \
        || bad "--kill-probability: must be between 0 and 0.5, got $value"
      KILL=$value ;;
    --report)
      [ -n "${value// /}" ] || bad "--report: needs a file path"
      REPORT=$value ;;
  esac
done
if [ -n "$BUDGET" ] && [ $((BUDGET + RESERVE)) -gt "$MAX_CONNECTIONS" ]; then
  bad "--budget: $BUDGET plus the admin reserve of $RESERVE is more than max_connections ($MAX_CONNECTIONS)"
fi
for flag in ${GIVEN[@]+"${GIVEN[@]}"}; do
  case "$SCENARIO:$flag" in
    queue:--steady-*|queue:--hot-*) bad "$flag: only with --scenario hotspot" ;;
    hotspot:--executions|hotspot:--concurrency|hotspot:--kill-probability|hotspot:--abort-harness-after)
      bad "$flag: not with --scenario hotspot (it has --steady-* and --hot-* options)" ;;
  esac
done
if [ "$SCENARIO" = hotspot ]; then
  # The shares must fit the budget the stack will have (derived as the seed does when not given).
  budget=${BUDGET:-$(( MAX_CONNECTIONS * BUDGET_PERCENT / 100 - RESERVE ))}
  [ "$budget" -ge 1 ] || bad "--max-connections: $MAX_CONNECTIONS leaves no budget after the admin reserve of $RESERVE"
  python3 - "$budget" ${HOTSPOT_ARGS[@]+"${HOTSPOT_ARGS[@]}"} <<'PY' || exit 2
import sys
budget, args = int(sys.argv[1]), sys.argv[2:]
given = dict(zip(args[::2], map(int, args[1::2])))
reserved = {app: given.get(f"--{app}-reserved", default) for app, default in (("steady", 4), ("hot", 2))}
problems = []
if sum(reserved.values()) > budget:
    problems.append(f"--steady-reserved {reserved['steady']} and --hot-reserved {reserved['hot']} add up to more than the budget {budget}")
for app in ("steady", "hot"):
    top = given.get(f"--{app}-max")
    if top is not None and top < reserved[app]:
        problems.append(f"--{app}-max: {top} is below the reservation {reserved[app]}")
    if top is not None and top > budget:
        problems.append(f"--{app}-max: {top} is above the budget {budget}")
for p in problems:
    print(f"demo: {p}", file=sys.stderr)
if problems:
    print("demo: see scripts/demo.sh --help", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
fi
case "$REPORT" in
  /*) ;;
  *) REPORT="$CALLER_DIR/$REPORT" ;;
esac

command -v cargo >/dev/null 2>&1 || die "cargo is required (Rust 1.94.1 or newer, see rustup.rs)"
command -v python3 >/dev/null 2>&1 || die "python3 is required"

# --- set up -----------------------------------------------------------------------------------

mkdir -p "$STATE"
# A stack kept by an earlier demo is ours: start afresh with this run's options.
if pid_alive "$(stack_pid "$STACK_STATE")"; then
  log "stopping the demo stack kept by an earlier run"
  stop_stack
fi

SECONDS=0
if [ ! -f "$STARTED_DEV_ENV" ] && ! scripts/dev-env.sh status >/dev/null 2>&1; then
  log "starting the local services (MariaDB with max_connections $MAX_CONNECTIONS, moto)"
fi
if LEASEHOLD_DB_MAX_CONNECTIONS=$MAX_CONNECTIONS services_up "$STARTED_DEV_ENV"; then
  load_dev_env
else
  # Someone else's services: lower the limit for the demo and put it back afterwards.
  load_dev_env
  if [ ! -f "$SAVED_MAX" ]; then
    db_root -e 'SELECT @@GLOBAL.max_connections' >"$SAVED_MAX" \
      || die "cannot reach MariaDB as its administrator through $DB_SOCKET"
  fi
  db_root -e "SET GLOBAL max_connections = $MAX_CONNECTIONS"
  log "using the running local services; MariaDB's max_connections is $MAX_CONNECTIONS for the demo (was $(tr -dc '0-9' <"$SAVED_MAX"))"
fi

DEMO_PID=""
cleanup() {
  local status=$?
  if pid_alive "$DEMO_PID"; then
    kill "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  if [ -n "$KEEP" ] && [ "$status" -eq 0 ]; then
    return
  fi
  stop_stack
  restore_services
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the handlers, the stack and the demo (debug; the first build takes a few minutes)"
stack_build -p leasehold-demo
TARGET=$(stack_target_dir)

# The query function's timeout fits the load (the hold, plus room to connect), as a deployment
# would size QueryTimeoutSeconds to its queries: a stopped or crashed query's lease drains for
# that long before reclaim frees it.
# (The query function keeps 5 s of it as a margin before its deadline.)
QUERY_TIMEOUT=$(( (HOLD_MS + 999) / 1000 + 10 ))
stack_args=(--stack-name "$STACK_NAME" --seed "$SEED"
  --parameter "PoolBudget=${BUDGET:-0}" --parameter "PoolBudgetPercent=$BUDGET_PERCENT"
  --parameter "PoolReserve=$RESERVE" --parameter "QueryTimeoutSeconds=$QUERY_TIMEOUT")
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$KILL"; then
  for fn in AcquireFunction QueryFunction ReleaseFunction; do
    stack_args+=(--kill "$fn=$KILL")
  done
fi
stack_start "$STACK_STATE" "$STACK_ENV" "${stack_args[@]}"
log "stack up after ${SECONDS}s (log in .local/demo/stack/stack.log)"

# --- run --------------------------------------------------------------------------------------

set -a
# shellcheck disable=SC1090
. "$STACK_ENV"
set +a
demo_args=(--scenario "$SCENARIO" --hold-ms "$HOLD_MS" --max-connections "$MAX_CONNECTIONS"
  --reserve "$RESERVE" --seed "$SEED" --report "$REPORT")
if [ "$SCENARIO" = queue ]; then
  demo_args+=(--executions "$EXECUTIONS" --concurrency "$CONCURRENCY" --kill-probability "$KILL")
  [ -n "$ABORT_AFTER" ] && demo_args+=(--abort-harness-after "$ABORT_AFTER")
else
  demo_args+=(${HOTSPOT_ARGS[@]+"${HOTSPOT_ARGS[@]}"})
fi
[ -n "$BUDGET" ] && demo_args+=(--budget "$BUDGET")
status=0
# In the background so that an interrupt reaches the trap at once (bash runs traps only between
# foreground commands); the cleanup stops it.
"$TARGET/debug/leasehold-demo" "${demo_args[@]}" &
DEMO_PID=$!
wait "$DEMO_PID" || status=$?
DEMO_PID=""
log "done in ${SECONDS}s"

if [ -n "$KEEP" ] && [ "$status" -eq 0 ]; then
  cat <<EOF

The stack is still running; scripts/demo.sh down stops it and puts MariaDB's limit back.
Its trace page: $LOCAL_STACK_URL/trace (state machines, executions, their paths and histories).
Explore it with the AWS CLI:
  set -a; . .local/env; . .local/demo/stack.env; set +a
  aws stepfunctions list-executions --endpoint-url "\$AWS_ENDPOINT_URL_SFN" --state-machine-arn "\$CONNECTION_STATE_MACHINE_ARN" --max-items 5
  aws stepfunctions get-execution-history --endpoint-url "\$AWS_ENDPOINT_URL_SFN" --execution-arn ARN --query 'events[].type'
  aws stepfunctions start-execution --endpoint-url "\$AWS_ENDPOINT_URL_SFN" --state-machine-arn "\$CONNECTION_STATE_MACHINE_ARN" --input file://events/connection-get-employee.json
  scripts/load-run.sh --endpoint-url "\$AWS_ENDPOINT_URL_SFN" --stack-name $STACK_NAME --input events/harness-small.json
  aws lambda invoke --endpoint-url "\$AWS_ENDPOINT_URL_LAMBDA" --function-name "\$RELEASE_FUNCTION_NAME" --payload file://events/audit.json .local/demo/audit.json && cat .local/demo/audit.json
  curl -s "\$LOCAL_STACK_URL/stats"
Every handler and workflow has sample inputs in events/; function logs are in .local/demo/stack/logs/.
EOF
else
  cat <<EOF

To explore by hand: scripts/demo.sh --keep leaves the stack running and prints how to reach it
with the AWS CLI (aws stepfunctions list-executions / get-execution-history / start-execution
--endpoint-url ..., with the samples in events/ as inputs).
EOF
fi
exit "$status"
