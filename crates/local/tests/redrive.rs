//! RedriveExecution through the real `aws` CLI: a failed execution starts again from the state
//! that failed (the states before it are not run again, their variables are kept, and
//! `$$.Execution.RedriveCount` counts), its history goes on after `ExecutionRedriven`, and
//! DescribeExecution reports the redrive; a succeeded or unknown execution is refused with
//! AWS's error names, and a stopped or timed-out one can be redriven too.

mod common;

use common::{Setup, aws, create_machine, ended, ok, on_execution, start, start_cli, workspace};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_is_redriven_from_the_state_that_failed() {
    let mocks = json!({
        "StateMachines": {"Redriven": {"TestCases": {"FailsOnce": {"Flaky": "FailsOnce"}}}},
        "MockedResponses": {"FailsOnce": {
            "0": {"Throw": {"Error": "Boom", "Cause": "first time"}},
            "1": {"Return": {"ok": true}}
        }}
    });
    let dir = workspace().join("target/local-stack-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let mock_file = dir.join(format!("redrive-mocks-{}.json", std::process::id()));
    std::fs::write(&mock_file, mocks.to_string()).unwrap();
    let t = start(Setup {
        mock_config: Some(mock_file),
        time_scale: Some(0.01),
        ..Setup::empty("redrive")
    })
    .await;
    let url = t.url.clone();
    let definition = json!({
        "StartAt": "Remember",
        "States": {
            "Remember": {"Type": "Pass", "Assign": {"visits": 1}, "Next": "Flaky"},
            "Flaky": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "Flaky"},
                "ResultPath": "$.flaky",
                "Next": "Report"
            },
            "Report": {
                "Type": "Pass",
                "Parameters": {
                    "flaky.$": "$.flaky",
                    "visits.$": "$visits",
                    "redrives.$": "$$.Execution.RedriveCount"
                },
                "End": true
            }
        }
    })
    .to_string();
    let machine = create_machine(&t, "Redriven", &definition);
    let started = ok(
        &url,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &format!("{machine}#FailsOnce"),
            "--input",
            r#"{"order": 7}"#,
        ],
    );
    let execution = started["executionArn"].as_str().unwrap().to_owned();
    let (d, first) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["error"].as_str()),
        (Some("FAILED"), Some("Boom"))
    );
    assert_eq!(
        (d["redriveCount"].as_u64(), d["redriveStatus"].as_str()),
        (Some(0), Some("REDRIVABLE"))
    );

    let redriven = on_execution(&t, "redrive-execution", &execution);
    assert!(redriven["redriveDate"].is_number(), "{redriven}");
    let (d, history) = ended(&t, &execution);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    // The variable assigned before the failure, the task's second answer, one redrive.
    assert_eq!(
        output,
        json!({"flaky": {"ok": true}, "visits": 1, "redrives": 1})
    );
    assert_eq!(d["redriveCount"], 1);
    assert!(d["redriveDate"].is_number());
    assert_eq!(d["redriveStatus"], "NOT_REDRIVABLE");
    assert!(
        d["redriveStatusReason"]
            .as_str()
            .unwrap()
            .contains("SUCCEEDED")
    );

    // The history goes on: the first run's events as they were, then ExecutionRedriven, and
    // ids that keep counting; Remember ran once, Flaky twice.
    assert_eq!(history[..first.len()], first[..]);
    assert_eq!(history[first.len()]["type"], "ExecutionRedriven");
    assert_eq!(
        history[first.len()]["executionRedrivenEventDetails"]["redriveCount"],
        1
    );
    let ids: Vec<u64> = history.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=history.len() as u64).collect::<Vec<_>>());
    let entered = |name: &str| {
        history
            .iter()
            .filter(|e| e["stateEnteredEventDetails"]["name"] == name)
            .count()
    };
    assert_eq!(
        (entered("Remember"), entered("Flaky"), entered("Report")),
        (1, 2, 1)
    );

    // Not redrivable: a succeeded execution, an unknown one.
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "redrive-execution",
            "--execution-arn",
            &execution,
        ],
    );
    assert!(
        !success && stderr.contains("ExecutionNotRedrivable"),
        "{stderr}"
    );
    let unknown = execution.replace(":execution:Redriven:", ":execution:Redriven:x");
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "redrive-execution",
            "--execution-arn",
            &unknown,
        ],
    );
    assert!(
        !success && stderr.contains("ExecutionDoesNotExist"),
        "{stderr}"
    );

    // A stopped execution is redriven too, from the state it was stopped in.
    let waits = json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 3000, "End": true}}});
    let machine = create_machine(&t, "Naps", &waits.to_string());
    let execution = start_cli(&t, &machine, &[]);
    on_execution(&t, "stop-execution", &execution);
    let (d, _) = ended(&t, &execution);
    assert_eq!(d["status"], "ABORTED");
    on_execution(&t, "redrive-execution", &execution);
    // 3000 s at a hundredth: 30 s, still napping when stopped again.
    let d = on_execution(&t, "describe-execution", &execution);
    assert_eq!(
        (d["status"].as_str(), d["redriveCount"].as_u64()),
        (Some("RUNNING"), Some(1))
    );
    on_execution(&t, "stop-execution", &execution);
    let (d, history) = ended(&t, &execution);
    assert_eq!(d["status"], "ABORTED");
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "ExecutionAborted").count(),
        2,
        "{kinds:?}"
    );

    // A timed-out execution is redriven too: its timeout counts again from the redrive (5 s
    // at a hundredth), so the long nap times out a second time.
    let slow = json!({"TimeoutSeconds": 5, "StartAt": "Nap",
        "States": {"Nap": {"Type": "Wait", "Seconds": 3000, "End": true}}});
    let machine = create_machine(&t, "TimesOut", &slow.to_string());
    let execution = start_cli(&t, &machine, &[]);
    let (d, _) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["redriveStatus"].as_str()),
        (Some("TIMED_OUT"), Some("REDRIVABLE"))
    );
    on_execution(&t, "redrive-execution", &execution);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (d, history) = loop {
        let (d, history) = ended(&t, &execution);
        if d["redriveCount"] == 1 && d["status"] != "RUNNING" {
            break (d, history);
        }
        assert!(std::time::Instant::now() < deadline, "{d}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(d["status"], "TIMED_OUT", "{d}");
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind);
    assert!(
        at("ExecutionTimedOut") < at("ExecutionRedriven"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"ExecutionTimedOut"), "{kinds:?}");
    t.shutdown().await;
}
