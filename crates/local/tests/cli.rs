//! The real `aws` CLI against the local stack, unchanged but for `--endpoint-url`.

mod common;

use common::{Setup, TestStack, aws, ok, start, workspace};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT_MACHINE: &str = r#"{"StartAt": "Hello", "States": {
  "Hello": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hi {}', $.name)"}, "Next": "Nap"},
  "Nap": {"Type": "Wait", "SecondsPath": "$$.Execution.Input.nap", "Next": "Done"},
  "Done": {"Type": "Succeed"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_round_trip() {
    let t = start(Setup::default()).await;
    let url = t.url.clone();
    let role = "arn:aws:iam::123456789012:role/local";
    let name = format!("{}-cli", t.name);

    // create, describe, list
    let created = ok(
        &url,
        &[
            "stepfunctions",
            "create-state-machine",
            "--name",
            &name,
            "--definition",
            WAIT_MACHINE,
            "--role-arn",
            role,
        ],
    );
    let machine = created["stateMachineArn"].as_str().unwrap().to_owned();
    let described = ok(
        &url,
        &[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            &machine,
        ],
    );
    assert_eq!(
        (described["status"].as_str(), described["type"].as_str()),
        (Some("ACTIVE"), Some("STANDARD"))
    );
    let listed = ok(&url, &["stepfunctions", "list-state-machines"]);
    assert!(
        listed["stateMachines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["stateMachineArn"] == json!(machine))
    );

    // start, describe, history (paged and reversed), list with a status filter
    let started = ok(
        &url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &machine,
            "--name",
            "quick",
            "--input",
            r#"{"name": "Ada", "nap": 0}"#,
        ],
    );
    let execution = started["executionArn"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for _ in 0..100 {
        done = ok(
            &url,
            &[
                "stepfunctions",
                "describe-execution",
                "--execution-arn",
                &execution,
            ],
        );
        if done["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "SUCCEEDED");
    let output: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["greeting"], "hi Ada");
    let history = ok(
        &url,
        &[
            "stepfunctions",
            "get-execution-history",
            "--execution-arn",
            &execution,
        ],
    );
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.first().unwrap()["type"], "ExecutionStarted");
    assert_eq!(events.last().unwrap()["type"], "ExecutionSucceeded");
    let reversed = ok(
        &url,
        &[
            "stepfunctions",
            "get-execution-history",
            "--execution-arn",
            &execution,
            "--reverse-order",
            "--max-items",
            "2",
        ],
    );
    let page: Vec<&str> = reversed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(page, ["ExecutionSucceeded", "SucceedStateExited"]);
    assert!(
        reversed["NextToken"].is_string(),
        "the CLI pages on the API's nextToken"
    );
    let listed = ok(
        &url,
        &[
            "stepfunctions",
            "list-executions",
            "--state-machine-arn",
            &machine,
            "--status-filter",
            "SUCCEEDED",
        ],
    );
    assert_eq!(listed["executions"].as_array().unwrap().len(), 1);

    // stop a running execution
    let long = ok(
        &url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &machine,
            "--input",
            r#"{"name": "Bob", "nap": 60}"#,
        ],
    );
    let long = long["executionArn"].as_str().unwrap().to_owned();
    let stopped = ok(
        &url,
        &[
            "stepfunctions",
            "stop-execution",
            "--execution-arn",
            &long,
            "--error",
            "Operator",
            "--cause",
            "test",
        ],
    );
    assert!(stopped["stopDate"].is_number());
    let aborted = ok(
        &url,
        &[
            "stepfunctions",
            "describe-execution",
            "--execution-arn",
            &long,
        ],
    );
    assert_eq!(aborted["status"], "ABORTED");
    let running = ok(
        &url,
        &[
            "stepfunctions",
            "list-executions",
            "--state-machine-arn",
            &machine,
            "--status-filter",
            "RUNNING",
        ],
    );
    assert!(running["executions"].as_array().unwrap().is_empty());

    // start-sync on an EXPRESS machine (and not on a STANDARD one)
    let express = ok(
        &url,
        &[
            "stepfunctions",
            "create-state-machine",
            "--name",
            &format!("{name}-x"),
            "--type",
            "EXPRESS",
            "--definition",
            WAIT_MACHINE,
            "--role-arn",
            role,
        ],
    );
    let express = express["stateMachineArn"].as_str().unwrap().to_owned();
    let sync = ok(
        &url,
        &[
            "stepfunctions",
            "start-sync-execution",
            "--state-machine-arn",
            &express,
            "--input",
            r#"{"name": "Eve", "nap": 1}"#,
        ],
    );
    assert_eq!(sync["status"], "SUCCEEDED");
    assert!(sync["output"].as_str().unwrap().contains("hi Eve"));
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "start-sync-execution",
            "--state-machine-arn",
            &machine,
        ],
    );
    assert!(
        !success && stderr.contains("StateMachineTypeNotSupported"),
        "{stderr}"
    );

    // AWS error shapes reach the CLI by name
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "describe-execution",
            "--execution-arn",
            &format!("{machine}:nope").replace(":stateMachine:", ":execution:"),
        ],
    );
    assert!(
        !success && stderr.contains("ExecutionDoesNotExist"),
        "{stderr}"
    );
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "create-state-machine",
            "--name",
            "broken",
            "--definition",
            r#"{"StartAt": "Nowhere", "States": {}}"#,
            "--role-arn",
            role,
        ],
    );
    assert!(!success && stderr.contains("InvalidDefinition"), "{stderr}");
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &machine,
            "--name",
            "quick",
            "--input",
            "{\"other\": 1}",
        ],
    );
    assert!(
        !success && stderr.contains("ExecutionAlreadyExists"),
        "{stderr}"
    );
    let validated = ok(
        &url,
        &[
            "stepfunctions",
            "validate-state-machine-definition",
            "--definition",
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
        ],
    );
    assert_eq!(validated["result"], "FAIL");
    assert_eq!(
        validated["diagnostics"][0]["code"],
        "MISSING_TRANSITION_TARGET"
    );

    // list-executions pages; update and delete
    let paged = ok(
        &url,
        &[
            "stepfunctions",
            "list-executions",
            "--state-machine-arn",
            &machine,
            "--max-items",
            "1",
        ],
    );
    assert_eq!(paged["executions"].as_array().unwrap().len(), 1);
    assert!(
        paged["NextToken"].is_string(),
        "two executions, one per page"
    );
    let simpler =
        r#"{"StartAt": "Only", "States": {"Only": {"Type": "Pass", "Result": "v2", "End": true}}}"#;
    let updated = ok(
        &url,
        &[
            "stepfunctions",
            "update-state-machine",
            "--state-machine-arn",
            &machine,
            "--definition",
            simpler,
        ],
    );
    assert!(updated["updateDate"].is_number());
    let described = ok(
        &url,
        &[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            &machine,
        ],
    );
    assert_eq!(described["definition"], simpler);
    ok(
        &url,
        &[
            "stepfunctions",
            "delete-state-machine",
            "--state-machine-arn",
            &express,
        ],
    );
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            &express,
        ],
    );
    assert!(
        !success && stderr.contains("StateMachineDoesNotExist"),
        "{stderr}"
    );

    // a load harness run started from the CLI with the small load sample
    let harness = t.arn("LoadHarnessStateMachine");
    let run = run_from_cli(&t, &url, &harness, "events/harness-small.json", 120).await;
    assert_eq!(run.status.as_str(), "SUCCEEDED", "{:?}", run.cause());
    let summary: Value = serde_json::from_str(run.output().unwrap()).unwrap();
    assert_eq!(summary["iterations"], 20);
    assert_eq!(summary["served"], 20, "{summary}");

    // the template's own workflow, started from the CLI with an events/ sample
    let connection = t.arn("ConnectionStateMachine");
    let run = run_from_cli(
        &t,
        &url,
        &connection,
        "events/connection-get-employee.json",
        60,
    )
    .await;
    assert_eq!(run.status.as_str(), "SUCCEEDED");
    assert!(run.output().unwrap().contains("Jane"));

    // aws lambda invoke with a sample event: the console's Test button, locally
    let out = workspace().join(format!("target/local-stack-tests/{}-invoke.json", t.name));
    let invoked = ok(
        &url,
        &[
            "lambda",
            "invoke",
            "--function-name",
            &format!("{}-QueryFunction", t.name),
            "--payload",
            "file://events/query-list-employees.json",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(invoked["StatusCode"], 200);
    let body: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(body["rowCount"], 3);
    t.shutdown().await;
}

/// `aws stepfunctions start-execution` with a sample file as input, then waits for the end.
async fn run_from_cli(
    t: &TestStack,
    url: &str,
    machine: &str,
    sample: &str,
    within_seconds: u64,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let input = format!("file://{sample}");
    let started = ok(
        url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            machine,
            "--input",
            &input,
        ],
    );
    t.finished(
        started["executionArn"].as_str().unwrap(),
        Duration::from_secs(within_seconds),
    )
    .await
}
