#!/usr/bin/env bash
# The one test command: formatting, clippy with warnings denied, every Rust test against the
# local services (MariaDB and moto, started here when not already running, stopped again
# afterwards), then every check in scripts/checks/ in order.
#
#   scripts/test.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null 2>&1 || { echo "test: cargo is required (rustup.rs)" >&2; exit 1; }

step "local services"
if scripts/dev-env.sh status >/dev/null 2>&1; then
  echo "using the running dev environment (left running afterwards)"
  scripts/dev-env.sh up
else
  scripts/dev-env.sh up
  trap 'scripts/dev-env.sh down' EXIT
fi
set -a
# shellcheck disable=SC1091
. .local/env
set +a

# The aws CLI is a real client of the local stack in the tests.
if ! command -v aws >/dev/null 2>&1; then
  step "installing the aws CLI (PyPI, pinned)"
  python3 -m pip install -q "awscli==1.45.11"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --bins (the local stack's tests run the real handler binaries)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

for check in scripts/checks/*.sh; do
  [ -x "$check" ] || continue
  step "$check"
  "$check"
done

step "all tests passed"
