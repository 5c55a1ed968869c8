//! The connection workflow's queued mode on the local stack (real handler binaries, MariaDB,
//! moto): a released slot goes to the oldest waiter; a waiter that times out takes the
//! fallback and leaves the queue; a stopped execution's waiter is removed and never served; a
//! waiter whose token no task answers to is skipped without losing the slot.

mod common;

use common::{Setup, TestStack, start};
use serde_json::Value;
use std::time::Duration;

fn queued(hold_ms: u64) -> String {
    format!(
        r#"{{"pool": "main", "query": "listEmployees", "params": {{}}, "holdMs": {hold_ms}, "mode": "queued"}}"#
    )
}

/// A stack whose pool has one slot, taken by `holder` through the acquire function for
/// `ttl` seconds; queued requests wait `wait_seconds` in rounds of `check_seconds`.
async fn one_slot_held_for(ttl: u64, wait_seconds: u64, check_seconds: u64) -> TestStack {
    let t = start(Setup {
        parameters: vec![
            ("PoolBudget", "1".into()),
            ("QueueWaitSeconds", wait_seconds.to_string()),
            ("QueueCheckSeconds", check_seconds.to_string()),
        ],
        ..Setup::default()
    })
    .await;
    let grant = t
        .invoke(
            "AcquireFunction",
            &format!(r#"{{"pool": "main", "leaseId": "holder", "ttlSeconds": {ttl}}}"#),
        )
        .await;
    assert_eq!(grant["remaining"], 0, "{grant}");
    t
}

async fn one_slot_held(wait_seconds: u64) -> TestStack {
    one_slot_held_for(120, wait_seconds, wait_seconds.min(10)).await
}

async fn release(t: &TestStack, id: &str) -> Value {
    t.invoke(
        "ReleaseFunction",
        &format!(r#"{{"pool": "main", "leaseId": "{id}"}}"#),
    )
    .await
}

fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().unwrap_or("null")).unwrap()
}

