# Bringing a local stack (target/debug/leasehold-local) and the local services it needs up and
# down in the background. Source it after scripts/lib/proc.bash, from the repository root; the
# caller defines `log` and `die`.

# stack_build [-p PACKAGE...]: builds the handler binaries and the stack (debug), and the
# binaries of any further packages named.
stack_build() {
  cargo build --quiet --locked --bins -p acquire -p query -p release -p seed -p leasehold-local "$@"
}

# stack_target_dir: cargo's target directory.
stack_target_dir() {
  cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# stack_pid STATE_DIR: the pid of the stack started with that state directory, or nothing.
stack_pid() { read_pid "$1/pid"; }

# stack_start STATE_DIR STACK_ENV [OPTIONS...]: starts the stack of template.yaml against
# .local/env in the background (state, function logs, stdout, stack.log and its pid in
# STATE_DIR) and waits up to 120 s for it to write STACK_ENV. OPTIONS go to the stack binary.
# Dies with the log's last lines when the stack does not come up.
stack_start() {
  local state=$1 stack_env=$2 pid_file=$1/pid target pid
  shift 2
  target=$(stack_target_dir)
  mkdir -p "$state"
  rm -f "$stack_env"
  "$target/debug/leasehold-local" --template template.yaml --env-file .local/env \
    --binaries "$target/debug" --state-dir "$state" --write-env "$stack_env" "$@" \
    >"$state/stdout" 2>"$state/stack.log" &
  pid=$!
  echo "$pid" >"$pid_file"
  for _ in $(seq 1 600); do
    [ -s "$stack_env" ] && return 0
    if ! pid_alive "$pid"; then
      rm -f "$pid_file"
      tail -n 5 "$state/stack.log" >&2 || true
      die "the stack did not start"
    fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  die "the stack did not become ready within 120 s (see ${state#"$PWD"/}/stack.log)"
}

# stack_stop NAME STATE_DIR STACK_ENV: stops the stack started with stack_start, by its pid.
stack_stop() {
  stop_pid "$1" "$2/pid"
  rm -f "$3"
}

# services_up MARKER: starts the local services (scripts/dev-env.sh; the environment passes
# through, e.g. LEASEHOLD_DB_MAX_CONNECTIONS) unless they are running and not ours, and then
# records in MARKER that they are ours. Returns 1, starting nothing, when they are someone else's.
services_up() {
  if [ -f "$1" ] || ! scripts/dev-env.sh status >/dev/null 2>&1; then
    scripts/dev-env.sh up
    touch "$1"
    return 0
  fi
  return 1
}

# services_down MARKER: stops the local services when MARKER says services_up started them.
# Returns 1 when they were not ours.
services_down() {
  [ -f "$1" ] || return 1
  rm -f "$1"
  scripts/dev-env.sh down
}
