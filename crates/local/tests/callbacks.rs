//! Callback tasks (`arn:aws:states:::lambda:invoke.waitForTaskToken`) on a real local stack:
//! the function runs with the task token in its payload, then the task waits until
//! SendTaskSuccess or SendTaskFailure answers it, through the real `aws` CLI and through
//! aws-sdk-sfn (what the handlers use). The state machine and the functions (real handler
//! binaries) come from a template ([`common::callback_template`]), so the template reader takes
//! the resource too; no function calls back by itself: the tests do, as a later handler would.

mod common;

use common::{
    Setup, TestStack, aws, callback_input, callback_template, ok, silent_server, start, task_token,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Of the shape of the stack's tokens, but never issued.
const UNKNOWN_TOKEN: &str = "00000000-0000-4000-8000-000000000000";
/// Bounds the waits for a state the stack reaches in a moment.
const SOON: Duration = Duration::from_secs(10);

/// Starts the template's [`common::callback_machine`] on `function`; the execution's ARN.
async fn start_callback(t: &TestStack, function: &str, timeout: u64, heartbeat: u64) -> String {
    t.sfn
        .start_execution()
        .state_machine_arn(t.arn("Callback"))
        .input(callback_input(t, function, timeout, heartbeat))
        .send()
        .await
        .expect("StartExecution")
        .execution_arn
}

async fn status(t: &TestStack, arn: &str) -> String {
    let d = t
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .expect("DescribeExecution");
    d.status.as_str().to_owned()
}

fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().expect("an output")).expect("JSON output")
}

/// `aws stepfunctions <action> --task-token <token> <extra>`: `Err(stderr)` when it fails.
fn send(t: &TestStack, action: &str, token: &str, extra: &[&str]) -> Result<(), String> {
    let mut args = vec!["stepfunctions", action, "--task-token", token];
    args.extend_from_slice(extra);
    let (success, _, stderr) = aws(&t.url, &args);
    if success { Ok(()) } else { Err(stderr) }
}

/// The CLI reports the error by its AWS name: `An error occurred (<name>) when calling ...`.
fn refused(result: Result<(), String>, name: &str) {
    match result {
        Ok(()) => panic!("expected {name}, the call succeeded"),
        Err(stderr) => assert!(
            stderr.contains(&format!("({name})")),
            "expected {name}: {stderr}"
        ),
    }
}

