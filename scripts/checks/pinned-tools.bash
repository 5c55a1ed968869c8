# shellcheck shell=bash
# Pinned tools of the deployable side, installed on first use. Sourced (not run) by
# scripts/checks/10-template.sh, scripts/sam-build.sh and scripts/deploy.sh; the file name does
# not end in .sh so that the test command does not run it as a check.
#
# Python tools go each into its own virtual environment under $LEASEHOLD_TOOLS_DIR (default
# ~/.cache/leasehold/tools), so that their dependency pins never collide with each other or with
# the system's packages, and a second run finds them in place. Node tools come from
# package-lock.json into node_modules/.

CFN_LINT_VERSION=1.51.0
SAM_CLI_VERSION=1.170.0
CHECKOV_VERSION=3.3.30
CARGO_LAMBDA_VERSION=1.9.2
AWS_CLI_VERSION=1.45.11
LEASEHOLD_TOOLS_DIR="${LEASEHOLD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leasehold/tools}"

# py_tool PACKAGE VERSION EXECUTABLE: prints the path of EXECUTABLE in a virtual environment
# that holds PACKAGE==VERSION, creating it on first use. The marker is written only after a
# successful install, so an interrupted install starts over instead of being trusted.
py_tool() {
  local package=$1 version=$2 executable=$3
  local venv="$LEASEHOLD_TOOLS_DIR/$package-$version"
  if [[ ! -f "$venv/.installed" ]]; then
    echo "installing $package==$version (once) into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$LEASEHOLD_TOOLS_DIR"
    if ! { python3 -m venv "$venv" >&2 &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package==$version" >&2; }; then
      echo "could not install $package==$version" >&2
      return 1
    fi
    touch "$venv/.installed"
  fi
  echo "$venv/bin/$executable"
}

# cfn-lint: the one on PATH when it is the pinned version, else a private install.
cfn_lint_bin() {
  if command -v cfn-lint >/dev/null && [[ "$(cfn-lint --version 2>/dev/null)" == "cfn-lint $CFN_LINT_VERSION" ]]; then
    command -v cfn-lint
  else
    py_tool cfn-lint "$CFN_LINT_VERSION" cfn-lint
  fi
}

# A Python with PyYAML for the repository's own checks (cfn-lint brings PyYAML).
check_python() {
  if python3 -c 'import yaml' 2>/dev/null; then
    command -v python3
  else
    local lint
    lint="$(py_tool cfn-lint "$CFN_LINT_VERSION" cfn-lint)" || return 1
    echo "$(dirname "$lint")/python"
  fi
}

# asl-validator at the version package-lock.json pins; run from the repository root.
asl_validator_bin() {
  local wanted installed
  wanted="$(node -p 'require("./package-lock.json").packages["node_modules/asl-validator"].version')" || return 1
  installed="$(node -p 'require("./node_modules/asl-validator/package.json").version' 2>/dev/null || true)"
  if [[ "$installed" != "$wanted" ]]; then
    echo "installing asl-validator@$wanted from package-lock.json" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2 || return 1
  fi
  echo "node_modules/.bin/asl-validator"
}

sam_bin() {
  py_tool aws-sam-cli "$SAM_CLI_VERSION" sam
}

# cargo-lambda from PyPI; its environment also holds the ziglang package, whose zig is the
# cross-linker cargo-lambda uses (it finds it through `python3 -m ziglang`).
cargo_lambda_bin() {
  py_tool cargo-lambda "$CARGO_LAMBDA_VERSION" cargo-lambda
}

# The aws CLI: the one on PATH, else a private install of the pinned version.
aws_cli_bin() {
  if command -v aws >/dev/null; then
    command -v aws
  else
    py_tool awscli "$AWS_CLI_VERSION" aws
  fi
}
