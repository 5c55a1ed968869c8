#!/usr/bin/env bash
# The local stack: leasehold's template.yaml on this machine (Lambda containers, the Step
# Functions and Lambda APIs) on 127.0.0.1, against the local services of scripts/dev-env.sh.
#
#   scripts/local-stack.sh up [OPTIONS]   build, start the dev environment if needed, start the
#                                         stack, print its endpoints, write .local/stack.env
#   scripts/local-stack.sh down           stop what `up` started (the dev environment too, if
#                                         `up` started it)
#   scripts/local-stack.sh status         exit 0 when the stack answers
#
# OPTIONS are passed to the stack binary (see `target/debug/leasehold-local --help`), e.g.
#   --parameter PoolBudget=8   --kill leasehold-QueryFunction=0.1   --seed 7   --port 4600
#
# Then, for example:
#   set -a; . .local/env; . .local/stack.env; set +a
#   aws stepfunctions start-execution --endpoint-url "$AWS_ENDPOINT_URL_SFN" \
#     --state-machine-arn "$HARNESS_STATE_MACHINE_ARN" --input file://events/harness-small.json
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE="$ROOT/.local/stack"
STACK_ENV="$ROOT/.local/stack.env"
STARTED_DEV_ENV="$STATE/started-dev-env"

log() { printf 'local-stack: %s\n' "$*" >&2; }
die() { printf 'local-stack: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/proc.bash
. "$ROOT/scripts/lib/proc.bash"
# shellcheck source=scripts/lib/stack.bash
. "$ROOT/scripts/lib/stack.bash"

cmd_up() {
  local pid
  pid=$(stack_pid "$STATE")
  if pid_alive "$pid"; then
    log "already running (pid $pid); endpoints in .local/stack.env"
    cat "$STACK_ENV"
    return
  fi
  mkdir -p "$STATE"
  services_up "$STARTED_DEV_ENV" || true
  log "building the handlers and the stack (debug)"
  stack_build
  stack_start "$STATE" "$STACK_ENV" "$@"
  log "up (pid $(stack_pid "$STATE")); log in .local/stack/stack.log, function logs in .local/stack/logs/"
  grep -v '^#' "$STACK_ENV"
}

cmd_down() {
  stack_stop "the stack" "$STATE" "$STACK_ENV"
  services_down "$STARTED_DEV_ENV" || true
}

cmd_status() {
  local pid
  pid=$(stack_pid "$STATE")
  if pid_alive "$pid" && [ -s "$STACK_ENV" ]; then
    echo "local stack: running (pid $pid)"
    grep '^LOCAL_STACK_URL=' "$STACK_ENV"
  else
    echo "local stack: stopped"
    return 3
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
