//! Mocked service integrations in Step Functions Local's mock configuration format, driven by
//! the real `aws` CLI: the LambdaSQSIntegration example of AWS's developer guide (its three
//! test cases, each with its documented outcome), a mocked callback task, a state invoked
//! more often than its mocked response covers, an unknown test case, and the time scale that
//! lets the retry path run in milliseconds.

mod common;

use common::{Setup, TestStack, aws, create_machine, ok, run_case, start, types, workspace};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The guide's example state machine, rewritten from its documented shape: a Lambda call
/// retried on any error (2 s, doubling, 3 times), then an SQS message with its result.
fn lambda_sqs_machine(queue_url: &str) -> String {
    json!({
        "StartAt": "LambdaState",
        "States": {
            "LambdaState": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"Payload.$": "$", "FunctionName": "HelloWorldFunction"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2,
                           "MaxAttempts": 3, "BackoffRate": 2}],
                "Next": "SQSState"
            },
            "SQSState": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue_url, "MessageBody.$": "$"},
                "End": true
            }
        }
    })
    .to_string()
}

/// The guide's mock configuration for it (same test cases and mocked responses), plus a
/// machine of our own with a callback task and a state that runs out of answers.
fn mock_config() -> Value {
    let lambda_ok = json!({"Return": {"StatusCode": 200,
        "Payload": {"StatusCode": 200, "body": "Hello from Lambda!"}}});
    json!({
        "StateMachines": {
            "LambdaSQSIntegration": {"TestCases": {
                "HappyPath": {"LambdaState": "MockedLambdaSuccess", "SQSState": "MockedSQSSuccess"},
                "RetryPath": {"LambdaState": "MockedLambdaRetry", "SQSState": "MockedSQSSuccess"},
                "HybridPath": {"LambdaState": "MockedLambdaSuccess"}
            }},
            "Callbacks": {"TestCases": {
                "Approved": {"AskApproval": "Approved"},
                "RunsOut": {"AskApproval": "AlwaysBusy"},
                "Ghost": {"NoSuchState": "Approved"}
            }},
            "Doubler": {"TestCases": {"TwentyOne": {"Double": "TwentyOne"}}}
        },
        "MockedResponses": {
            "MockedLambdaSuccess": {"0": lambda_ok},
            "LambdaMockedResourceNotReady": {"0": {"Throw": {
                "Error": "Lambda.ResourceNotReadyException", "Cause": "Lambda resource is not ready."}}},
            "MockedSQSSuccess": {"0": {"Return": {
                "MD5OfMessageBody": "3bcb6e8e-7h85-4375-b0bc-1a59812c6e51",
                "MessageId": "3bcb6e8e-8b51-4375-b0bc-1a59812c6e51"}}},
            "MockedLambdaRetry": {
                "0": {"Throw": {"Error": "Lambda.ResourceNotReadyException",
                                "Cause": "Lambda resource is not ready."}},
                "1-2": {"Throw": {"Error": "Lambda.TimeoutException", "Cause": "Lambda timed out."}},
                "3": lambda_ok
            },
            "Approved": {"0": {"Return": {"approved": true}}},
            "AlwaysBusy": {"0-1": {"Throw": {"Error": "Busy", "Cause": "try later"}}},
            "TwentyOne": {"0": {"Return": {"StatusCode": 200, "Payload": {"n": 21}}}}
        }
    })
}

