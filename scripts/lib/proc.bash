# Helpers for the scripts that start background processes and stop exactly those later, by the
# pid they recorded. Source it; the caller defines `log` (used for what stop_pid reports).

# The pid in a pid file, or nothing.
read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

# Whether a pid names a running process.
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# stop_pid NAME PID_FILE: SIGTERM, up to 30 s for it to exit, then SIGKILL; removes the pid
# file. Does nothing when the process is already gone.
stop_pid() {
  local name=$1 file=$2 pid i
  pid=$(read_pid "$file")
  if ! pid_alive "$pid"; then
    rm -f "$file"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  if pid_alive "$pid"; then
    log "$name (pid $pid) did not stop; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  log "$name stopped"
}
