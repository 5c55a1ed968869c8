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
PID_FILE="$STATE/pid"
LOG="$STATE/stack.log"
STACK_ENV="$ROOT/.local/stack.env"
STARTED_DEV_ENV="$STATE/started-dev-env"

log() { printf 'local-stack: %s\n' "$*" >&2; }
die() { printf 'local-stack: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/proc.bash
. "$ROOT/scripts/lib/proc.bash"

cmd_up() {
  local pid
  pid=$(read_pid "$PID_FILE")
  if pid_alive "$pid"; then
    log "already running (pid $pid); endpoints in .local/stack.env"
    cat "$STACK_ENV"
    return
  fi
  mkdir -p "$STATE"
  if ! scripts/dev-env.sh status >/dev/null 2>&1; then
    scripts/dev-env.sh up
    touch "$STARTED_DEV_ENV"
  fi
  log "building the handlers and the stack (debug)"
  cargo build --quiet --locked --bins -p acquire -p query -p release -p seed -p leasehold-local
  rm -f "$STACK_ENV"
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  "$target_dir/debug/leasehold-local" --template template.yaml --env-file .local/env \
    --binaries "$target_dir/debug" --state-dir "$STATE" --write-env "$STACK_ENV" "$@" \
    >"$STATE/stdout" 2>"$LOG" &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local i
  for i in $(seq 1 600); do
    if [ -s "$STACK_ENV" ]; then
      log "up (pid $pid); log in .local/stack/stack.log, function logs in .local/stack/logs/"
      grep -v '^#' "$STACK_ENV"
      return
    fi
    if ! pid_alive "$pid"; then
      rm -f "$PID_FILE"
      tail -n 5 "$LOG" >&2 || true
      die "the stack did not start"
    fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  die "the stack did not become ready within 120 s (see .local/stack/stack.log)"
}

cmd_down() {
  stop_pid "the stack" "$PID_FILE"
  rm -f "$STACK_ENV"
  if [ -f "$STARTED_DEV_ENV" ]; then
    rm -f "$STARTED_DEV_ENV"
    scripts/dev-env.sh down
  fi
}

cmd_status() {
  local pid
  pid=$(read_pid "$PID_FILE")
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
