//! leasehold's workflows on the local stack: the real template, the real handler binaries,
//! MariaDB and moto.

mod common;

use common::{Setup, TestStack, start};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The polling path (Acquire with retries on ConnectionsExhausted); the queued path is tested in
/// tests/wait_queue.rs and below with the harness.
const LIST: &str =
    r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0, "mode": "polling"}"#;

fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().unwrap_or("null")).unwrap()
}

fn types(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_workflow_is_served_end_to_end_with_an_aws_shaped_history() {
    let t = start(Setup::default()).await;
    let arn = t.start_execution("ConnectionStateMachine", LIST).await;
    let d = t.finished(&arn, Duration::from_secs(60)).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(
        (out["status"].as_str(), out["source"].as_str()),
        (Some("SERVED"), Some("database"))
    );
    let names: Vec<&str> = out["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Smith", "Doe", "Rogers"]);
    assert_eq!(t.pool().await.1, 0, "the lease was given back");

    // History: ids link back, Task events carry AWS's detail fields.
    let history = t.history(&arn).await;
    for (i, event) in history.iter().enumerate() {
        assert_eq!(event["id"], json!(i + 1));
        assert!(event["previousEventId"].as_u64().unwrap() <= i as u64);
        assert!(
            event["timestamp"].as_f64().unwrap() > 1.6e9,
            "epoch seconds"
        );
    }
    let kinds = types(&history);
    assert_eq!(kinds.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(kinds.last().map(String::as_str), Some("ExecutionSucceeded"));
    let scheduled = history
        .iter()
        .find(|e| e["type"] == "TaskScheduled")
        .unwrap();
    let details = &scheduled["taskScheduledEventDetails"];
    assert_eq!(
        (
            details["resourceType"].as_str(),
            details["resource"].as_str()
        ),
        (Some("lambda"), Some("invoke"))
    );
    let parameters: Value = serde_json::from_str(details["parameters"].as_str().unwrap()).unwrap();
    assert!(
        parameters["FunctionName"]
            .as_str()
            .unwrap()
            .ends_with("-AcquireFunction")
    );
    let succeeded = history
        .iter()
        .find(|e| e["type"] == "TaskSucceeded")
        .unwrap();
    let output: Value = serde_json::from_str(
        succeeded["taskSucceededEventDetails"]["output"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(output["StatusCode"], 200, "lambda:invoke output shape");
    assert!(
        output["Payload"]["leaseId"]
            .as_str()
            .unwrap()
            .ends_with(&arn[arn.rfind(':').unwrap()..])
    );
    assert!(
        kinds.iter().any(|k| k == "TaskStateEntered")
            && kinds.iter().any(|k| k == "PassStateExited")
    );
    spot_check_against_recorded_shapes(&history);
    t.shutdown().await;
}

/// The detail fields of every event type that also occurs in the executions recorded on AWS
/// (`../shared/conformance`, beside the repository) match theirs.
fn spot_check_against_recorded_shapes(history: &[Value]) {
    let dir = common::workspace().join("../shared/conformance/cases");
    if !dir.is_dir() {
        eprintln!("note: ../shared/conformance is absent; recorded shapes not compared");
        return;
    }
    let mut recorded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![dir];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                let case: Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                for event in case["history"].as_array().into_iter().flatten() {
                    let Some(kind) = event["type"].as_str() else {
                        continue;
                    };
                    for (key, details) in event.as_object().unwrap() {
                        if key.ends_with("EventDetails") {
                            let fields: BTreeSet<String> =
                                details.as_object().unwrap().keys().cloned().collect();
                            recorded
                                .entry(format!("{kind}/{key}"))
                                .or_default()
                                .extend(fields);
                        }
                    }
                }
            }
        }
    }
    let mut compared = 0;
    for event in history {
        let kind = event["type"].as_str().unwrap();
        for (key, details) in event.as_object().unwrap() {
            if let Some(known) = recorded.get(&format!("{kind}/{key}")) {
                for field in details.as_object().unwrap().keys() {
                    assert!(
                        known.contains(field),
                        "{kind}.{key}.{field} never appears in AWS's recordings"
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 10, "compared only {compared} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_takes_the_fallback_branch() {
    let t = start(Setup {
        parameters: vec![("PoolBudget", "1".into())],
        ..Setup::default()
    })
    .await;
    // GIVEN the pool's only slot held by someone else
    let blocker = t
        .lambda
        .invoke()
        .function_name(format!("{}-AcquireFunction", t.name))
        .payload(aws_sdk_lambda::primitives::Blob::new(
            r#"{"pool": "main", "leaseId": "blocker", "ttlSeconds": 600}"#,
        ))
        .send()
        .await
        .unwrap();
    assert!(blocker.function_error().is_none());
    assert_eq!(t.pool().await, (1, 1, 1));
    // WHEN a workflow wants a connection
    let arn = t.start_execution("ConnectionStateMachine", LIST).await;
    let d = t.finished(&arn, Duration::from_secs(90)).await;
    // THEN it backs off, then answers without the database
    assert_eq!(d.status.as_str(), "SUCCEEDED");
    let out = output(&d);
    assert_eq!(out["status"], "FALLBACK", "{out}");
    assert_eq!(out["source"], "none");
    assert!(out["retryAfterSeconds"].as_u64().is_some());
    let history = t.history(&arn).await;
    let refusals = history
        .iter()
        .filter(|e| {
            e["type"] == "TaskFailed"
                && e["taskFailedEventDetails"]["error"] == "ConnectionsExhausted"
        })
        .count();
    assert_eq!(refusals, 7, "one attempt and six jittered retries");
    assert_eq!(t.pool().await, (1, 1, 1), "only the blocker holds a lease");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_query_still_releases_its_lease() {
    let t = start(Setup::default()).await;
    let input = r#"{"pool": "main", "query": "getEmployee", "params": {"id": "not a number"}, "holdMs": 0}"#;
    let arn = t.start_execution("ConnectionStateMachine", input).await;
    let d = t.finished(&arn, Duration::from_secs(60)).await;
    assert_eq!(d.status.as_str(), "FAILED");
    assert_eq!(d.error(), Some("InvalidInput"));
    let kinds = types(&t.history(&arn).await);
    assert!(
        kinds.iter().filter(|k| *k == "TaskSucceeded").count() >= 2,
        "acquire and release ran: {kinds:?}"
    );
    assert_eq!(t.pool().await.1, 0, "released before failing");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_execution_gets_its_lease_back_through_the_cleanup_rule() {
    let t = start(Setup {
        parameters: vec![("QueryTimeoutSeconds", "10".into())],
        ..Setup::default()
    })
    .await;
    let input = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 8000}"#;
    let arn = t.start_execution("ConnectionStateMachine", input).await;
    // WAIT until the query holds its connection (the lease is taken)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kinds = types(&t.history(&arn).await);
        if kinds.iter().filter(|k| *k == "TaskStarted").count() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the query never started: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(t.pool().await.1, 1);
    // WHEN the execution is stopped
    t.sfn
        .stop_execution()
        .execution_arn(&arn)
        .cause("operator stop")
        .send()
        .await
        .unwrap();
    let d = t.finished(&arn, Duration::from_secs(10)).await;
    assert_eq!(d.status.as_str(), "ABORTED");
    assert_eq!(
        t.history(&arn).await.last().unwrap()["executionAbortedEventDetails"]["cause"],
        "operator stop"
    );
    // THEN the status change event reaches the release function, which keeps the slot counted
    // while the stopped execution's query still runs (Lambda does not stop it) ...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !t
        .logs("ReleaseFunction")
        .contains("cleanup after execution end")
    {
        assert!(tokio::time::Instant::now() < deadline, "no cleanup event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(t.stats().await["eventsDelivered"].as_u64().unwrap() >= 1);
    t.reclaim().await;
    assert_eq!(t.pool().await.1, 1, "released while its query still runs");
    // ... and lets it expire once the query function's timeout is over, for reclaim to free
    // it: long before the lease's own 300 s
    assert_eq!(t.reclaimed(Duration::from_secs(30)).await, (0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_after_its_grant_leaves_no_lease_behind() {
    // GIVEN every acquire container dies before its answer reaches the workflow
    let t = start(Setup {
        kill: vec![("AcquireFunction", 1.0)],
        ..Setup::default()
    })
    .await;
    let arn = t.start_execution("ConnectionStateMachine", LIST).await;
    let d = t.finished(&arn, Duration::from_secs(60)).await;
    // THEN the execution fails like Lambda's crashed runtime, after retrying the idempotent acquire
    assert_eq!(d.status.as_str(), "FAILED");
    assert_eq!(d.error(), Some("Runtime.ExitError"));
    let stats = t.stats().await;
    let acquire = &stats["functions"][format!("{}-AcquireFunction", t.name)];
    assert_eq!(acquire["kills"], 3, "{acquire}");
    assert!(
        t.logs("AcquireFunction").contains("lease granted"),
        "the grant happened before the kill"
    );
    // AND the lease it was granted comes back through the cleanup path
    assert_eq!(t.drained(Duration::from_secs(20)).await, (0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_mid_query_still_gives_the_lease_back() {
    let t = start(Setup {
        kill: vec![("QueryFunction", 1.0)],
        parameters: vec![("QueryTimeoutSeconds", "5".into())],
        ..Setup::default()
    })
    .await;
    let input = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 300}"#;
    let arn = t.start_execution("ConnectionStateMachine", input).await;
    let d = t.finished(&arn, Duration::from_secs(60)).await;
    assert_eq!(d.status.as_str(), "FAILED");
    assert_eq!(d.error(), Some("Runtime.ExitError"));
    // The crashed query's session may outlive its container: the lease drains for the query
    // function's timeout instead of going back at once, then reclaim frees it.
    let kinds = types(&t.history(&arn).await);
    assert!(
        kinds.iter().any(|k| k == "TaskStateExited")
            && t.logs("ReleaseFunction").contains("lease left to drain"),
        "the workflow drained its lease: {kinds:?}"
    );
    assert_eq!(t.reclaimed(Duration::from_secs(20)).await, (0, 0));
    t.shutdown().await;
}

/// A stack with a budget of 2 that ran 8 children of the harness in `mode`, 4 at a time, each
/// holding its connection 300 ms: the harness's summary and each child's history.
async fn harness_run(mode: &str) -> (TestStack, Value, Vec<Vec<Value>>) {
    let t = start(Setup {
        parameters: vec![("PoolBudget", "2".into())],
        ..Setup::default()
    })
    .await;
    let input = format!(
        r#"{{"iterations": 8, "concurrency": 4, "pool": "main", "query": "listEmployees", "params": {{}}, "holdMs": 300, "mode": "{mode}"}}"#
    );
    let arn = t.start_execution("LoadHarnessStateMachine", &input).await;
    let d = t.finished(&arn, Duration::from_secs(120)).await;
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    // Every iteration is its own execution of the connection workflow.
    let children = t
        .sfn
        .list_executions()
        .state_machine_arn(t.arn("ConnectionStateMachine"))
        .send()
        .await
        .unwrap()
        .executions;
    assert_eq!(children.len(), 8);
    let mut histories = Vec::new();
    for child in &children {
        histories.push(t.history(&child.execution_arn).await);
    }
    (t, output(&d), histories)
}

fn refusals(history: &[Value]) -> usize {
    history
        .iter()
        .filter(|e| e["taskFailedEventDetails"]["error"] == "ConnectionsExhausted")
        .count()
}

/// Never more queries at once than the budget of 2, and nothing left behind.
async fn within_budget_and_drained(t: TestStack) {
    let query = &t.stats().await["functions"][format!("{}-QueryFunction", t.name)];
    assert!(
        query["peakContainers"].as_u64().unwrap() <= 2,
        "never more queries than the budget: {query}"
    );
    assert_eq!(t.drained(Duration::from_secs(10)).await, (0, 0));
    assert_eq!(t.waiters().await, (0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_harness_runs_child_workflows_concurrently_within_the_budget() {
    let (t, summary, histories) = harness_run("polling").await;
    assert_eq!(summary["iterations"], 8);
    let total = ["served", "fallback", "failed"]
        .iter()
        .map(|k| summary[*k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total, 8, "{summary}");
    assert!(summary["served"].as_u64().unwrap() >= 2, "{summary}");
    // With 4 at a time and a budget of 2, some waited: refusals and retries show in histories.
    let refused: usize = histories.iter().map(|h| refusals(h)).sum();
    assert!(
        refused >= 1,
        "the budget of 2 was never reached with 4 concurrent children"
    );
    within_budget_and_drained(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_queued_mode_the_harness_children_wait_in_line_and_all_are_served() {
    // GIVEN a budget of 2 and four children at a time, each holding its connection 300 ms
    let (t, summary, histories) = harness_run("queued").await;

    // THEN every child is served (nobody is refused, nobody falls back) ...
    assert_eq!(summary["served"], 8, "{summary}");
    let mut waited = 0;
    for history in &histories {
        assert_eq!(refusals(history), 0, "a queued child is never refused");
        let out: Value = serde_json::from_str(
            history
                .iter()
                .rev()
                .find_map(|e| e["executionSucceededEventDetails"]["output"].as_str())
                .unwrap(),
        )
        .unwrap();
        if out["lease"]["waitedMs"].as_i64().unwrap() > 0 {
            waited += 1;
        }
    }
    // ... some after waiting in the queue for a slot handed over, never more queries at once
    // than the budget, and nothing is left
    assert!(
        waited >= 1,
        "with 4 at a time and a budget of 2 someone waited"
    );
    within_budget_and_drained(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_served_only_while_it_is_fresh() {
    // GIVEN a pool of one, queued waits of 1 s, and an answer cached by a served execution
    let t = start(Setup {
        parameters: vec![
            ("PoolBudget", "1".into()),
            ("QueueWaitSeconds", "1".into()),
            ("QueueCheckSeconds", "1".into()),
        ],
        ..Setup::default()
    })
    .await;
    let input = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0, "mode": "queued"}"#;
    let first = t.start_execution("ConnectionStateMachine", input).await;
    let d = t.finished(&first, Duration::from_secs(30)).await;
    assert_eq!(output(&d)["status"], "SERVED");
    let blocker = t
        .invoke(
            "AcquireFunction",
            r#"{"pool": "main", "leaseId": "blocker", "ttlSeconds": 120}"#,
        )
        .await;
    assert_eq!(blocker["remaining"], 0, "{blocker}");

    // WHEN the pool is full: the fresh cached answer is served
    let second = t.start_execution("ConnectionStateMachine", input).await;
    let out = output(&t.finished(&second, Duration::from_secs(30)).await);
    assert_eq!(
        (out["status"].as_str(), out["source"].as_str()),
        (Some("FALLBACK"), Some("cache")),
        "{out}"
    );

    // AND once its expiry has passed (DynamoDB's TTL has not deleted it yet), it is not: shed
    let table = format!("{}-CacheTable", t.name);
    let items = t.dynamodb.scan().table_name(&table).send().await.unwrap();
    let key = items.items()[0]["pk"].clone();
    t.dynamodb
        .update_item()
        .table_name(&table)
        .key("pk", key)
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N("1000000000".into()),
        )
        .send()
        .await
        .unwrap();
    let third = t.start_execution("ConnectionStateMachine", input).await;
    let out = output(&t.finished(&third, Duration::from_secs(30)).await);
    assert_eq!(
        (out["status"].as_str(), out["source"].as_str()),
        (Some("FALLBACK"), Some("none")),
        "{out}"
    );
    t.shutdown().await;
}
