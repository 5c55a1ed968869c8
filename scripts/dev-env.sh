#!/usr/bin/env bash
# The local services leasehold's handlers run against: a private MariaDB instance and a moto
# server (DynamoDB, CloudWatch, Secrets Manager, S3), both on 127.0.0.1.
#
#   scripts/dev-env.sh up       start (installing what is missing), provision, write .local/env
#   scripts/dev-env.sh down     stop exactly what `up` started (data is kept; --purge drops it)
#   scripts/dev-env.sh status   say what runs; exit 0 when both services answer, 3 otherwise
#
# Settings (environment, read by `up`):
#   LEASEHOLD_DB_PORT, LEASEHOLD_MOTO_PORT   fixed ports (default: free ones, kept across ups)
#   LEASEHOLD_DB_MAX_CONNECTIONS             MariaDB's max_connections (default 151)
#
# After `up`:  set -a; . .local/env; set +a   gives a shell everything a handler binary reads.
# Database passwords are generated on each `up` and kept only in moto's Secrets Manager.
# MariaDB takes TCP connections over TLS only (require_secure_transport, as the RDS parameter
# group of template.yaml sets it), with a certificate authority and a server certificate for
# 127.0.0.1 generated here with openssl (.local/tls/); DB_TLS_CA_FILE in .local/env names the
# authority. The application account gets no privilege here: the seed grants what the
# allow-listed queries need (crates/db/src/account.rs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.local"
DB_DIR="$STATE/mariadb"
TLS_DIR="$STATE/tls"
MOTO_DIR="$STATE/moto"
ENV_FILE="$STATE/env"
PORTS_FILE="$STATE/ports"
MOTO_PIN="moto[server]==5.2.1"
REGION=us-east-1
DB_NAME=leasehold
APP_USER=leasehold
ADMIN_USER=leasehold_admin
LEASE_TABLE=leasehold-leases
CACHE_TABLE=leasehold-cache

