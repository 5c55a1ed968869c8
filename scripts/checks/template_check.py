#!/usr/bin/env python3
"""Consistency checks between template.yaml, statemachines/*.asl.json, events/ and docs/.

Run from the repository root (scripts/checks/10-template.sh does). Each section prints what it
checks; the script exits 1 when any check fails. The template is read by the local stack's own
reader, `leasehold-local template-facts` (short-form tags, DefinitionSubstitutions, event
patterns), from $LEASEHOLD_LOCAL or target/debug/leasehold-local; 10-template.sh builds it.

Sections:
  functions      the four handlers follow the build contract (CodeUri, BuildMethod, binary
                 name = the crate's [[bin]], provided.al2023, arm64, JSON logs, tracing)
  seed           the custom resource sends only properties the seed function accepts
  substitutions  every ${...} in an ASL file is provided by that state machine's
                 DefinitionSubstitutions, and every substitution is used
  grants         every Lambda function, DynamoDB table, state machine (and the .sync events
                 rule) a workflow calls is granted by that state machine's policies
  iam            no wildcard action anywhere; Resource "*" only for actions that have no
                 resource-level permissions
  retries        the retry contract of the connection workflow, and the worst-case wait of
                 its ConnectionsExhausted retrier is the number docs/workflows.md states
  events         every events/*.json parses; workflow inputs have the fields and ranges the
                 workflow checks; cleanup events match the cleanup rule's pattern
  tables         the tables the local services get (scripts/lib/provision.py) have the
                 template's key schemas
  database       least privilege and TLS: the query function signs in with IAM as the
                 application account the seed sets up (rds-db:connect on that user only, no
                 secret), only the seed reads the master secret, the database takes TLS only
                 (a parameter group with require_secure_transport) and both database functions
                 check its certificate against the CA bundle scripts/sam-build.sh ships; the
                 query function's network reaches MySQL only; docs/deploy.md describes it
  operations     the release function keeps reserved concurrency; alarms watch failed, timed
                 out and aborted executions, the lease functions' errors and throttles (the
                 release function's on their own), RDS DatabaseConnections, the queue's
                 metrics, and the drift a scheduled audit (no repair) publishes; the release
                 function's asynchronous invocations (the cleanup rule, the reclaim and audit
                 schedules) end in an SQS dead-letter queue when they fail for good (rule
                 targets' DeadLetterConfig and RetryPolicy, EventInvokeConfig OnFailure),
                 with the least grants to send there and an alarm on its depth; each alarm is
                 described in docs/operations.md
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path("template.yaml")
FAILURES: list[str] = []


def fail(message: str) -> None:
    FAILURES.append(message)
    print(f"  FAIL {message}")


def ok(message: str) -> None:
    print(f"  ok   {message}")


def verdict(subject: str, problems: list, success: str) -> None:
    """One line for a subject: its problems as a failure, or the success sentence."""
    if problems:
        fail(f"{subject}: " + "; ".join(problems))
    else:
        ok(success)


# ------------------------------------------------------------------ template facts


def load_facts() -> dict:
    """What the local stack's template reader knows (see crates/local/src/facts.rs)."""
    binary = os.environ.get("LEASEHOLD_LOCAL", "target/debug/leasehold-local")
    try:
        done = subprocess.run(
            [binary, "template-facts", "--template", str(TEMPLATE), "--events", "events"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise SystemExit(f"template_check: cannot run {binary} (cargo build -p leasehold-local): {error}")
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"template_check: {binary} template-facts failed")
    return json.loads(done.stdout)


def load_template() -> dict:
    """The template as written, short-form tags in their long form."""
    return load_facts()["template"]


def resources_of_type(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def ref_target(value, attribute_wanted: str = "Arn") -> str | None:
    """The logical id an ARN-valued expression points at: !Ref X, !GetAtt X.Arn, !Sub ${X.Arn}
    (or another attribute when asked)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target, attribute = value["Fn::GetAtt"]
            return target if attribute == attribute_wanted else None
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            match = re.fullmatch(r"\$\{([A-Za-z0-9]+)(\.Arn)?\}", value["Fn::Sub"])
            if match:
                return match.group(1)
    return None


def policy_statements(resource: dict) -> list[dict]:
    """Inline statements of a SAM function or state machine (policy templates are not used)."""
    statements = []
    for policy in as_list(resource.get("Properties", {}).get("Policies")):
        if isinstance(policy, dict) and "Statement" in policy:
            statements.extend(as_list(policy["Statement"]))
        else:
            fail(f"policy {policy!r} is not an inline statement list; this check cannot read it")
    return statements


def grants(statements: list[dict], action: str, resource_matches) -> bool:
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        if action not in as_list(statement.get("Action")):
            continue
        if any(resource_matches(r) for r in as_list(statement.get("Resource"))):
            return True
    return False


# ------------------------------------------------------------------ ASL walking


def walk_states(states: dict, prefix: str = ""):
    """Yields (name, state) for every state, nested Map and Parallel states included."""
    for name, state in states.items():
        yield prefix + name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from walk_states(processor["States"], f"{prefix}{name}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from walk_states(branch["States"], f"{prefix}{name}[{index}]/")


# ------------------------------------------------------------------ sections


def check_functions(template: dict) -> None:
    print("functions: the handlers' build and runtime contract")
    functions = resources_of_type(template, "AWS::Serverless::Function")
    globals_ = template.get("Globals", {}).get("Function", {})
    for logical_id, crate in (
        ("AcquireFunction", "acquire"),
        ("QueryFunction", "query"),
        ("ReleaseFunction", "release"),
        ("SeedFunction", "seed"),
    ):
        function = functions.get(logical_id)
        if function is None:
            fail(f"{logical_id} is missing")
            continue
        props = {**globals_, **function["Properties"]}
        meta = function.get("Metadata", {})
        problems = []
        if props.get("CodeUri") != f"handlers/{crate}":
            problems.append(f"CodeUri {props.get('CodeUri')!r}")
        if props.get("Runtime") != "provided.al2023":
            problems.append(f"Runtime {props.get('Runtime')!r}")
        if props.get("Architectures") != ["arm64"]:
            problems.append(f"Architectures {props.get('Architectures')!r}")
        if props.get("Handler") != "bootstrap":
            problems.append(f"Handler {props.get('Handler')!r}")
        if props.get("Tracing") != "Active":
            problems.append(f"Tracing {props.get('Tracing')!r}")
        if props.get("LoggingConfig", {}).get("LogFormat") != "JSON":
            problems.append("LoggingConfig.LogFormat is not JSON")
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"BuildMethod {meta.get('BuildMethod')!r}")
        binary = meta.get("BuildProperties", {}).get("Binary")
        manifest = Path("handlers", crate, "Cargo.toml")
        if manifest.exists():
            bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', manifest.read_text())
            if binary not in bins:
                problems.append(f"Binary {binary!r} is not a [[bin]] of {manifest} ({bins})")
        else:
            problems.append(f"{manifest} does not exist")
        verdict(logical_id, problems, f"{logical_id} builds handlers/{crate} (binary {binary}) for provided.al2023 arm64")


def check_seed_properties(template: dict) -> None:
    print("seed: the custom resource sends only properties the seed accepts")
    source = Path("handlers/seed/src/lib.rs")
    known = set()
    text = source.read_text() if source.exists() else ""
    for name in ("KNOWN_PROPERTIES", "IGNORED_PROPERTIES"):
        match = re.search(name + r"\s*:\s*\[&str;\s*\d+\]\s*=\s*\[(.*?)\];", text, re.S)
        if match:
            known |= set(re.findall(r'"([^"]+)"', match.group(1)))
    if "Pool" not in known:
        fail(f"{source} has no KNOWN_PROPERTIES list naming Pool to compare with")
        return
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "Custom::LeasePool":
            continue
        sent = set(resource.get("Properties", {}))
        unknown = sorted(sent - known)
        if unknown:
            fail(f"{logical_id} sends {unknown}, which the seed refuses (it knows {sorted(known)})")
        elif "Pool" not in sent:
            fail(f"{logical_id} sends no Pool")
        else:
            ok(f"{logical_id} sends {sorted(sent)}, all known to the seed")


def state_machines(template: dict):
    for logical_id, machine in resources_of_type(template, "AWS::Serverless::StateMachine").items():
        props = machine["Properties"]
        path = Path(props["DefinitionUri"])
        yield logical_id, props, path


def check_substitutions(template: dict, facts: dict) -> None:
    # The template reader refuses a definition using a ${...} it is not given, so only unused
    # substitutions can show here.
    print("substitutions: every ${...} of each definition comes from its DefinitionSubstitutions")
    for logical_id, props, path in state_machines(template):
        machine = facts["stateMachines"][logical_id]
        used = set(machine["placeholders"])
        provided = set(machine["substitutions"])
        for name in sorted(used - provided):
            fail(f"{path}: ${{{name}}} is not in {logical_id}.DefinitionSubstitutions")
        for name in sorted(provided - used):
            fail(f"{logical_id}.DefinitionSubstitutions.{name} is never used in {path}")
        if used == provided:
            ok(f"{path}: {len(used)} substitutions, all provided and used ({', '.join(sorted(used))})")


def check_grants(template: dict) -> None:
    print("grants: every ARN a workflow calls is allowed by that state machine's role")
    machines = resources_of_type(template, "AWS::Serverless::StateMachine")
    for logical_id, props, path in state_machines(template):
        definition = json.loads(path.read_text())
        substitutions = props.get("DefinitionSubstitutions", {})
        statements = policy_statements(machines[logical_id])

        def target_of(value: str, where: str) -> str | None:
            single = re.fullmatch(r"\$\{([^}]+)\}", value) if isinstance(value, str) else None
            if single is None:
                fail(f"{path} {where}: {value!r} is not a single ${{...}} substitution")
                return None
            name = single.group(1)
            target = ref_target(substitutions.get(name))
            if target is None:
                fail(f"{path} {where}: ${{{name}}} does not name a resource of the template")
            elif target not in template["Resources"]:
                fail(f"{path} {where}: ${{{name}}} points at unknown resource {target}")
                return None
            return target

        for state_name, state in walk_states(definition["States"]):
            if state.get("Type") != "Task":
                continue
            resource = state["Resource"]
            params = state.get("Parameters", {})
            where = f"state {state_name}"
            if resource.startswith("arn:aws:states:::lambda:invoke"):
                target = target_of(params.get("FunctionName"), where)
                if target and grants(statements, "lambda:InvokeFunction", lambda r: ref_target(r) == target):
                    ok(f"{logical_id} {where}: lambda:InvokeFunction on {target}")
                elif target:
                    fail(f"{logical_id} {where}: no lambda:InvokeFunction grant on {target}")
            elif resource.startswith("arn:aws:states:::dynamodb:"):
                operation = resource.rsplit(":", 1)[1]
                action = "dynamodb:" + operation[0].upper() + operation[1:]
                target = target_of(params.get("TableName"), where)
                if target and grants(statements, action, lambda r: ref_target(r) == target):
                    ok(f"{logical_id} {where}: {action} on {target}")
                elif target:
                    fail(f"{logical_id} {where}: no {action} grant on {target}")
            elif resource.startswith("arn:aws:states:::states:startExecution"):
                target = target_of(params.get("StateMachineArn"), where)
                if not target:
                    continue
                if grants(statements, "states:StartExecution", lambda r: ref_target(r) == target):
                    ok(f"{logical_id} {where}: states:StartExecution on {target}")
                else:
                    fail(f"{logical_id} {where}: no states:StartExecution grant on {target}")
                if ".sync" in resource:
                    child_name = machines.get(target, {}).get("Properties", {}).get("Name")
                    child_sub = child_name.get("Fn::Sub") if isinstance(child_name, dict) else child_name
                    if not child_sub:
                        fail(f"{target} needs a Name so that its executions' ARNs can be granted")
                        continue
                    executions = f":execution:{child_sub}:*"

                    def on_executions(r, executions=executions):
                        return isinstance(r, dict) and str(r.get("Fn::Sub", "")).endswith(executions)

                    for action in ("states:DescribeExecution", "states:StopExecution"):
                        if grants(statements, action, on_executions):
                            ok(f"{logical_id} {where}: {action} on executions of {target}")
                        else:
                            fail(f"{logical_id} {where}: no {action} grant on '...{executions}'")

                    def on_sync_rule(r):
                        text = r.get("Fn::Sub", "") if isinstance(r, dict) else str(r)
                        return text.endswith(":rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")

                    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
                        if grants(statements, action, on_sync_rule):
                            ok(f"{logical_id} {where}: {action} on the managed .sync rule")
                        else:
                            fail(f"{logical_id} {where}: no {action} grant on the managed .sync rule")
            else:
                fail(f"{path} {where}: integration {resource} is unknown to this check; teach it")


# Actions that support no resource-level permissions, so Resource "*" is the only choice.
RESOURCE_WILDCARD_ALLOWED = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "cloudwatch:PutMetricData",
}


def all_statements(template: dict):
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for statement in policy_statements(resource):
                yield logical_id, statement
        elif kind == "AWS::IAM::Policy":
            for statement in as_list(props["PolicyDocument"]["Statement"]):
                yield logical_id, statement
        elif kind == "AWS::IAM::Role":
            for policy in as_list(props.get("Policies")):
                for statement in as_list(policy["PolicyDocument"]["Statement"]):
                    yield logical_id, statement
        elif kind == "AWS::EC2::VPCEndpoint" and "PolicyDocument" in props:
            for statement in as_list(props["PolicyDocument"]["Statement"]):
                yield logical_id, statement


def check_iam(template: dict) -> None:
    print("iam: no wildcard actions; Resource \"*\" only where AWS offers nothing narrower")
    before = len(FAILURES)
    count = 0
    for logical_id, statement in all_statements(template):
        count += 1
        actions = as_list(statement.get("Action"))
        for action in actions:
            if not isinstance(action, str) or "*" in action:
                fail(f"{logical_id}: wildcard or computed action {action!r}")
        if "*" in as_list(statement.get("Resource")):
            loose = [a for a in actions if a not in RESOURCE_WILDCARD_ALLOWED]
            if loose:
                fail(f"{logical_id}: Resource \"*\" for {loose}")
            if "cloudwatch:PutMetricData" in actions and "cloudwatch:namespace" not in json.dumps(
                statement.get("Condition", {})
            ):
                fail(f"{logical_id}: cloudwatch:PutMetricData without a cloudwatch:namespace condition")
    if count == 0:
        fail("found no policy statements at all")
    elif len(FAILURES) == before:
        ok(f"{count} statements checked, none too broad")


LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def worst_case_wait(retrier: dict) -> float:
    """Longest total sleep of a retrier: full jitter draws from [0, d], so the bound is sum(d)."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds")
    total = 0.0
    for attempt in range(retrier.get("MaxAttempts", 3)):
        delay = interval * rate**attempt
        total += min(delay, cap) if cap else delay
    return total


def check_retries() -> None:
    print("retries: the connection workflow's retry contract")
    path = Path("statemachines/connection.asl.json")
    states = dict(walk_states(json.loads(path.read_text())["States"]))
    for name, state in states.items():
        for retrier in state.get("Retry", []):
            if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
                fail(f"{path} {name}: JitterStrategy {retrier['JitterStrategy']!r}")
        if state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
            covered = set()
            for retrier in state.get("Retry", []):
                covered |= set(retrier["ErrorEquals"])
            if name == "Query":
                # A retried query may run beside the first invocation under the same lease:
                # only a throttle proves that no invocation ran.
                ambiguous = (LAMBDA_SERVICE_ERRORS | {"Lambda.ClientExecutionTimeoutException"}) - {
                    "Lambda.TooManyRequestsException"
                }
                retried = sorted(covered & ambiguous)
                verdict(f"{path} {name}", [f"retries {retried}, which do not prove the first invocation ended"] if retried else [],
                        f"{name}: only throttling retried (a lost answer is not a second query)")
                continue
            missing = LAMBDA_SERVICE_ERRORS - covered
            if missing:
                fail(f"{path} {name}: Lambda service errors not retried: {sorted(missing)}")
            else:
                ok(f"{name}: Lambda service errors retried")
            for key in ("leaseId.$",):
                payload = state["Parameters"].get("Payload", {})
                if key in payload and payload[key] != "$$.Execution.Id":
                    fail(f"{path} {name}: leaseId is {payload[key]!r}, not the execution id")
    acquire = states.get("Acquire", {})
    exhausted = [r for r in acquire.get("Retry", []) if "ConnectionsExhausted" in r["ErrorEquals"]]
    if len(exhausted) != 1:
        fail(f"{path} Acquire: expected one retrier for ConnectionsExhausted, found {len(exhausted)}")
        return
    retrier = exhausted[0]
    missing = [k for k in ("MaxAttempts", "BackoffRate", "MaxDelaySeconds") if k not in retrier]
    if retrier.get("JitterStrategy") != "FULL":
        missing.append("JitterStrategy FULL")
    if missing:
        fail(f"{path} Acquire ConnectionsExhausted retrier lacks {missing}")
    catchers = [c for c in acquire.get("Catch", []) if "ConnectionsExhausted" in c["ErrorEquals"]]
    if not catchers:
        fail(f"{path} Acquire: ConnectionsExhausted is not caught into the fallback branch")
    wait = worst_case_wait(retrier)
    attempts = retrier["MaxAttempts"] + 1
    docs = Path("docs/workflows.md")
    stated = f"**{wait:g} s**"  # bold marks the ConnectionsExhausted figure in the docs
    if not docs.exists():
        fail(f"{docs} is missing; it must state the worst-case wait ({stated})")
    elif stated not in docs.read_text():
        fail(f"{docs} does not state the computed worst-case wait '{stated}' over {attempts} attempts")
    else:
        ok(f"ConnectionsExhausted: {attempts} attempts, worst-case wait {stated}, as {docs} states")


def choice_rules(state: dict):
    for choice in state.get("Choices", []):
        yield from choice.get("And", [choice])


def workflow_input_contract(path: Path) -> tuple[set[str], dict[str, tuple[float, float]]]:
    """Required fields (IsPresent in ValidateInput) and numeric ranges (CheckRanges) of a workflow."""
    states = json.loads(path.read_text())["States"]
    required = {
        rule["Variable"][2:]
        for rule in choice_rules(states.get("ValidateInput", {}))
        if rule.get("IsPresent") is True
    }
    ranges: dict[str, list[float]] = {}
    for rule in choice_rules(states.get("CheckRanges", {})):
        field = rule["Variable"][2:]
        if "NumericGreaterThanEquals" in rule:
            ranges.setdefault(field, [float("-inf"), float("inf")])[0] = rule["NumericGreaterThanEquals"]
        if "NumericLessThanEquals" in rule:
            ranges.setdefault(field, [float("-inf"), float("inf")])[1] = rule["NumericLessThanEquals"]
    return required, {k: (v[0], v[1]) for k, v in ranges.items()}


KNOWN_QUERIES = {"listEmployees": set(), "getEmployee": {"id"}}
MAX_HOLD_MS = 30000


def check_request_fields(name: str, event: dict, pool: str) -> list[str]:
    problems = []
    if event.get("pool") != pool:
        problems.append(f"pool {event.get('pool')!r} is not the template's default pool {pool!r}")
    query = event.get("query")
    if query not in KNOWN_QUERIES:
        problems.append(f"query {query!r} is not one of {sorted(KNOWN_QUERIES)}")
    params = event.get("params", {})
    if not isinstance(params, dict):
        problems.append("params is not an object")
    elif query in KNOWN_QUERIES and not KNOWN_QUERIES[query] <= set(params):
        problems.append(f"{query} needs params {sorted(KNOWN_QUERIES[query])}")
    hold = event.get("holdMs", 0)
    if not isinstance(hold, int) or isinstance(hold, bool) or not 0 <= hold <= MAX_HOLD_MS:
        problems.append(f"holdMs {hold!r} is not an integer in 0..{MAX_HOLD_MS}")
    return problems


def check_events(template: dict, facts: dict) -> None:
    print("events: samples parse; workflow inputs carry what the workflows read")
    pool = template["Parameters"]["PoolName"]["Default"]
    events = sorted(Path("events").glob("*.json"))
    if not events:
        fail("events/ has no samples")
    parsed = {}
    for path in events:
        try:
            parsed[path] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            fail(f"{path} is not JSON: {error}")
    ok(f"{len(parsed)} of {len(events)} files in events/ parse as JSON")

    contracts = {
        "connection-": Path("statemachines/connection.asl.json"),
        "harness-": Path("statemachines/load-harness.asl.json"),
    }
    seen = {prefix: 0 for prefix in contracts}
    for path, event in parsed.items():
        for prefix, definition in contracts.items():
            if not path.name.startswith(prefix):
                continue
            seen[prefix] += 1
            required, ranges = workflow_input_contract(definition)
            problems = [f"missing {field}" for field in sorted(required - set(event))]
            for field, (low, high) in ranges.items():
                value = event.get(field)
                if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                    problems.append(f"{field} {value!r} outside {low:g}..{high:g}")
            problems += check_request_fields(path.name, event, pool)
            verdict(path, problems, f"{path} fits {definition} (needs {', '.join(sorted(required))})")
    for prefix, count in seen.items():
        if count == 0:
            fail(f"no events/{prefix}*.json sample for {contracts[prefix]}")

    # Matched by the local stack's EventBridge rules, for a stack named leasehold in us-east-1
    # under the local account: the identity the samples use.
    matched = facts["eventMatches"]
    cleanup = [p for p in parsed if p.name.startswith("cleanup-")]
    for path in cleanup:
        event = parsed[path]
        problems = []
        if "ReleaseFunction.Cleanup" not in matched.get(str(path), []):
            problems.append("does not match the Cleanup rule's pattern")
        machine = event.get("detail", {}).get("stateMachineArn", "")
        if not re.fullmatch(r"arn:aws:states:[a-z0-9-]+:\d{12}:stateMachine:.+-connection", machine):
            problems.append(f"stateMachineArn {machine!r} is not a connection workflow's")
        execution = event.get("detail", {}).get("executionArn", "")
        if ":execution:" not in execution:
            problems.append("detail.executionArn is not an execution ARN")
        try:
            original = json.loads(event.get("detail", {}).get("input") or "null")
        except json.JSONDecodeError:
            original = None
        if not isinstance(original, dict) or original.get("pool") != pool:
            problems.append(f"detail.input is not a JSON string with pool {pool!r}")
        verdict(path, problems, f"{path} matches the Cleanup rule and names the lease (executionArn) and pool")


def check_tables(facts: dict) -> None:
    print("tables: scripts/lib/provision.py creates the template's key schemas")
    provision = Path("scripts/lib/provision.py")
    schemas = None
    for node in ast.parse(provision.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "KEY_SCHEMAS" for t in node.targets):
            schemas = ast.literal_eval(node.value)
    if schemas is None:
        fail(f"{provision} has no KEY_SCHEMAS to compare with")
        return
    for logical_id, table in sorted(facts["tables"].items()):
        keys = [(k["AttributeName"], k["KeyType"]) for k in table["keys"]]
        types = sorted({k["AttributeType"] for k in table["keys"]})
        if logical_id not in schemas:
            fail(f"{provision} does not create {logical_id}")
        elif [tuple(k) for k in schemas[logical_id]] != keys or types != ["S"]:
            fail(f"{provision} creates {logical_id} with {schemas[logical_id]}, the template has {keys} ({types})")
        else:
            ok(f"{logical_id}: {keys}, string keys, as {provision} creates it")
    for logical_id in sorted(set(schemas) - set(facts["tables"])):
        fail(f"{provision} creates {logical_id}, which the template does not have")


def alarm_metrics(alarm: dict) -> set[tuple[str, str, str]]:
    """(namespace, metric, dimension value's target) of an alarm, plain or metric math."""
    props = alarm.get("Properties", {})
    found = set()
    def add(namespace, name, dimensions):
        targets = [
            ref_target(d.get("Value")) or ref_target(d.get("Value"), "QueueName") or str(d.get("Value"))
            for d in as_list(dimensions)
        ]
        for target in targets or [""]:
            found.add((str(namespace), str(name), target))
    if "MetricName" in props:
        add(props.get("Namespace"), props["MetricName"], props.get("Dimensions"))
    for metric in as_list(props.get("Metrics")):
        stat = metric.get("MetricStat", {}).get("Metric")
        if stat:
            add(stat.get("Namespace"), stat.get("MetricName"), stat.get("Dimensions"))
    return found


def get_att(value, attribute: str) -> str | None:
    """X of !GetAtt X.<attribute> (also as a one-placeholder !Sub)."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target, attr = value["Fn::GetAtt"]
            return target if attr == attribute else None
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            match = re.fullmatch(r"\$\{([A-Za-z0-9]+)\." + re.escape(attribute) + r"\}", value["Fn::Sub"])
            return match.group(1) if match else None
    return None


def dead_letter_problems(template: dict, release: dict, watched: set) -> list[str]:
    """Where the release function's asynchronous invocations go when they fail for good."""
    problems = []
    resources = template["Resources"]
    destination = (release.get("EventInvokeConfig", {}).get("DestinationConfig", {})
                   .get("OnFailure", {}))
    queue = get_att(destination.get("Destination"), "Arn")
    if destination.get("Type") != "SQS" or resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
        return ["ReleaseFunction has no EventInvokeConfig OnFailure destination of Type SQS on a queue of the template"]
    if "MaximumRetryAttempts" not in release["EventInvokeConfig"]:
        problems.append("ReleaseFunction's EventInvokeConfig does not state MaximumRetryAttempts")
    for name, event in release.get("Events", {}).items():
        if event.get("Type") not in ("EventBridgeRule", "Schedule"):
            continue
        props = event.get("Properties", {})
        if get_att(props.get("DeadLetterConfig", {}).get("Arn"), "Arn") != queue:
            problems.append(f"ReleaseFunction event {name} has no DeadLetterConfig on {queue}")
        if not {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(props.get("RetryPolicy", {})):
            problems.append(f"ReleaseFunction event {name} has no RetryPolicy with both limits")
    # Least privilege: the release function may send to the queue (and nothing else may), and
    # EventBridge may only for this stack's rules.
    statements = policy_statements(resources["ReleaseFunction"])
    if not grants(statements, "sqs:SendMessage", lambda r: get_att(r, "Arn") == queue):
        problems.append(f"ReleaseFunction is not granted sqs:SendMessage on {queue}")
    for logical_id, statement in all_statements(template):
        sqs = [a for a in as_list(statement.get("Action")) if str(a).startswith("sqs:")]
        if sqs and logical_id != "ReleaseFunction":
            problems.append(f"{logical_id} is granted {sqs}")
        if sqs and any(get_att(r, "Arn") != queue for r in as_list(statement.get("Resource"))):
            problems.append(f"{logical_id}: {sqs} on something other than {queue}")
    policies = [r for r in resources.values() if r.get("Type") == "AWS::SQS::QueuePolicy"
                and queue in [ref_target(q) for q in as_list(r["Properties"].get("Queues"))]]
    rules = sorted(f"ReleaseFunction{name}" for name, event in release.get("Events", {}).items()
                   if event.get("Type") in ("EventBridgeRule", "Schedule"))
    if len(policies) != 1:
        problems.append(f"{queue} has no queue policy letting EventBridge deliver to it")
    else:
        for statement in as_list(policies[0]["Properties"]["PolicyDocument"]["Statement"]):
            principal = statement.get("Principal", {})
            if principal != {"Service": "events.amazonaws.com"}:
                problems.append(f"{queue}'s policy allows {principal!r}, not EventBridge alone")
            if as_list(statement.get("Action")) != ["sqs:SendMessage"]:
                problems.append(f"{queue}'s policy allows {statement.get('Action')!r}")
            sources = as_list(statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn"))
            if sorted(get_att(s_, "Arn") for s_ in sources) != rules:
                problems.append(f"{queue}'s policy is not limited to the rules {rules} (aws:SourceArn)")
    if not any(ns == "AWS/SQS" and name == "ApproximateNumberOfMessagesVisible" and target == queue
               for ns, name, target in watched):
        problems.append(f"no alarm on the depth of {queue} (AWS/SQS ApproximateNumberOfMessagesVisible)")
    return problems


def check_database(template: dict) -> None:
    print("database: IAM sign-in as the application account, the master secret for the seed only, TLS")
    problems = []
    resources = template["Resources"]
    database = resources.get("Database", {}).get("Properties", {})
    if database.get("EnableIAMDatabaseAuthentication") is not True:
        problems.append("Database has no EnableIAMDatabaseAuthentication: true")
    group = resources.get(ref_target(database.get("DBParameterGroupName")) or "", {})
    if group.get("Type") != "AWS::RDS::DBParameterGroup" or str(
        group.get("Properties", {}).get("Parameters", {}).get("require_secure_transport")
    ) not in ("1", "ON"):
        problems.append("Database has no parameter group with require_secure_transport=1")
    functions = resources_of_type(template, "AWS::Serverless::Function")
    env = {k: f["Properties"].get("Environment", {}).get("Variables", {}) for k, f in functions.items()}
    query, seed = env.get("QueryFunction", {}), env.get("SeedFunction", {})
    user = query.get("DB_USER")
    if query.get("DB_AUTH") != "iam" or not user:
        problems.append("QueryFunction does not sign in with IAM (DB_AUTH: iam, DB_USER)")
    if "DB_SECRET_ARN" in query:
        problems.append("QueryFunction is given a database secret")
    if seed.get("DB_APP_AUTH") != "iam" or seed.get("DB_APP_USER") != user:
        problems.append(f"SeedFunction does not set up the query function's IAM user {user!r} (DB_APP_AUTH, DB_APP_USER)")
    master = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
    if seed.get("DB_SECRET_ARN") != master:
        problems.append("SeedFunction does not sign in with the master secret")
    bundle = None
    for name in ("QueryFunction", "SeedFunction"):
        path = env.get(name, {}).get("DB_TLS_CA_FILE")
        if not path:
            problems.append(f"{name} does not check the server's certificate (no DB_TLS_CA_FILE)")
        elif bundle not in (None, path):
            problems.append(f"the database functions name different CA bundles ({bundle}, {path})")
        else:
            bundle = path
    build = Path("scripts/sam-build.sh").read_text()
    if bundle and Path(bundle).name not in build:
        problems.append(f"scripts/sam-build.sh does not ship {Path(bundle).name} ({bundle})")
    # rds-db:connect: the query function, as its user, on this database only.
    wanted = f"arn:${{AWS::Partition}}:rds-db:${{AWS::Region}}:${{AWS::AccountId}}:dbuser:${{Database.DbiResourceId}}/{user}"
    connects = [(lid, st) for lid, st in all_statements(template) if "rds-db:connect" in as_list(st.get("Action"))]
    if [lid for lid, _ in connects] != ["QueryFunction"]:
        problems.append(f"rds-db:connect is granted to {[lid for lid, _ in connects]}, not QueryFunction alone")
    for lid, statement in connects:
        resources_ = [r.get("Fn::Sub") if isinstance(r, dict) else r for r in as_list(statement.get("Resource"))]
        if resources_ != [wanted]:
            problems.append(f"{lid}: rds-db:connect on {resources_}, not exactly {wanted}")
    # The master secret: read by the seed alone.
    for lid, statement in all_statements(template):
        actions = [a for a in as_list(statement.get("Action")) if str(a).startswith("secretsmanager:")]
        if not actions:
            continue
        if lid == "SeedFunction":
            continue
        principal = statement.get("Principal", {})
        if lid == "SecretsManagerEndpoint" and principal == {"AWS": {"Fn::GetAtt": ["SeedFunctionRole", "Arn"]}}:
            continue
        problems.append(f"{lid} grants {actions} beyond the seed function ({principal or 'its role'})")
    # The query function's network: MySQL only.
    for lid, rule in resources_of_type(template, "AWS::EC2::SecurityGroupEgress").items():
        props = rule["Properties"]
        if ref_target(props.get("GroupId")) == "QueryFunctionSecurityGroup" and props.get("FromPort") != 3306:
            problems.append(f"{lid} opens port {props.get('FromPort')} from the query function")
    docs = Path("docs/deploy.md").read_text()
    for term in ("rds-db:connect", "require_secure_transport", "DB_TLS_CA_FILE", "MAX_USER_CONNECTIONS", user or "?"):
        if term not in docs:
            problems.append(f"docs/deploy.md does not mention {term}")
    verdict(
        "database",
        problems,
        f"the query function signs in with IAM as {user} (rds-db:connect on it alone), only the seed "
        "reads the master secret, TLS is required and checked against the shipped CA bundle",
    )


def check_operations(template: dict) -> None:
    print("operations: reserved concurrency for release, and an alarm on every failure that matters")
    problems = []
    release = template["Resources"].get("ReleaseFunction", {}).get("Properties", {})
    if "ReservedConcurrentExecutions" not in release:
        problems.append("ReleaseFunction has no ReservedConcurrentExecutions")
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    watched = set()
    for alarm in alarms.values():
        watched |= alarm_metrics(alarm)
    names = {(ns, name) for ns, name, _ in watched}
    wanted = [
        (("AWS/States", "ExecutionsFailed"), "failed connection executions"),
        (("AWS/States", "ExecutionsTimedOut"), "timed-out connection executions"),
        (("AWS/States", "ExecutionsAborted"), "aborted connection executions"),
        (("AWS/RDS", "DatabaseConnections"), "the database's connections"),
    ]
    for key, what in wanted:
        if key not in names:
            problems.append(f"no alarm on {what} ({key[0]} {key[1]})")
    for metric in ["Errors", "Throttles"]:
        for function in ["ReleaseFunction", "AcquireFunction", "QueryFunction"]:
            if ("AWS/Lambda", metric, function) not in watched:
                problems.append(f"no alarm on {function}'s {metric}")
    for metric in ["NoConnectionsLeftError", "RemainingConnections", "WaitingRequests", "WaitTime",
                   "LeaseCounterDrift"]:
        if not any(name == metric for _, name in names):
            problems.append(f"no alarm on the pool metric {metric}")
    events = release.get("Events", {})
    def schedule_input(event: dict) -> str:
        raw = event.get("Properties", {}).get("Input", "")
        return raw.get("Fn::Sub", "") if isinstance(raw, dict) else str(raw)

    audits = [e for e in events.values()
              if e.get("Type") == "Schedule" and re.search(r'"audit":\s*true', schedule_input(e))]
    if not audits:
        problems.append('no scheduled audit of the pool (a Schedule event with "audit": true)')
    elif any('"repair"' in schedule_input(e) for e in audits):
        problems.append("the scheduled audit must only report, never repair")
    problems += dead_letter_problems(template, release, watched)
    docs = Path("docs/operations.md").read_text()
    if "CleanupDeadLetterQueue" not in docs:
        problems.append("docs/operations.md does not describe CleanupDeadLetterQueue")
    for logical_id in alarms:
        if f"`{logical_id}`" not in docs:
            problems.append(f"{logical_id} is not described in docs/operations.md")
    verdict(
        "operations",
        problems,
        f"release keeps reserved concurrency; {len(alarms)} alarms cover executions, functions, "
        "the database, the queue and the audit, each in docs/operations.md",
    )


def main() -> int:
    facts = load_facts()
    template = facts["template"]
    check_functions(template)
    check_seed_properties(template)
    check_substitutions(template, facts)
    check_grants(template)
    check_iam(template)
    check_retries()
    check_events(template, facts)
    check_tables(facts)
    check_database(template)
    check_operations(template)
    if FAILURES:
        print(f"template_check: {len(FAILURES)} problem(s)")
        return 1
    print("template_check: all consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
