#!/usr/bin/env bash
# Builds the four Lambda functions the way AWS runs them (provided.al2023, arm64) with
# `sam build`, checks that each artifact is an arm64 executable named bootstrap, and reports the
# wall time. Not part of the default test run: a clean release build for arm64 takes many
# minutes on two cores (docs/deploy.md has a measured time).
#
# Usage: scripts/sam-build.sh [extra sam build arguments, e.g. --cached or --use-container]
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