/// The states an execution entered, in order.
async fn entered(t: &TestStack, arn: &str) -> Vec<String> {
    t.history(arn)
        .await
        .iter()
        .filter(|e| e["type"] == "TaskStateEntered" || e["type"] == "ChoiceStateEntered")
        .filter_map(|e| {
            e["stateEnteredEventDetails"]["name"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_times_out_takes_the_fallback_and_leaves_the_queue() {
    // GIVEN a pool whose only slot is held, and a queued wait of 2 s in rounds of 1 s
    let t = one_slot_held_for(120, 2, 1).await;

    // WHEN a queued execution waits longer than that
    let arn = t
        .start_execution("ConnectionStateMachine", &queued(0))
        .await;
    t.waiting(1, Duration::from_secs(10)).await;
    let d = t.finished(&arn, Duration::from_secs(30)).await;

    // THEN it falls back (no cache yet: shed) with the timeout as the reason, its LeaveQueue
    // step removed its waiter, and the slot was never its
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(
        (out["status"].as_str(), out["reason"].as_str()),
        (Some("FALLBACK"), Some("States.Timeout")),
        "{out}"
    );
    let states = entered(&t, &arn).await;
    assert!(states.contains(&"LeaveQueue".to_owned()), "{states:?}");
    let rounds = states.iter().filter(|s| *s == "AcquireQueued").count();
    assert_eq!(rounds, 2, "two rounds of 1 s: {states:?}");
    assert!(!states.contains(&"Query".to_owned()), "{states:?}");
    assert_eq!(t.waiters().await, (0, 0));
    assert_eq!(release(&t, "holder").await["released"], true);
    assert_eq!(t.pool().await, (1, 0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_slot_goes_to_the_oldest_live_waiter_and_never_to_a_stopped_one() {
    // GIVEN a held slot and two queued executions, the first of which is then stopped
    let t = one_slot_held(60).await;
    let stopped = t
        .start_execution("ConnectionStateMachine", &queued(0))
        .await;
    t.waiting(1, Duration::from_secs(10)).await;
    let next = t
        .start_execution("ConnectionStateMachine", &queued(0))
        .await;
    t.waiting(2, Duration::from_secs(10)).await;
    t.sfn
        .stop_execution()
        .execution_arn(&stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.finished(&stopped, Duration::from_secs(10))
            .await
            .status
            .as_str(),
        "ABORTED"
    );

    // THEN the execution-status cleanup rule removes the stopped one's waiter
    t.waiting(1, Duration::from_secs(20)).await;

    // WHEN the holder releases
    let released = release(&t, "holder").await;
    assert_eq!(released["released"], true, "{released}");

    // THEN the slot goes straight to the live waiter, which is served by the database
    let d = t.finished(&next, Duration::from_secs(30)).await;
    let out = output(&d);
    assert_eq!(out["status"], "SERVED", "{out}");
    assert!(out["lease"]["waitedMs"].as_i64().unwrap() > 0, "{out}");
    // AND the stopped execution never ran a query, and nothing is left behind
    assert!(!entered(&t, &stopped).await.contains(&"Query".to_owned()));
    assert_eq!(t.drained(Duration::from_secs(10)).await, (0, 0));
    assert_eq!(t.waiters().await, (0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_token_no_task_answers_to_is_skipped_without_losing_the_slot() {
    // GIVEN a held slot, a waiter at the head of the queue whose token belongs to no task,
    // and a queued execution behind it
    let t = one_slot_held(60).await;
    let sdk = leasehold_testkit::sdk_config().await;
    let foreign = leasehold_testkit::queue::enqueue_unchecked(
        &sdk,
        &t.lease_table(),
        "main",
        "foreign-waiter",
        "00000000-0000-4000-8000-000000000000",
        60,
    )
    .await;
    assert!(foreign, "the pool is full, so the waiter is queued");
    let next = t
        .start_execution("ConnectionStateMachine", &queued(0))
        .await;
    t.waiting(2, Duration::from_secs(10)).await;

    // WHEN the holder releases
    assert_eq!(release(&t, "holder").await["released"], true);

    // THEN the foreign waiter is skipped (Step Functions answers TaskDoesNotExist) and the
    // slot goes on to the execution, which is served; nothing is left
    let d = t.finished(&next, Duration::from_secs(30)).await;
    assert_eq!(output(&d)["status"], "SERVED", "{:?}", d.output());
    assert_eq!(t.drained(Duration::from_secs(10)).await, (0, 0));
    assert_eq!(t.waiters().await, (0, 0));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_or_malformed_token_is_invalid_input_and_changes_nothing() {
    // GIVEN a full pool
    let t = one_slot_held(60).await;
    let before = (t.pool().await, t.waiters().await);

    // WHEN the acquire function is called in queued mode with tokens no waiting task has
    for token in [
        "\"00000000-0000-4000-8000-000000000001\"",
        "\"not a token\"",
        "\"\"",
    ] {
        let answer = t
            .invoke(
                "AcquireFunction",
                &format!(
                    r#"{{"pool": "main", "leaseId": "stranger", "taskToken": {token}, "waitSeconds": 5}}"#
                ),
            )
            .await;
        // THEN each is refused by name, and neither the pool nor the queue changed
        assert_eq!(answer["errorType"], "InvalidInput", "{token}: {answer}");
    }
    assert_eq!((t.pool().await, t.waiters().await), before);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_only_holder_vanished_comes_back_to_the_queue_without_a_release() {
    // GIVEN a slot held by a lease of 2 s that nobody will ever release, and a queued
    // execution that may wait 30 s in rounds of 2 s
    let t = one_slot_held_for(2, 30, 2).await;

    // WHEN it waits
    let arn = t
        .start_execution("ConnectionStateMachine", &queued(0))
        .await;
    let d = t.finished(&arn, Duration::from_secs(40)).await;

    // THEN a later round reclaims the expired lease (no release, no schedule) and the slot is
    // handed to the waiting execution, which is served well before its wait runs out
    let out = output(&d);
    assert_eq!(out["status"], "SERVED", "{out}");
    let waited = out["lease"]["waitedMs"].as_i64().unwrap();
    assert!(waited < 20_000, "waited {waited} ms");
    let states = entered(&t, &arn).await;
    assert!(
        states.iter().filter(|s| *s == "AcquireQueued").count() >= 2,
        "{states:?}"
    );
    assert_eq!(t.drained(Duration::from_secs(10)).await, (0, 0));
    assert_eq!(t.waiters().await, (0, 0));
    t.shutdown().await;
}
