#!/usr/bin/env bash
# Builds and deploys leasehold to the AWS account of the current credentials.
#
# Usage: scripts/deploy.sh [--config-env ENV] [--no-build] [--guided] [-- sam deploy arguments]
#   --config-env ENV   samconfig.toml environment: default (stack "leasehold") or dev
#                      (stack "leasehold-dev": no deletion protection, short log retention)
#   --no-build         deploy what the last `scripts/sam-build.sh` built (.aws-sam/build)
#   --guided           let `sam deploy` ask for every setting (and offer to save them)
#   --                 everything after it goes to `sam deploy` unchanged, for example
#                      -- --parameter-overrides PoolBudget=20 --region eu-west-1
#
# Parameters and their defaults: template.yaml and docs/deploy.md. The stack's outputs (state
# machine ARNs, tables, database endpoint, dashboard) are printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/checks/pinned-tools.bash
. scripts/checks/pinned-tools.bash

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

config_env=default
build=1
guided=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --config-env)
      [[ $# -ge 2 && -n "$2" ]] || { echo "deploy: --config-env needs a value" >&2; exit 2; }
      config_env=$2
      shift 2
      ;;
    --no-build) build=0; shift ;;
    --guided) guided=(--guided); shift ;;
    --) shift; break ;;
    *) echo "deploy: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

stack=$(python3 - "$config_env" <<'EOF'
import sys
import tomllib

with open("samconfig.toml", "rb") as handle:
    config = tomllib.load(handle)
env = config.get(sys.argv[1])
if env is None:
    sys.exit(f"deploy: samconfig.toml has no environment '{sys.argv[1]}'")
print(env["global"]["parameters"]["stack_name"])
EOF
)

if [[ $build -eq 1 ]]; then
  scripts/sam-build.sh
elif [[ ! -f .aws-sam/build/template.yaml ]]; then
  echo "deploy: nothing built yet; run without --no-build" >&2
  exit 2
fi

sam="$(sam_bin)"
SAM_CLI_TELEMETRY=0 "$sam" deploy --config-env "$config_env" "${guided[@]}" "$@"

region_args=()
for ((i = 1; i <= $#; i++)); do
  if [[ "${!i}" == --region ]]; then
    next=$((i + 1))
    region_args=(--region "${!next}")
  fi
done
aws cloudformation describe-stacks --stack-name "$stack" "${region_args[@]}" \
  --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output table
echo "next: scripts/load-run.sh --stack-name $stack   (docs/deploy.md)"
