//! A local stack that runs for days keeps its memory and disk bounded: only the last N finished
//! executions of each state machine (`--keep-executions`), and each container's log within a
//! size limit with a few rotated files (`--log-max-bytes`, `--log-backups`).

mod common;

use aws_sdk_lambda::primitives::Blob;
use common::{Setup, start, test_template};
use leasehold_local::Retention;
use leasehold_local::logfile::LogLimits;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// A machine that waits `$.wait` seconds when asked to, and else ends at once; and a function.
fn template() -> std::path::PathBuf {
    let machine = json!({"StartAt": "Choose", "States": {
        "Choose": {"Type": "Choice", "Choices": [
            {"Variable": "$.wait", "IsPresent": true, "Next": "Wait"}], "Default": "Done"},
        "Wait": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
        "Done": {"Type": "Pass", "End": true}}});
    let text = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 3
    Environment:
      Variables:
        LEASE_TABLE: retention-leases
Resources:
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition: DEFINITION
  Notify:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/release
"#;
    test_template(
        "retention",
        &text.replace("DEFINITION", &machine.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_finished_executions_are_kept_and_running_ones_never_go() {
    // GIVEN a stack that keeps 3 finished executions per state machine
    let t = start(Setup {
        template: Some(template()),
        retention: Some(Retention {
            finished_executions: 3,
            ..Retention::default()
        }),
        ..Setup::default()
    })
    .await;
    let machine = t.arn("Machine");
    let run = |name: &'static str, input: &'static str| {
        let (sfn, machine) = (t.sfn.clone(), machine.clone());
        async move {
            sfn.start_execution()
                .state_machine_arn(machine)
                .name(name)
                .input(input)
                .send()
                .await
                .expect("StartExecution")
                .execution_arn
        }
    };

    // WHEN one execution waits while five others start and end after it started
    let waiting = run("waiting", r#"{"wait": 2}"#).await;
    let mut quick = Vec::new();
    for name in ["q0", "q1", "q2", "q3", "q4"] {
        let arn = run(name, "{}").await;
        t.finished(&arn, Duration::from_secs(10)).await;
        quick.push(arn);
    }

    // THEN the waiting one is kept, and of the finished ones only the last three
    let listed = |t: &common::TestStack| {
        let (sfn, machine) = (t.sfn.clone(), machine.clone());
        async move {
            let out = sfn
                .list_executions()
                .state_machine_arn(machine)
                .send()
                .await
                .expect("ListExecutions");
            out.executions()
                .iter()
                .map(|e| e.name().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&t).await, ["q4", "q3", "q2", "waiting"]);
    let gone = t
        .sfn
        .describe_execution()
        .execution_arn(&quick[0])
        .send()
        .await
        .expect_err("forgotten");
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_execution_does_not_exist()),
        "{gone:?}"
    );

    // WHEN the waiting one ends THEN it is the newest finished one and stays; q2 goes
    let d = t.finished(&waiting, Duration::from_secs(10)).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED");
    assert_eq!(listed(&t).await, ["q4", "q3", "waiting"]);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs_rotate_by_size_and_keep_only_a_few_files() {
    // GIVEN a stack whose container logs rotate at 1 KiB and keep two rotated files
    let limits = LogLimits {
        max_bytes: 1024,
        backups: 2,
    };
    let t = start(Setup {
        template: Some(template()),
        retention: Some(Retention {
            logs: limits,
            ..Retention::default()
        }),
        ..Setup::default()
    })
    .await;

    // WHEN one warm container serves forty invocations (some 200 bytes of log each)
    let event = json!({"detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:e",
                   "status": "FAILED", "input": "{}"}});
    let mut last_request = String::new();
    for _ in 0..40 {
        let out = t
            .lambda
            .invoke()
            .function_name(format!("{}-Notify", t.name))
            .payload(Blob::new(event.to_string().into_bytes()))
            .send()
            .await
            .expect("Invoke");
        assert!(out.function_error().is_none());
        last_request = out
            .payload()
            .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
            .unwrap_or_default();
    }
    assert!(last_request.contains("skipped"), "{last_request}");

    // THEN its log stream is the current file and two rotated ones, none above the limit, and
    // the current file ends with the last invocation
    let dir = t.state_dir.join("logs").join(format!("{}-Notify", t.name));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["00001.log", "00001.log.1", "00001.log.2"]);
    for name in &names {
        let size = std::fs::metadata(dir.join(name)).unwrap().len();
        assert!(size <= limits.max_bytes, "{name}: {size} bytes");
    }
    let current = std::fs::read_to_string(dir.join("00001.log")).unwrap();
    assert!(
        current
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("REPORT RequestId:"),
        "{current}"
    );
    let stats = &t.stats().await["functions"][format!("{}-Notify", t.name)];
    assert_eq!(stats["invocations"], 40);
    t.shutdown().await;
}

#[test]
fn retention_options_are_checked() {
    for (option, value, message) in [
        (
            "--keep-executions",
            "0",
            "--keep-executions: must be at least 1",
        ),
        (
            "--log-max-bytes",
            "100",
            "--log-max-bytes: must be at least 1024",
        ),
        ("--log-backups", "many", "--log-backups: not a whole number"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_leasehold-local"))
            .args([option, value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{option} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
