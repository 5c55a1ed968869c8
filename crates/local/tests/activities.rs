//! Activities through the real `aws` CLI: create, describe, list and delete them; a worker
//! takes a task with get-activity-task and answers with send-task-heartbeat, send-task-success
//! and send-task-failure; `HeartbeatSeconds` ends a task whose worker went silent; a poll with
//! nothing to do answers empty. The stack runs at a time scale of 0.05, so the 60 s poll and
//! the 100 s heartbeat take 3 s and 5 s.

mod common;

use common::{Setup, TestStack, aws, create_machine, ended, ok, start, start_cli};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn start_execution(t: &TestStack, machine: &str, name: &str, input: &str) -> String {
    start_cli(t, machine, &["--name", name, "--input", input])
}

fn take_task(t: &TestStack, activity: &str) -> (String, Value) {
    let task = ok(
        &t.url,
        &[
            "stepfunctions",
            "get-activity-task",
            "--activity-arn",
            activity,
            "--worker-name",
            "worker-1",
        ],
    );
    let token = task["taskToken"].as_str().expect("a task").to_owned();
    let input = serde_json::from_str(task["input"].as_str().unwrap()).unwrap();
    (token, input)
}

fn event<'h>(history: &'h [Value], kind: &str) -> &'h Value {
    history
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {history:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_take_activity_tasks_and_answer_them_with_the_aws_cli() {
    let t = start(Setup {
        time_scale: Some(0.05),
        ..Setup::empty("activities")
    })
    .await;
    let url = t.url.clone();

    // create (twice: the same activity), describe, list
    let created = ok(
        &url,
        &["stepfunctions", "create-activity", "--name", "approve"],
    );
    let activity = created["activityArn"].as_str().unwrap().to_owned();
    assert!(activity.ends_with(":activity:approve"), "{activity}");
    let again = ok(
        &url,
        &["stepfunctions", "create-activity", "--name", "approve"],
    );
    assert_eq!(again["activityArn"], json!(activity));
    let described = ok(
        &url,
        &[
            "stepfunctions",
            "describe-activity",
            "--activity-arn",
            &activity,
        ],
    );
    assert_eq!(described["name"], "approve");
    ok(
        &url,
        &["stepfunctions", "create-activity", "--name", "other"],
    );
    let listed = ok(&url, &["stepfunctions", "list-activities"]);
    let names: Vec<&str> = listed["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["approve", "other"]);

    let definition = json!({
        "StartAt": "Approve",
        "States": {"Approve": {
            "Type": "Task",
            "Resource": activity,
            "Parameters": {"order.$": "$.order"},
            "HeartbeatSeconds": 100,
            "TimeoutSeconds": 600,
            "End": true
        }}
    })
    .to_string();
    let machine = create_machine(&t, "Approvals", &definition);

    // A worker takes the task (its effective input), beats, and answers.
    let execution = start_execution(&t, &machine, "approved", r#"{"order": 7, "noise": 1}"#);
    let (token, input) = take_task(&t, &activity);
    assert_eq!(input, json!({"order": 7}));
    ok(
        &url,
        &[
            "stepfunctions",
            "send-task-heartbeat",
            "--task-token",
            &token,
        ],
    );
    ok(
        &url,
        &[
            "stepfunctions",
            "send-task-success",
            "--task-token",
            &token,
            "--task-output",
            r#"{"approved": true}"#,
        ],
    );
    let (d, history) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["output"].as_str()),
        (Some("SUCCEEDED"), Some(r#"{"approved":true}"#))
    );
    let scheduled = &event(&history, "ActivityScheduled")["activityScheduledEventDetails"];
    assert_eq!(scheduled["resource"], json!(activity));
    assert_eq!(scheduled["heartbeatInSeconds"], 100);
    assert_eq!(
        event(&history, "ActivityStarted")["activityStartedEventDetails"]["workerName"],
        "worker-1"
    );
    event(&history, "ActivitySucceeded");

    // A worker that fails the task fails the state with its error.
    let execution = start_execution(&t, &machine, "refused", r#"{"order": 8}"#);
    let (token, _) = take_task(&t, &activity);
    ok(
        &url,
        &[
            "stepfunctions",
            "send-task-failure",
            "--task-token",
            &token,
            "--error",
            "Refused",
            "--cause",
            "over the limit",
        ],
    );
    let (d, history) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["error"].as_str()),
        (Some("FAILED"), Some("Refused"))
    );
    assert_eq!(
        event(&history, "ActivityFailed")["activityFailedEventDetails"]["cause"],
        "over the limit"
    );

    // A worker that goes silent: HeartbeatSeconds ends the task, and its late answer is
    // TaskTimedOut.
    let began = Instant::now();
    let execution = start_execution(&t, &machine, "silent", r#"{"order": 9}"#);
    let (token, _) = take_task(&t, &activity);
    let (d, history) = ended(&t, &execution);
    assert_eq!(
        (d["status"].as_str(), d["error"].as_str()),
        (Some("FAILED"), Some("States.HeartbeatTimeout")),
        "{d}"
    );
    event(&history, "ActivityTimedOut");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "send-task-success",
            "--task-token",
            &token,
            "--task-output",
            "{}",
        ],
    );
    assert!(!success && stderr.contains("TaskTimedOut"), "{stderr}");

    // Nothing to do: the poll answers without a task after its (scaled) 60 s.
    let began = Instant::now();
    let empty = ok(
        &url,
        &[
            "stepfunctions",
            "get-activity-task",
            "--activity-arn",
            &activity,
        ],
    );
    assert!(empty.get("taskToken").is_none_or(Value::is_null), "{empty}");
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );

    // delete; then it is gone, with AWS's error names
    ok(
        &url,
        &[
            "stepfunctions",
            "delete-activity",
            "--activity-arn",
            &activity,
        ],
    );
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "describe-activity",
            "--activity-arn",
            &activity,
        ],
    );
    assert!(
        !success && stderr.contains("ActivityDoesNotExist"),
        "{stderr}"
    );
    let (success, _, stderr) = aws(
        &url,
        &[
            "stepfunctions",
            "get-activity-task",
            "--activity-arn",
            &machine,
        ],
    );
    assert!(!success && stderr.contains("InvalidArn"), "{stderr}");
    t.shutdown().await;
}
