#!/usr/bin/env bash
# Offline checks of the deployable side: template.yaml, statemachines/*.asl.json, events/.
#
#   1. cfn-lint                 no errors and no unexplained warnings (any finding fails)
#   2. sam validate [--lint]    the SAM transform, then SAM's bundled linter
#   3. asl-validator            every statemachines/*.asl.json
#   4. checkov                  security scan; findings fixed or suppressed in the template with
#                               a written reason, and no stale suppressions
#   5. template_check.py        substitutions, IAM grants for every workflow call, retry
#                               contract, workflow input samples (see its docstring)
#
# Tools install themselves when missing, at pinned versions: the Python ones each in its own
# virtual environment under $LEASEHOLD_TOOLS_DIR (default ~/.cache/leasehold/tools), so their
# dependency pins never collide; asl-validator from package-lock.json into node_modules/.
# Runs from any directory; exits non-zero when any check fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

CFN_LINT_VERSION=1.51.0
SAM_CLI_VERSION=1.170.0
CHECKOV_VERSION=3.3.30
TOOLS_DIR="${LEASEHOLD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leasehold/tools}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failed=()

# py_tool PACKAGE VERSION EXECUTABLE: prints the path of EXECUTABLE from a virtual environment
# that holds exactly PACKAGE==VERSION, creating it on first use. A marker written after a
# successful install makes an interrupted install start over instead of being trusted.
py_tool() {
  local package=$1 version=$2 executable=$3
  local venv="$TOOLS_DIR/$package-$version"
  if [[ ! -f "$venv/.installed" ]]; then
    echo "installing $package==$version (once) into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$venv" >&2 &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package==$version" >&2 &&
      touch "$venv/.installed" || { echo "could not install $package==$version" >&2; return 1; }
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

step() {
  printf '\n== %s\n' "$1"
}

verdict() {
  local name=$1 status=$2
  if [[ $status -eq 0 ]]; then
    echo "PASS $name"
  else
    echo "FAIL $name"
    failed+=("$name")
  fi
}

step "cfn-lint $CFN_LINT_VERSION template.yaml (errors, warnings and informational findings all fail)"
if lint="$(cfn_lint_bin)"; then
  "$lint" --format parseable template.yaml
  verdict cfn-lint $?
else
  verdict cfn-lint 1
fi

step "sam validate and sam validate --lint (SAM CLI $SAM_CLI_VERSION, offline, dummy credentials)"
if sam="$(py_tool aws-sam-cli "$SAM_CLI_VERSION" sam)"; then
  # Both forms: plain validate runs the SAM transform (it rejects, say, an unknown event
  # type), --lint runs only SAM's bundled cfn-lint. Neither makes an AWS call; they need a
  # region, and the dummy credentials keep the SDK's credential chain from looking further.
  status=0
  for lint in "" --lint; do
    env SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_SESSION_TOKEN= \
      "$sam" validate $lint --region us-east-1 --template-file template.yaml || status=1
  done
  verdict "sam validate" $status
else
  verdict "sam validate" 1
fi

step "asl-validator on statemachines/*.asl.json"
if asl="$(asl_validator_bin)"; then
  shopt -s nullglob
  definitions=(statemachines/*.asl.json)
  if [[ ${#definitions[@]} -eq 0 ]]; then
    echo "no statemachines/*.asl.json found"
    verdict asl-validator 1
  else
    status=0
    for definition in "${definitions[@]}"; do
      "$asl" --json-path "$definition" || status=1
    done
    verdict asl-validator $status
  fi
else
  verdict asl-validator 1
fi

step "checkov $CHECKOV_VERSION on template.yaml"
if checkov="$(py_tool checkov "$CHECKOV_VERSION" checkov)" && python="$(check_python)"; then
  # --skip-download: no platform calls; the built-in checks are all offline.
  "$checkov" --file template.yaml --framework cloudformation --skip-download \
    --output json >"$WORK/checkov.json" 2>"$WORK/checkov.err"
  if [[ ! -s "$WORK/checkov.json" ]]; then
    cat "$WORK/checkov.err"
    verdict checkov 1
  else
    "$python" scripts/checks/checkov_report.py "$WORK/checkov.json"
    verdict checkov $?
  fi
else
  verdict checkov 1
fi

step "template_check.py: substitutions, grants, retries, workflow inputs"
if python="$(check_python)"; then
  "$python" scripts/checks/template_check.py
  verdict template_check $?
else
  verdict template_check 1
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "10-template: ${#failed[@]} check(s) failed: ${failed[*]}"
  exit 1
fi
echo "10-template: all 5 checks passed"