fn write(name: &str, value: &Value) -> PathBuf {
    let dir = workspace().join("target/local-stack-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

async fn mocked_stack() -> TestStack {
    start(Setup {
        mock_config: Some(write("mock-config", &mock_config())),
        // Wait states, Retry intervals and timeouts at a hundredth of their time.
        time_scale: Some(0.01),
        ..Setup::empty("mocks")
    })
    .await
}

fn moto() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (scripts/dev-env.sh up)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_lambda_sqs_example_runs_each_test_case_to_its_documented_outcome() {
    let t = mocked_stack().await;
    // HybridPath calls SQS for real: a queue in the local services.
    let queue = format!("mocks-{}", t.name);
    let queue_url = ok(&moto(), &["sqs", "create-queue", "--queue-name", &queue])["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let machine = create_machine(&t, "LambdaSQSIntegration", &lambda_sqs_machine(&queue_url));

    // HappyPath: both states mocked; the Lambda result goes on to SQS, whose mock ends it.
    let (d, history) = run_case(&t, &machine, "HappyPath", r#"{"name": "Ada"}"#);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["MessageId"], "3bcb6e8e-8b51-4375-b0bc-1a59812c6e51");
    let kinds = types(&history);
    // A mocked task records what a real one does.
    for event in ["TaskScheduled", "TaskStarted", "TaskSucceeded"] {
        assert_eq!(
            kinds.iter().filter(|k| **k == event).count(),
            2,
            "{kinds:?}"
        );
    }
    let sqs_scheduled = history
        .iter()
        .filter(|e| e["type"] == "TaskScheduled")
        .nth(1)
        .unwrap();
    assert_eq!(
        sqs_scheduled["taskScheduledEventDetails"]["resourceType"],
        "sqs"
    );
    let sqs_input: Value = serde_json::from_str(
        sqs_scheduled["taskScheduledEventDetails"]["parameters"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        sqs_input["MessageBody"]["Payload"]["body"],
        "Hello from Lambda!"
    );

    // RetryPath: three failures (one not ready, two timeouts), retried, then success: four
    // Lambda attempts; the 2 + 4 + 8 s of backoff take 140 ms at the time scale.
    let began = Instant::now();
    let (d, history) = run_case(&t, &machine, "RetryPath", r#"{"name": "Ada"}"#);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let failures: Vec<&str> = history
        .iter()
        .filter(|e| e["type"] == "TaskFailed")
        .map(|e| e["taskFailedEventDetails"]["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        failures,
        [
            "Lambda.ResourceNotReadyException",
            "Lambda.TimeoutException",
            "Lambda.TimeoutException"
        ]
    );
    assert_eq!(
        types(&history)
            .iter()
            .filter(|k| **k == "TaskSucceeded")
            .count(),
        2
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    // The history keeps the backoff AWS would show: the last retry 8 s after the failure.
    let at = |e: &Value| e["timestamp"].as_f64().unwrap();
    let last_failure = history.iter().rfind(|e| e["type"] == "TaskFailed").unwrap();
    let retried = history
        .iter()
        .filter(|e| e["type"] == "TaskScheduled")
        .nth(3)
        .unwrap();
    let gap = at(retried) - at(last_failure);
    assert!(
        (7.5..12.0).contains(&gap),
        "{gap} s between the failure and its retry"
    );

    // HybridPath: Lambda mocked, SQS real: the message is in the queue.
    let (d, _) = run_case(&t, &machine, "HybridPath", r#"{"name": "Ada"}"#);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["MD5OfMessageBody"].as_str().map(str::len), Some(32));
    let received = ok(
        &moto(),
        &["sqs", "receive-message", "--queue-url", &queue_url],
    );
    let body: Value =
        serde_json::from_str(received["Messages"][0]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(body["Payload"]["body"], "Hello from Lambda!");
    assert_eq!(received["Messages"][0]["MessageId"], output["MessageId"]);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_tasks_are_mocked_and_bad_test_cases_are_refused() {
    let t = mocked_stack().await;
    // A callback task (with its token) and a Catch for a task that keeps failing.
    let definition = json!({
        "StartAt": "AskApproval",
        "States": {
            "AskApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Approver", "Payload": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 30,
                "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 5, "IntervalSeconds": 1}],
                "End": true
            }
        }
    })
    .to_string();
    let machine = create_machine(&t, "Callbacks", &definition);

    // Approved: the mock's Return is what the callback would have sent.
    let (d, history) = run_case(&t, &machine, "Approved", "{}");
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(d["output"], r#"{"approved":true}"#);
    assert!(
        types(&history).contains(&"TaskSubmitted"),
        "{:?}",
        types(&history)
    );

    // RunsOut: two answers for up to six attempts: the third invocation fails the execution
    // (States.Runtime, which its Retry does not catch), naming the state and the test case.
    let (d, history) = run_case(&t, &machine, "RunsOut", "{}");
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["error"], "States.Runtime");
    let cause = d["cause"].as_str().unwrap();
    assert!(
        cause.contains("AskApproval")
            && cause.contains("RunsOut")
            && cause.contains("invocation 2"),
        "{cause}"
    );
    assert_eq!(
        types(&history)
            .iter()
            .filter(|k| **k == "TaskFailed")
            .count(),
        3
    );

    // An unknown test case: AWS's error name, what is wrong, and no execution.
    let (success, _, stderr) = aws(
        &t.url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &format!("{machine}#NoSuchCase"),
        ],
    );
    assert!(!success);
    assert!(
        stderr.contains("ValidationException") && stderr.contains("NoSuchCase"),
        "{stderr}"
    );
    let listed = ok(
        &t.url,
        &[
            "stepfunctions",
            "list-executions",
            "--state-machine-arn",
            &machine,
        ],
    );
    assert_eq!(listed["executions"].as_array().unwrap().len(), 2);
    // A test case that mocks a state the machine does not have.
    let (success, _, stderr) = aws(
        &t.url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &format!("{machine}#Ghost"),
        ],
    );
    assert!(
        !success && stderr.contains("ValidationException") && stderr.contains("NoSuchState"),
        "{stderr}"
    );

    // A JSONata state is mocked like any other: its Output reads the mocked result.
    let doubler = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Double",
        "States": {"Double": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": "Doubler", "Payload": "{% $states.input %}"},
            "Output": "{% $states.result.Payload.n * 2 %}",
            "End": true
        }}
    })
    .to_string();
    let doubler = create_machine(&t, "Doubler", &doubler);
    let (d, _) = run_case(&t, &doubler, "TwentyOne", "{}");
    assert_eq!(
        (d["status"].as_str(), d["output"].as_str()),
        (Some("SUCCEEDED"), Some("42"))
    );

    // The endpoint keeps serving, and a machine without a test case runs for real.
    let (success, _, stderr) = aws(
        &t.url,
        &[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            &machine,
        ],
    );
    assert!(success, "{stderr}");
    t.shutdown().await;
}