log() { printf 'dev-env: %s\n' "$*" >&2; }
die() { printf 'dev-env: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# --- helpers ---------------------------------------------------------------------------------

# shellcheck source=scripts/lib/proc.bash
. "$ROOT/scripts/lib/proc.bash"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(0.3)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

# A unix socket path must fit in 108 bytes; deep checkouts fall back to the temp directory.
socket_path() {
  local p="$DB_DIR/mysqld.sock"
  if [ ${#p} -gt 100 ]; then
    p="${TMPDIR:-/tmp}/leasehold-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).sock"
  fi
  printf '%s' "$p"
}

mariadbd_bin() {
  local c
  for c in mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_mariadb() {
  command -v apt-get >/dev/null 2>&1 || die "MariaDB is missing and this is not a Debian-like system: install mariadb-server yourself"
  log "installing mariadb-server (Debian packages)"
  # Keep the package from starting a system-wide server: we run a private instance.
  local added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mariadb-server mariadb-client >/dev/null
  if [ -n "$added_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  mariadbd_bin >/dev/null || die "mariadb-server installed but no mariadbd found"
}

install_moto() {
  log "installing $MOTO_PIN (PyPI)"
  python3 -m pip install -q "$MOTO_PIN" || die "could not install $MOTO_PIN"
}

ensure_tools() {
  command -v python3 >/dev/null 2>&1 || die "python3 is required"
  mariadbd_bin >/dev/null || install_mariadb
  python3 -c 'import moto.moto_server.werkzeug_app, flask, flask_cors, boto3' 2>/dev/null || install_moto
}

load_ports() {
  DB_PORT="${LEASEHOLD_DB_PORT:-}"
  MOTO_PORT="${LEASEHOLD_MOTO_PORT:-}"
  if [ -f "$PORTS_FILE" ]; then
    # shellcheck disable=SC1090
    . "$PORTS_FILE"
    DB_PORT="${LEASEHOLD_DB_PORT:-$SAVED_DB_PORT}"
    MOTO_PORT="${LEASEHOLD_MOTO_PORT:-$SAVED_MOTO_PORT}"
  fi
}

db_client() {
  local user
  if [ "$(id -u)" = 0 ]; then user=root; else user=$(id -un); fi
  # Administrative statements go over the private socket with the OS account (unix_socket
  # authentication), so no administrator password exists on disk.
  mariadb --no-defaults --protocol=socket --socket="$(socket_path)" -u "$user" "$@"
}

db_running() { pid_alive "$(read_pid "$DB_DIR/mysqld.pid")"; }
moto_running() { pid_alive "$(read_pid "$MOTO_DIR/moto.pid")"; }

# --- TLS -------------------------------------------------------------------------------------

# A private certificate authority and a server certificate signed by it for 127.0.0.1 and
# localhost (what clients check against DB_HOST), made once and again a day before expiry.
make_certificates() {
  local server="$TLS_DIR/server-cert.pem"
  if [ -s "$TLS_DIR/ca.pem" ] && [ -s "$server" ] \
    && openssl x509 -checkend 86400 -noout -in "$server" >/dev/null 2>&1 \
    && openssl x509 -checkend 86400 -noout -in "$TLS_DIR/ca.pem" >/dev/null 2>&1; then
    return
  fi
  command -v openssl >/dev/null 2>&1 || die "openssl is required to make the local database's TLS certificate"
  log "making a certificate authority and a server certificate for 127.0.0.1 (.local/tls)"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -days 825 -subj "/CN=leasehold local database CA" \
    -keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >"$TLS_DIR/openssl.log" 2>&1 || { cat "$TLS_DIR/openssl.log" >&2; die "openssl could not make the CA"; }
  openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$TLS_DIR/server-key.pem" \
    -out "$TLS_DIR/server.csr" >>"$TLS_DIR/openssl.log" 2>&1 \
    || { cat "$TLS_DIR/openssl.log" >&2; die "openssl could not make the server key"; }
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    >"$TLS_DIR/server.ext"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" \
    -CAcreateserial -days 825 -extfile "$TLS_DIR/server.ext" -out "$server" \
    >>"$TLS_DIR/openssl.log" 2>&1 || { cat "$TLS_DIR/openssl.log" >&2; die "openssl could not sign the server certificate"; }
  rm -f "$TLS_DIR/server.csr"
  chmod 600 "$TLS_DIR"/*-key.pem
}

# --- MariaDB ---------------------------------------------------------------------------------

start_mariadb() {
  local max="${LEASEHOLD_DB_MAX_CONNECTIONS:-151}"
  if db_running; then
    if [ "$(db_client -N -B -e "SELECT @@have_ssl, @@require_secure_transport, @@ssl_ca" 2>/dev/null)" \
      != "$(printf 'YES\t1\t%s' "$TLS_DIR/ca.pem")" ]; then
      # Started before TLS was part of the set-up, or with other certificates.
      log "restarting MariaDB to serve TLS with the certificates in .local/tls"
      stop_pid MariaDB "$DB_DIR/mysqld.pid"
    else
      log "MariaDB already running (pid $(read_pid "$DB_DIR/mysqld.pid"), port $DB_PORT)"
      if [ -n "${LEASEHOLD_DB_MAX_CONNECTIONS:-}" ]; then
        db_client -e "SET GLOBAL max_connections = $max"
      fi
      return
    fi
  fi
  port_open "$DB_PORT" && die "port $DB_PORT is taken by another program; set LEASEHOLD_DB_PORT"
  mkdir -p "$DB_DIR"
  local user_opt=()
  [ "$(id -u)" = 0 ] && user_opt=(--user=root)
  if [ ! -d "$DB_DIR/data/mysql" ]; then
    log "initializing a private MariaDB datadir in .local/mariadb/data"
    mariadb-install-db --no-defaults --datadir="$DB_DIR/data" "${user_opt[@]}" \
      --auth-root-authentication-method=socket --skip-test-db >"$DB_DIR/install.log" 2>&1 \
      || { tail -n 20 "$DB_DIR/install.log" >&2; die "mariadb-install-db failed"; }
  fi
  local sock
  sock=$(socket_path)
  rm -f "$sock"
  "$(mariadbd_bin)" --no-defaults --datadir="$DB_DIR/data" --socket="$sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DB_DIR/mysqld.pid" \
    --log-error="$DB_DIR/error.log" --skip-name-resolve --max-connections="$max" \
    --innodb-buffer-pool-size=64M --skip-log-bin "${user_opt[@]}" \
    --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server-cert.pem" \
    --ssl-key="$TLS_DIR/server-key.pem" --require-secure-transport=ON >/dev/null 2>&1 &
  local i
  for i in $(seq 1 120); do
    if db_client -e 'SELECT 1' >/dev/null 2>&1; then
      log "MariaDB up on 127.0.0.1:$DB_PORT (max_connections $max, TLS only)"
      drop_stack_accounts
      return
    fi
    sleep 0.25
  done
  tail -n 20 "$DB_DIR/error.log" >&2 || true
  die "MariaDB did not come up"
}

# The local stack gives every stack an account of its own (local_<hash>_<user>, see
# crates/local/src/database.rs); none of them outlives a restart of the database, when no
# stack can still be using it.
drop_stack_accounts() {
  local account
  while IFS= read -r account; do
    [ -n "$account" ] && db_client -e "DROP USER IF EXISTS $account"
  done < <(db_client -N -B -e "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User LIKE 'local\\_%'")
}

new_password() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

provision_mariadb() {
  APP_PASSWORD=$(new_password)
  ADMIN_PASSWORD=$(new_password)
  # The SQL travels on standard input, so the passwords never appear in a process list.
  db_client <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
DROP USER IF EXISTS '$APP_USER'@'127.0.0.1';
CREATE USER IF NOT EXISTS '$APP_USER'@'%';
ALTER USER '$APP_USER'@'%' IDENTIFIED BY '$APP_PASSWORD';
REVOKE ALL PRIVILEGES, GRANT OPTION FROM '$APP_USER'@'%';
CREATE USER IF NOT EXISTS '$ADMIN_USER'@'127.0.0.1';
ALTER USER '$ADMIN_USER'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$ADMIN_USER'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

# --- moto ------------------------------------------------------------------------------------

start_moto() {
  if moto_running; then
    log "moto already running (pid $(read_pid "$MOTO_DIR/moto.pid"), port $MOTO_PORT)"
    return
  fi
  port_open "$MOTO_PORT" && die "port $MOTO_PORT is taken by another program; set LEASEHOLD_MOTO_PORT"
  mkdir -p "$MOTO_DIR"
  python3 "$ROOT/scripts/lib/moto_server.py" "$MOTO_PORT" >"$MOTO_DIR/moto.log" 2>&1 &
  echo $! >"$MOTO_DIR/moto.pid"
  local i
  for i in $(seq 1 120); do
    if port_open "$MOTO_PORT"; then
      log "moto up on 127.0.0.1:$MOTO_PORT"
      return
    fi
    moto_running || { tail -n 20 "$MOTO_DIR/moto.log" >&2; die "moto exited"; }
    sleep 0.25
  done
  die "moto did not come up"
}

# --- commands --------------------------------------------------------------------------------

cmd_up() {
  ensure_tools
  mkdir -p "$STATE"
  load_ports
  DB_PORT="${DB_PORT:-$(free_port)}"
  MOTO_PORT="${MOTO_PORT:-$(free_port)}"
  printf 'SAVED_DB_PORT=%s\nSAVED_MOTO_PORT=%s\n' "$DB_PORT" "$MOTO_PORT" >"$PORTS_FILE"

  make_certificates
  start_mariadb
  start_moto
  provision_mariadb

  export AWS_REGION=$REGION AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" LEASE_TABLE CACHE_TABLE
  local arns
  arns=$(printf '{"app":{"username":"%s","password":"%s"},"admin":{"username":"%s","password":"%s"}}' \
    "$APP_USER" "$APP_PASSWORD" "$ADMIN_USER" "$ADMIN_PASSWORD" | python3 "$ROOT/scripts/lib/provision.py") \
    || die "provisioning moto failed (see .local/moto/moto.log)"

  local tmp="$ENV_FILE.tmp"
  {
    echo "# Written by scripts/dev-env.sh up; load with: set -a; . .local/env; set +a"
    echo "AWS_REGION=$REGION"
    echo "AWS_DEFAULT_REGION=$REGION"
    echo "AWS_ACCESS_KEY_ID=testing"
    echo "AWS_SECRET_ACCESS_KEY=testing"
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT"
    echo "LEASE_TABLE=$LEASE_TABLE"
    echo "CACHE_TABLE=$CACHE_TABLE"
    echo "METRICS_NAMESPACE=RDSLambda"
    echo "DB_HOST=127.0.0.1"
    echo "DB_PORT=$DB_PORT"
    echo "DB_NAME=$DB_NAME"
    echo "DB_TLS_CA_FILE=$TLS_DIR/ca.pem"
    echo "$arns"
    echo "DB_SOCKET=$(socket_path)"
    echo "MOTO_PID=$(read_pid "$MOTO_DIR/moto.pid")"
    echo "MARIADB_PID=$(read_pid "$DB_DIR/mysqld.pid")"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
  log "environment written to .local/env"
}

cmd_down() {
  stop_pid moto "$MOTO_DIR/moto.pid"
  stop_pid MariaDB "$DB_DIR/mysqld.pid"
  rm -f "$ENV_FILE"
  if [ "${1:-}" = "--purge" ]; then
    rm -rf "$DB_DIR" "$MOTO_DIR" "$TLS_DIR" "$PORTS_FILE"
    log "data removed"
  fi
}

cmd_status() {
  load_ports
  local ok=0
  if db_running; then
    echo "mariadb: running (pid $(read_pid "$DB_DIR/mysqld.pid"), 127.0.0.1:${DB_PORT:-?})"
  else
    echo "mariadb: stopped"; ok=3
  fi
  if moto_running; then
    echo "moto:    running (pid $(read_pid "$MOTO_DIR/moto.pid"), 127.0.0.1:${MOTO_PORT:-?})"
  else
    echo "moto:    stopped"; ok=3
  fi
  [ -f "$ENV_FILE" ] && echo "env:     .local/env" || ok=3
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
