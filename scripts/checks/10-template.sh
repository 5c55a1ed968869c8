#!/usr/bin/env bash
# Offline checks of the deployable side: template.yaml, statemachines/*.asl.json, events/.
#
#   1. cfn-lint                 no errors and no unexplained warnings (any finding fails)
#   2. sam validate [--lint]    the SAM transform, then SAM's bundled linter
#   3. asl-validator            every statemachines/*.asl.json
#   4. checkov                  security scan; findings fixed or suppressed in the template with
#                               a written reason, and no stale suppressions
#   5. template_check.py        substitutions, IAM grants for every workflow call, retry
#                               contract, workflow input samples (see its docstring); reads
#                               the template through `leasehold-local template-facts`, built
#                               first (checkov_report.py reads it that way too)
#   6. load_run_test.py         scripts/load-run.sh against a stub Step Functions endpoint
#
# Tools install themselves when missing, at the versions pinned in scripts/checks/pinned-tools.bash
# (Python tools in private virtual environments) and package-lock.json (asl-validator).
# Runs from any directory; exits non-zero when any check fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

# shellcheck source=scripts/checks/pinned-tools.bash
. scripts/checks/pinned-tools.bash
# shellcheck source=scripts/lib/stack.bash
. scripts/lib/stack.bash

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failed=()

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

step "leasehold-local (the template reader of template_check.py and checkov_report.py)"
if cargo build --quiet --locked -p leasehold-local --bin leasehold-local; then
  LEASEHOLD_LOCAL="$(stack_target_dir)/debug/leasehold-local"
  export LEASEHOLD_LOCAL
  echo "built $LEASEHOLD_LOCAL"
fi

step "cfn-lint $CFN_LINT_VERSION template.yaml (errors, warnings and informational findings all fail)"
if lint="$(cfn_lint_bin)"; then
  "$lint" --format parseable template.yaml
  verdict cfn-lint $?
else
  verdict cfn-lint 1
fi

step "sam validate and sam validate --lint (SAM CLI $SAM_CLI_VERSION, offline, dummy credentials)"
if sam="$(sam_bin)"; then
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

step "load_run_test.py: scripts/load-run.sh against a stub endpoint on 127.0.0.1"
if aws="$(aws_cli_bin)"; then
  PATH="$(dirname "$aws"):$PATH" python3 scripts/checks/load_run_test.py
  verdict load-run $?
else
  verdict load-run 1
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "10-template: ${#failed[@]} check(s) failed: ${failed[*]}"
  exit 1
fi
echo "10-template: all 6 checks passed"
