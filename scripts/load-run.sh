#!/usr/bin/env bash
# Starts one run of the load harness, waits for it, and prints its summary and console link.
#
# Usage: scripts/load-run.sh [options]
#   --state-machine-arn ARN   the load harness to start (default: found, see below)
#   --stack-name NAME         stack whose LoadHarnessStateMachineArn output names the harness
#                             (default: leasehold, the stack name in samconfig.toml)
#   --input FILE              harness input (default: events/harness-small.json)
#   --name NAME               execution name (default: one Step Functions makes up)
#   --endpoint-url URL        Step Functions endpoint, e.g. the local stack's; with an endpoint
#                             (also from the environment) the harness is found by its name,
#                             <stack>-load-harness, with list-state-machines
#   --region REGION           region (default: AWS_REGION, AWS_DEFAULT_REGION or the CLI's config)
#   --timeout SECONDS         give up waiting after this long (default 3600); the run goes on
#   --poll SECONDS            time between status checks (default 5)
#   -h, --help                show this help
#
# AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SFN in the environment are honoured by the aws CLI itself.
# Exit status: 0 the run succeeded, 1 it failed, timed out or was aborted, 2 usage error,
# 3 still running when --timeout ran out, 4 the harness or the aws CLI could not be reached.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die_usage() {
  echo "load-run: $*" >&2
  echo "run 'scripts/load-run.sh --help' for the options" >&2
  exit 2
}

die() {
  echo "load-run: $*" >&2
  exit 4
}

arn=""
stack="leasehold"
input="$ROOT/events/harness-small.json"
name=""
endpoint=""
region=""
timeout=3600
poll=5

while [[ $# -gt 0 ]]; do
  option=$1
  case "$option" in
    -h | --help)
      usage
      exit 0
      ;;
    --state-machine-arn | --stack-name | --input | --name | --endpoint-url | --region | --timeout | --poll)
      [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die_usage "$option needs a value"
      value=$2
      shift 2
      ;;
    --*=*)
      die_usage "write '${option%%=*} VALUE', not '$option'"
      ;;
    *)
      die_usage "unknown option '$option'"
      ;;
  esac
  case "$option" in
    --state-machine-arn) arn=$value ;;
    --stack-name) stack=$value ;;
    --input) input=$value ;;
    --name) name=$value ;;
    --endpoint-url) endpoint=$value ;;
    --region) region=$value ;;
    --timeout) timeout=$value ;;
    --poll) poll=$value ;;
  esac
done

[[ "$timeout" =~ ^[0-9]+$ && "$timeout" -gt 0 ]] || die_usage "--timeout must be a positive number of seconds"
[[ "$poll" =~ ^[0-9]+$ && "$poll" -gt 0 ]] || die_usage "--poll must be a positive number of seconds"
if [[ -n "$arn" && ! "$arn" =~ ^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]+$ ]]; then
  die_usage "--state-machine-arn '$arn' is not a state machine ARN"
fi
[[ -f "$input" ]] || die_usage "input file '$input' does not exist"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$input" 2>/dev/null ||
  die_usage "input file '$input' is not valid JSON"
command -v aws >/dev/null || die "the aws CLI is not installed"

if [[ -z "$region" ]]; then
  region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
fi
[[ -n "$region" ]] || die_usage "no region: pass --region or set AWS_REGION"

sfn=(aws stepfunctions --region "$region")
[[ -n "$endpoint" ]] && sfn+=(--endpoint-url "$endpoint")

if [[ -z "$arn" ]]; then
  if [[ -n "$endpoint" || -n "${AWS_ENDPOINT_URL_SFN:-}" || -n "${AWS_ENDPOINT_URL:-}" ]]; then
    # A local stack has no CloudFormation: find the harness by the name the template gives it.
    arn=$("${sfn[@]}" list-state-machines --output text \
      --query "stateMachines[?name=='$stack-load-harness'].stateMachineArn | [0]") ||
      die "could not list state machines at ${endpoint:-${AWS_ENDPOINT_URL_SFN:-$AWS_ENDPOINT_URL}}"
  else
    arn=$(aws cloudformation describe-stacks --region "$region" --stack-name "$stack" --output text \
      --query "Stacks[0].Outputs[?OutputKey=='LoadHarnessStateMachineArn'].OutputValue | [0]") ||
      die "could not read the outputs of stack '$stack' (deployed? credentials? region $region?)"
  fi
  [[ -n "$arn" && "$arn" != "None" ]] || die "found no load harness for stack '$stack'"
fi

start=(start-execution --state-machine-arn "$arn" --input "file://$input" --output text --query executionArn)
[[ -n "$name" ]] && start+=(--name "$name")
execution=$("${sfn[@]}" "${start[@]}") || die "could not start $arn"

execution_region=$(cut -d: -f4 <<<"$execution")
console="https://$execution_region.console.aws.amazon.com/states/home?region=$execution_region#/v2/executions/details/$execution"
echo "started   $execution"
echo "input     $input"
echo "console   $console"

deadline=$((SECONDS + timeout))
status=RUNNING
while :; do
  status=$("${sfn[@]}" describe-execution --execution-arn "$execution" --output text --query status) ||
    die "could not describe $execution"
  [[ "$status" != RUNNING && "$status" != PENDING_REDRIVE ]] && break
  if ((SECONDS >= deadline)); then
    echo "load-run: still $status after ${timeout}s; it goes on. Stop it with:" >&2
    echo "  aws stepfunctions stop-execution --execution-arn $execution" >&2
    exit 3
  fi
  sleep "$poll"
done

echo "status    $status"
if [[ "$status" != SUCCEEDED ]]; then
  "${sfn[@]}" describe-execution --execution-arn "$execution" --output json --query '{error: error, cause: cause}' >&2 || true
  echo "console   $console"
  exit 1
fi

output=$("${sfn[@]}" describe-execution --execution-arn "$execution" --output text --query output)
python3 - "$output" <<'EOF'
import json
import sys

summary = json.loads(sys.argv[1])
print("summary   " + json.dumps(summary, sort_keys=True))
keys = ("iterations", "served", "fallback", "fromCache", "shed", "failed")
print("          " + "  ".join(f"{k}={summary[k]}" for k in keys if k in summary))
EOF
echo "console   $console"
