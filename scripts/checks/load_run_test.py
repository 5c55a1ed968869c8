#!/usr/bin/env python3
"""Runs scripts/load-run.sh against a stub Step Functions endpoint on 127.0.0.1.

The stub speaks the AWS JSON 1.0 protocol the aws CLI uses (ListStateMachines, StartExecution,
DescribeExecution). Its state machines behave by name: `<stack>-load-harness` reports RUNNING
twice, then SUCCEEDED with a summary computed from the execution's input; `broken-load-harness`
FAILS; `slow-load-harness` never finishes. Each case asserts on the script's exit status and
output. Run from the repository root; exits 1 when a case fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REGION = "us-east-1"
ACCOUNT = "123456789012"


def machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


MACHINES = ["stub-connection", "stub-load-harness", "broken-load-harness", "slow-load-harness"]


class Stub(BaseHTTPRequestHandler):
    executions: dict[str, dict] = {}
    calls: list[str] = []

    def log_message(self, *args):  # keep the test output readable
        pass

    def do_POST(self):
        target = self.headers.get("X-Amz-Target", "").split(".")[-1]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        Stub.calls.append(target)
        handler = getattr(self, f"op_{target}", None)
        if handler is None:
            return self.reply(400, {"__type": "UnknownOperationException", "message": target})
        return handler(body)

    def reply(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def op_ListStateMachines(self, body):
        machines = [
            {"stateMachineArn": machine_arn(n), "name": n, "type": "STANDARD", "creationDate": 1.7e9}
            for n in MACHINES
        ]
        self.reply(200, {"stateMachines": machines})

    def op_StartExecution(self, body):
        name = body["stateMachineArn"].rsplit(":", 1)[1]
        if name not in MACHINES:
            return self.reply(400, {"__type": "StateMachineDoesNotExist", "message": name})
        execution_name = body.get("name") or f"run-{len(Stub.executions) + 1}"
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{name}:{execution_name}"
        Stub.executions[arn] = {"machine": name, "input": body.get("input", "{}"), "polls": 0}
        self.reply(200, {"executionArn": arn, "startDate": time.time()})

    def op_DescribeExecution(self, body):
        arn = body["executionArn"]
        run = Stub.executions.get(arn)
        if run is None:
            return self.reply(400, {"__type": "ExecutionDoesNotExist", "message": arn})
        run["polls"] += 1
        reply = {
            "executionArn": arn,
            "stateMachineArn": machine_arn(run["machine"]),
            "status": "RUNNING",
            "startDate": 1.7e9,
            "input": run["input"],
        }
        if run["machine"] == "broken-load-harness":
            reply.update(status="FAILED", error="States.Runtime", cause="stub failure")
        elif run["machine"] == "stub-load-harness" and run["polls"] > 2:
            request = json.loads(run["input"])
            n = request["iterations"]
            summary = {"iterations": n, "concurrency": request["concurrency"], "served": n - 1,
                       "fallback": 1, "fromCache": 1, "shed": 0, "failed": 0}
            reply.update(status="SUCCEEDED", output=json.dumps(summary))
        self.reply(200, reply)


FAILURES: list[str] = []


def run(name: str, args: list[str], expect_status: int, expect_out: list[str], env_extra=None):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "stub",
        "AWS_SECRET_ACCESS_KEY": "stub",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    env.update(env_extra or {})
    started = time.monotonic()
    done = subprocess.run(
        ["scripts/load-run.sh", *args], env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    missing = [text for text in expect_out if text not in output]
    took = time.monotonic() - started
    if done.returncode != expect_status or missing:
        FAILURES.append(name)
        print(f"  FAIL {name}: exit {done.returncode} (want {expect_status}), missing {missing}")
        print("       " + output.replace("\n", "\n       "))
    else:
        print(f"  ok   {name} (exit {done.returncode}, {took:.1f}s)")


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"load-run.sh against a stub Step Functions endpoint ({endpoint})")
    try:
        run("unknown option is a usage error", ["--bogus"], 2, ["unknown option '--bogus'"])
        run("option without its value", ["--input"], 2, ["--input needs a value"])
        run("non-numeric timeout", ["--timeout", "soon"], 2, ["--timeout must be a positive number"])
        run("missing input file", ["--input", "events/none.json"], 2, ["does not exist"])
        run("malformed ARN", ["--state-machine-arn", "harness"], 2, ["is not a state machine ARN"])
        summary = "iterations=20  served=19  fallback=1  fromCache=1  shed=0  failed=0"
        run(
            "finds the harness by stack name, waits, prints summary and link",
            ["--endpoint-url", endpoint, "--stack-name", "stub", "--poll", "1"],
            0,
            [
                summary,
                "status    SUCCEEDED",
                f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
                f"#/v2/executions/details/arn:aws:states:{REGION}:{ACCOUNT}:execution:stub-load-harness:",
            ],
        )
        run(
            "AWS_ENDPOINT_URL_SFN, an explicit ARN, --input and --name",
            ["--state-machine-arn", machine_arn("stub-load-harness"), "--input",
             "events/harness-large.json", "--name", "nightly-1", "--poll", "1"],
            0,
            ["iterations=1000", "execution:stub-load-harness:nightly-1"],
            {"AWS_ENDPOINT_URL_SFN": endpoint},
        )
        run(
            "AWS_ENDPOINT_URL alone: found by name, no CloudFormation call",
            ["--stack-name", "stub", "--poll", "1"],
            0,
            ["iterations=20", "execution:stub-load-harness:"],
            {"AWS_ENDPOINT_URL": endpoint},
        )
        run(
            "failed run exits 1 with the error",
            ["--endpoint-url", endpoint, "--state-machine-arn", machine_arn("broken-load-harness")],
            1,
            ["status    FAILED", "States.Runtime"],
        )
        run(
            "bounded wait exits 3 and says how to stop the run",
            ["--endpoint-url", endpoint, "--state-machine-arn", machine_arn("slow-load-harness"),
             "--timeout", "1", "--poll", "1"],
            3,
            ["still RUNNING", "stop-execution --execution-arn"],
        )
        run(
            "unknown stack at the endpoint",
            ["--endpoint-url", endpoint, "--stack-name", "absent"],
            4,
            ["found no load harness for stack 'absent'"],
        )
    finally:
        server.shutdown()
    if "StartExecution" not in Stub.calls:
        FAILURES.append("the stub never saw a StartExecution")
    print(f"load_run_test: {len(FAILURES)} failed" if FAILURES else "load_run_test: all cases passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
