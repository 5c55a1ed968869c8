#!/usr/bin/env bash
# Builds the four Lambda functions the way AWS runs them (provided.al2023, arm64) with
# `sam build`, puts the RDS certificate authority bundle beside the bootstrap of the two
# functions that talk to MySQL (their DB_TLS_CA_FILE, /var/task/rds-global-bundle.pem), checks
# that each artifact is an arm64 executable named bootstrap, and reports the wall time. Not part of the default test run: a clean release build for arm64 takes many
# minutes on two cores (docs/deploy.md has a measured time).
#
# Usage: scripts/sam-build.sh [extra sam build arguments, e.g. --cached or --use-container]
#
# The bundle is downloaded from RDS's trust store (RDS_CA_URL below) and kept for a week in
# target/lambda-build; LEASEHOLD_RDS_CA_BUNDLE=/path/to/global-bundle.pem uses a copy you
# fetched and checked yourself instead (for example on a machine without internet access).
#
# Installs what is missing, at pinned versions (scripts/checks/pinned-tools.bash): the SAM CLI
# and cargo-lambda from PyPI (cargo-lambda's package brings zig, the cross-linker), and the
# Rust standard library for aarch64-unknown-linux-gnu through rustup. The build goes to its own
# target directory (target/lambda-build) so that it never waits on, or invalidates, the
# workspace's everyday builds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/checks/pinned-tools.bash
. scripts/checks/pinned-tools.bash

TARGET=aarch64-unknown-linux-gnu
FUNCTIONS=(AcquireFunction QueryFunction ReleaseFunction SeedFunction)
# The functions that connect to MySQL, and the file template.yaml names in their DB_TLS_CA_FILE.
DB_FUNCTIONS=(QueryFunction SeedFunction)
RDS_CA_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
RDS_CA_FILE=rds-global-bundle.pem

log() { printf 'sam-build: %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "cargo is not installed (https://rustup.rs)"; exit 1; }
sam="$(sam_bin)"
cargo_lambda="$(cargo_lambda_bin)"
# sam finds `cargo lambda` on PATH; cargo-lambda finds zig through this environment's python3.
export PATH="$(dirname "$cargo_lambda"):$PATH"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
  log "adding the Rust target $TARGET (rustup)"
  rustup target add "$TARGET"
fi

export CARGO_TARGET_DIR="$ROOT/target/lambda-build"
export SAM_CLI_TELEMETRY=0

log "sam $("$sam" --version | awk '{print $NF}'), $("$cargo_lambda" lambda --version 2>/dev/null || "$cargo_lambda" --version), $(cargo --version)"
started=$SECONDS
"$sam" build --beta-features --template-file template.yaml "$@"
elapsed=$((SECONDS - started))

# The RDS certificate authorities: the database functions trust nothing else for MySQL.
bundle="$CARGO_TARGET_DIR/$RDS_CA_FILE"
if [[ -n "${LEASEHOLD_RDS_CA_BUNDLE:-}" ]]; then
  cp "$LEASEHOLD_RDS_CA_BUNDLE" "$bundle"
elif [[ ! -s "$bundle" || -n "$(find "$bundle" -mtime +7 2>/dev/null)" ]]; then
  log "downloading the RDS CA bundle ($RDS_CA_URL)"
  if command -v curl >/dev/null; then
    curl -fsSL --proto =https --tlsv1.2 "$RDS_CA_URL" -o "$bundle.tmp"
  else
    python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=60).read())' \
      "$RDS_CA_URL" "$bundle.tmp"
  fi
  mv "$bundle.tmp" "$bundle"
fi
certificates=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$bundle" || true)
if [[ "$certificates" -lt 1 ]]; then
  log "$bundle holds no PEM certificate"
  exit 1
fi
for function in "${DB_FUNCTIONS[@]}"; do
  cp "$bundle" ".aws-sam/build/$function/$RDS_CA_FILE"
done
log "RDS CA bundle ($certificates certificates) shipped with ${DB_FUNCTIONS[*]}"

# Each artifact must be an ELF executable for aarch64 (e_machine 183 at offset 18).
status=0
for function in "${FUNCTIONS[@]}"; do
  artifact=".aws-sam/build/$function/bootstrap"
  if [[ ! -f "$artifact" ]]; then
    log "missing $artifact"
    status=1
    continue
  fi
  magic=$(od -An -tx1 -N4 "$artifact" | tr -d ' \n')
  machine=$(od -An -tu2 -j18 -N2 "$artifact" | tr -d ' \n')
  size=$(du -k "$artifact" | cut -f1)
  if [[ "$magic" == 7f454c46 && "$machine" == 183 ]]; then
    log "$artifact: ELF aarch64, ${size} KiB"
  else
    log "$artifact is not an aarch64 ELF executable (magic $magic, machine $machine)"
    status=1
  fi
done
log "sam build took $((elapsed / 60))m$((elapsed % 60))s"
exit $status