/// Completes the task of `token` with `value` through the SDK, then checks that the
/// execution succeeded with exactly that output.
async fn succeeds_with(t: &TestStack, arn: &str, token: &str, value: Value) {
    t.sfn
        .send_task_success()
        .task_token(token)
        .output(value.to_string())
        .send()
        .await
        .expect("SendTaskSuccess");
    let d = t.finished(arn, SOON).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    assert_eq!(output(&d), value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_completes_fails_and_heartbeats_waiting_tasks() {
    let t = start(Setup {
        template: Some(callback_template()),
        ..Setup::default()
    })
    .await;

    // GIVEN a task whose function answered and which now waits for its token
    let arn = start_callback(&t, "Notify", 30, 30).await;
    let history = t.history_with(&arn, "TaskSubmitted", SOON).await;
    let token = task_token(&history);
    let submitted = history
        .iter()
        .find(|e| e["type"] == "TaskSubmitted")
        .unwrap();
    let answer: Value = serde_json::from_str(
        submitted["taskSubmittedEventDetails"]["output"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        answer["Payload"]["released"], false,
        "the function's answer: {answer}"
    );
    assert_eq!(status(&t, &arn).await, "RUNNING");

    // WHEN it gets a heartbeat, and an output that is not JSON
    // THEN the heartbeat is taken, the output refused, and the task still waits
    send(&t, "send-task-heartbeat", &token, &[]).expect("a heartbeat on a live token");
    refused(
        send(
            &t,
            "send-task-success",
            &token,
            &["--task-output", "not json"],
        ),
        "InvalidOutput",
    );
    assert_eq!(status(&t, &arn).await, "RUNNING");

    // WHEN SendTaskSuccess comes with a lease
    let lease = json!({"leaseId": "lease-1", "remaining": 3});
    send(
        &t,
        "send-task-success",
        &token,
        &["--task-output", &lease.to_string()],
    )
    .expect("SendTaskSuccess");
    // THEN the execution ends with that output as it is (not wrapped in Payload)
    let d = t.finished(&arn, SOON).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    assert_eq!(output(&d), lease);
    // AND the token is closed: a second answer is too late
    refused(
        send(&t, "send-task-success", &token, &["--task-output", "{}"]),
        "TaskTimedOut",
    );
    refused(
        send(&t, "send-task-failure", &token, &["--error", "Late"]),
        "TaskTimedOut",
    );
    refused(send(&t, "send-task-heartbeat", &token, &[]), "TaskTimedOut");

    // SendTaskFailure with an error the state's Catch matches: the execution goes on
    let arn = start_callback(&t, "Notify", 30, 30).await;
    let token = task_token(&t.history_with(&arn, "TaskSubmitted", SOON).await);
    send(
        &t,
        "send-task-failure",
        &token,
        &["--error", "Refused", "--cause", "the pool is closed"],
    )
    .expect("SendTaskFailure");
    let d = t.finished(&arn, SOON).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    assert_eq!(
        output(&d)["refused"],
        json!({"Error": "Refused", "Cause": "the pool is closed"})
    );

    // ... and with one nothing catches: the execution fails with it
    let arn = start_callback(&t, "Notify", 30, 30).await;
    let token = task_token(&t.history_with(&arn, "TaskSubmitted", SOON).await);
    send(
        &t,
        "send-task-failure",
        &token,
        &["--error", "LeaseLost", "--cause", "reclaimed"],
    )
    .expect("SendTaskFailure");
    let d = t.finished(&arn, SOON).await;
    assert_eq!(
        (d.status.as_str(), d.error(), d.cause()),
        ("FAILED", Some("LeaseLost"), Some("reclaimed"))
    );

    // Tokens the stack never issued
    refused(
        send(
            &t,
            "send-task-success",
            "not-a-token",
            &["--task-output", "{}"],
        ),
        "InvalidToken",
    );
    refused(
        send(&t, "send-task-heartbeat", &"t".repeat(1100), &[]),
        "InvalidToken",
    );
    refused(
        send(
            &t,
            "send-task-success",
            UNKNOWN_TOKEN,
            &["--task-output", "{}"],
        ),
        "TaskDoesNotExist",
    );

    // GIVEN a task of TimeoutSeconds 1 that nobody answers
    let arn = start_callback(&t, "Notify", 1, 30).await;
    let token = task_token(&t.history_with(&arn, "TaskSubmitted", SOON).await);
    // THEN the execution takes its States.Timeout path, and the token is closed
    let d = t.finished(&arn, SOON).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    assert_eq!(output(&d)["timedOut"]["Error"], "States.Timeout");
    assert!(
        t.history(&arn)
            .await
            .iter()
            .any(|e| e["type"] == "TaskTimedOut")
    );
    refused(
        send(&t, "send-task-success", &token, &["--task-output", "{}"]),
        "TaskTimedOut",
    );

    // GIVEN a waiting task whose execution is stopped
    let arn = start_callback(&t, "Notify", 30, 30).await;
    let token = task_token(&t.history_with(&arn, "TaskSubmitted", SOON).await);
    ok(
        &t.url,
        &["stepfunctions", "stop-execution", "--execution-arn", &arn],
    );
    assert_eq!(status(&t, &arn).await, "ABORTED");
    // THEN its token is closed too
    refused(send(&t, "send-task-heartbeat", &token, &[]), "TaskTimedOut");
    refused(
        send(&t, "send-task-success", &token, &["--task-output", "{}"]),
        "TaskTimedOut",
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_comes_while_the_function_runs_completes_the_task() {
    // `Stalls` calls a DynamoDB that never answers, until its 3 s timeout.
    let t = start(Setup {
        template: Some(callback_template()),
        function_env: vec![(
            "Stalls",
            "AWS_ENDPOINT_URL_DYNAMODB",
            format!("http://127.0.0.1:{}", silent_server()),
        )],
        ..Setup::default()
    })
    .await;
    let stalls = format!("{}-Stalls", t.name);

    // GIVEN a callback task whose function is still running
    let started = Instant::now();
    let arn = start_callback(&t, "Stalls", 30, 30).await;
    let token = task_token(&t.history_with(&arn, "TaskScheduled", SOON).await);

    // WHEN the callback comes before the function has answered
    // THEN the task is complete with it, without waiting for the function
    succeeds_with(&t, &arn, &token, json!({"leaseId": "early"})).await;
    let stats = &t.stats().await["functions"][&stalls];
    assert_eq!(
        (stats["invocations"].as_u64(), stats["timeouts"].as_u64()),
        (Some(1), Some(0)),
        "the function was still running when the execution ended {:?} after its start",
        started.elapsed()
    );

    // AND the function's later timeout changes nothing
    let deadline = Instant::now() + SOON;
    while t.stats().await["functions"][&stalls]["timeouts"] != 1 {
        assert!(Instant::now() < deadline, "the function never timed out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = t.finished(&arn, SOON).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED");
    let kinds: Vec<String> = t
        .history(&arn)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k == "TaskSubmitted" || k == "TaskFailed"),
        "{kinds:?}"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_invocations_fail_the_task_and_heartbeats_keep_it_waiting() {
    let t = start(Setup {
        template: Some(callback_template()),
        ..Setup::default()
    })
    .await;

    // A function error fails the task as lambda:invoke does, and closes its token.
    let arn = start_callback(&t, "Acquire", 30, 30).await;
    let d = t.finished(&arn, SOON).await;
    assert_eq!(
        (d.status.as_str(), d.error()),
        ("FAILED", Some("InvalidInput")),
        "{:?}",
        d.cause()
    );
    let token = task_token(&t.history(&arn).await);
    let late = t
        .sfn
        .send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .expect_err("the task has failed");
    assert!(
        late.as_service_error()
            .is_some_and(|e| e.is_task_timed_out()),
        "{late:?}"
    );

    // So does a refusal of Lambda's.
    let arn = start_callback(&t, "Missing", 30, 30).await;
    let d = t.finished(&arn, SOON).await;
    assert_eq!(
        (d.status.as_str(), d.error()),
        ("FAILED", Some("Lambda.ResourceNotFoundException"))
    );

    // GIVEN a waiting task of HeartbeatSeconds 1
    let arn = start_callback(&t, "Notify", 30, 1).await;
    let token = task_token(&t.history_with(&arn, "TaskSubmitted", SOON).await);
    // WHEN heartbeats come for twice that long
    for _ in 0..8 {
        t.sfn
            .send_task_heartbeat()
            .task_token(&token)
            .send()
            .await
            .expect("SendTaskHeartbeat");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // THEN the task still waits, and completes with the callback
    assert_eq!(status(&t, &arn).await, "RUNNING");
    succeeds_with(&t, &arn, &token, json!({"leaseId": "kept"})).await;

    // ... while one without heartbeats times out after 1 s
    let arn = start_callback(&t, "Notify", 30, 1).await;
    let d = t.finished(&arn, SOON).await;
    assert_eq!(
        (d.status.as_str(), d.error()),
        ("FAILED", Some("States.HeartbeatTimeout"))
    );

    // The SDK reads the API's error names.
    let e = t
        .sfn
        .send_task_heartbeat()
        .task_token("x")
        .send()
        .await
        .expect_err("not a token");
    assert!(
        e.as_service_error().is_some_and(|e| e.is_invalid_token()),
        "{e:?}"
    );
    let e = t
        .sfn
        .send_task_failure()
        .task_token(UNKNOWN_TOKEN)
        .send()
        .await
        .expect_err("never issued");
    assert!(
        e.as_service_error()
            .is_some_and(|e| e.is_task_does_not_exist()),
        "{e:?}"
    );
    t.shutdown().await;
}
