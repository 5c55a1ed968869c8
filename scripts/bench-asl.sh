#!/usr/bin/env bash
# Side-by-side benchmark of the ASL interpreter (crates/asl) against moto's executing
# Step Functions interpreter and the npm package aws-local-stepfunctions, on one workflow:
# an inline Map over ITEMS items, each iteration a Choice and a Pass (2 transitions per item).
#
#   scripts/bench-asl.sh      (ITEMS=10000 MOTO_ITEMS=1000 REPEAT=5 OTHERS_REPEAT=2 CONCURRENCY=40)
#
# moto's interpreter takes about a minute for 1,000 items on this kind of machine and grows
# faster than linearly, so it runs on MOTO_ITEMS items and is compared with leasehold-asl on
# the same number; aws-local-stepfunctions runs the full ITEMS.
#
# Not part of the default test run. Needs python3 with moto 5 and boto3, and node/npm.
# moto executes state machines only when its stepfunctions config says so
# (`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`; the environment
# variable SF_EXECUTION_HISTORY_TYPE only shapes its static, non-executing answers).
# aws-local-stepfunctions is installed at a pinned version into a tools folder outside the
# repository ($LEASEHOLD_TOOLS_DIR, default ~/.cache/leasehold/tools).
#
# Every engine runs the same definition and input files. Time is the median wall time of one
# execution measured inside each engine's process (start to final status, excluding process
# start-up); memory is the peak resident set of the whole process (/usr/bin/time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ITEMS="${ITEMS:-10000}"
REPEAT="${REPEAT:-5}"
OTHERS_REPEAT="${OTHERS_REPEAT:-2}"
MOTO_ITEMS="${MOTO_ITEMS:-1000}"
CONCURRENCY="${CONCURRENCY:-40}"
ALS_VERSION=3.0.0
TOOLS_DIR="${LEASEHOLD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leasehold/tools}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TIME_BIN=/usr/bin/time
if [ ! -x "$TIME_BIN" ]; then
    echo "bench-asl: /usr/bin/time is required (apt-get install time)" >&2
    exit 1
fi

# measure NAME CMD...: runs CMD under /usr/bin/time; leaves its stdout in $WORK/NAME.out and
# its peak RSS (KiB) in $WORK/NAME.rss.
measure() {
    local name="$1"
    shift
    "$TIME_BIN" -f '%M' -o "$WORK/$name.rss" "$@" > "$WORK/$name.out"
}

field() { # field FILE KEY -> value of KEY=value in FILE
    grep -o "$2=[^ ]*" "$1" | head -n 1 | cut -d= -f2
}

echo "== building the leasehold-asl benchmark"
(cd "$ROOT" && cargo build --quiet --release -p leasehold-asl --example bench_map)
BENCH="$TARGET/release/examples/bench_map"

echo "== leasehold-asl ($ITEMS items, $REPEAT runs)"
mkdir -p "$WORK/full" "$WORK/small"
measure asl "$BENCH" --items "$ITEMS" --repeat "$REPEAT" --concurrency "$CONCURRENCY" --write "$WORK/full"
cat "$WORK/asl.out"
echo "== leasehold-asl ($MOTO_ITEMS items, $REPEAT runs)"
measure asl_small "$BENCH" --items "$MOTO_ITEMS" --repeat "$REPEAT" --concurrency "$CONCURRENCY" --write "$WORK/small"
cat "$WORK/asl_small.out"

echo "== moto $(python3 -c 'import moto; print(moto.__version__)') ($MOTO_ITEMS items, $OTHERS_REPEAT runs)"
cat > "$WORK/moto_bench.py" <<'PY'
import json, statistics, sys, time
import boto3
from moto import mock_aws

definition = open(sys.argv[1]).read()
payload = open(sys.argv[2]).read()
repeat = int(sys.argv[3])
times = []
for i in range(repeat):
    # A fresh mock per run: moto 5.2 fails a second StartExecution in one backend (it
    # deep-copies state that holds a lock once an execution has run).
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="bench", definition=definition, roleArn="arn:aws:iam::123456789012:role/bench"
        )["stateMachineArn"]
        started = time.perf_counter()
        ex = sfn.start_execution(stateMachineArn=arn, name=f"run-{i}", input=payload)["executionArn"]
        while True:
            d = sfn.describe_execution(executionArn=ex)
            if d["status"] != "RUNNING":
                break
            time.sleep(0.005)
        times.append(time.perf_counter() - started)
        if d["status"] != "SUCCEEDED":
            sys.exit(f"moto execution ended {d['status']}: {d.get('error')} {d.get('cause')}")
print(f"engine=moto run_ms_median={statistics.median(times) * 1e3:.1f} run_ms_best={min(times) * 1e3:.1f}")
PY
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 \
    measure moto python3 "$WORK/moto_bench.py" "$WORK/small/definition.json" "$WORK/small/input.json" "$OTHERS_REPEAT"
cat "$WORK/moto.out"

echo "== aws-local-stepfunctions $ALS_VERSION ($ITEMS items, $OTHERS_REPEAT runs)"
ALS_DIR="$TOOLS_DIR/aws-local-stepfunctions-$ALS_VERSION"
if [ ! -f "$ALS_DIR/node_modules/aws-local-stepfunctions/package.json" ]; then
    mkdir -p "$ALS_DIR"
    (cd "$ALS_DIR" && echo '{"private": true}' > package.json &&
        npm install --no-audit --no-fund --loglevel=error "aws-local-stepfunctions@$ALS_VERSION")
fi
cat > "$ALS_DIR/bench.mjs" <<'JS'
import { StateMachine } from 'aws-local-stepfunctions';
import { readFileSync } from 'node:fs';

const definition = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const input = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const repeat = Number(process.argv[4]);
const machine = new StateMachine(definition);
const times = [];
for (let i = 0; i < repeat; i++) {
  const started = performance.now();
  const execution = machine.run(input);
  await execution.result;
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
console.log(`engine=aws-local-stepfunctions run_ms_median=${times[Math.floor(times.length / 2)].toFixed(1)} run_ms_best=${times[0].toFixed(1)}`);
JS
measure als node "$ALS_DIR/bench.mjs" "$WORK/full/definition.json" "$WORK/full/input.json" "$OTHERS_REPEAT"
cat "$WORK/als.out"

echo
echo "== results (MaxConcurrency $CONCURRENCY; 1 + 2 x items state transitions per execution)"
python3 - "$WORK" "$ITEMS" "$MOTO_ITEMS" <<'PY'
import re, sys
work, items, moto_items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def row(name, label, n):
    out = open(f"{work}/{name}.out").read()
    ms = float(re.search(r"run_ms_median=([0-9.]+)", out).group(1))
    rss = int(open(f"{work}/{name}.rss").read().split()[-1]) / 1024
    return label, n, ms, rss
rows = [row("asl", "leasehold-asl", items), row("als", "aws-local-stepfunctions", items),
        row("asl_small", "leasehold-asl", moto_items), row("moto", "moto", moto_items)]
base = {n: (ms, rss) for label, n, ms, rss in rows if label == "leasehold-asl"}
print(f"{'engine':<26}{'items':>7}{'run ms':>11}{'us/transition':>15}{'peak RSS MiB':>14}{'time x':>9}{'memory x':>10}")
for label, n, ms, rss in rows:
    b_ms, b_rss = base[n]
    print(f"{label:<26}{n:>7}{ms:>11.1f}{ms * 1000 / (1 + 2 * n):>15.2f}{rss:>14.1f}{ms / b_ms:>9.1f}{rss / b_rss:>10.1f}")
PY
