//! Task states with a scripted invoker: events, Retry timing (backoff, cap, full jitter),
//! Catch, timeouts and heartbeats, Parallel failure, Map concurrency, abort and execution
//! timeouts, and the history stream.

mod common;
use common::*;
use leasehold_asl::clock::{Clock, SeededRandom, VirtualClock};
use leasehold_asl::{
    AbortHandle, ExecutionConfig, HistoryEvent, HistoryObserver, Services, Status, execute,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LAMBDA: &str = "arn:aws:states:::lambda:invoke";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:acquire";

fn task(extra: serde_json::Value) -> serde_json::Value {
    let mut t = json!({"Type": "Task", "Resource": LAMBDA, "End": true});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    json!({"StartAt": "T", "States": {"T": t}})
}

#[test]
fn service_task_events_and_result_processing() {
    // GIVEN an invoker that answers with a payload
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![ok(json!({"Payload": {"granted": true}}))]);
    // WHEN a Task evaluates Parameters, ResultSelector and ResultPath
    let def = task(
        json!({"Parameters": {"FunctionName": "acquire", "Payload": {"pool.$": "$.pool", "lease.$": "$$.Execution.Name"}},
        "ResultSelector": {"ok.$": "$.Payload.granted"}, "ResultPath": "$.acquired", "TimeoutSeconds": 30}),
    );
    let out = run_with(&def, &json!({"pool": "p1"}), &clock, script.clone(), 1);
    // THEN the invoker saw the effective parameters and the history has AWS's task events
    assert_eq!(
        out.output,
        Some(json!({"pool": "p1", "acquired": {"ok": true}}))
    );
    let calls = script.calls();
    assert_eq!(
        calls[0].parameters,
        json!({"FunctionName": "acquire", "Payload": {"pool": "p1", "lease": "exec-1"}})
    );
    assert_eq!(calls[0].timeout_seconds, Some(30));
    assert_eq!(calls[0].context["State"]["RetryCount"], json!(0));
    assert_eq!(
        types(&out.history),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let scheduled = out.history[2].to_json();
    assert_eq!(
        scheduled["taskScheduledEventDetails"]["resourceType"],
        "lambda"
    );
    assert_eq!(scheduled["taskScheduledEventDetails"]["resource"], "invoke");
    assert_eq!(
        scheduled["taskScheduledEventDetails"]["timeoutInSeconds"],
        30
    );
    let links: Vec<u64> = out.history.iter().map(|e| e.previous_event_id).collect();
    assert_eq!(links, [0, 0, 2, 3, 4, 5, 6]);
}

#[test]
fn bare_lambda_arn_uses_lambda_events() {
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(
        FUNCTION,
        vec![fail("ConnectionsExhausted", "pool p1 is full")],
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FUNCTION, "End": true}}});
    let out = run_with(&def, &json!({}), &clock, script, 1);
    assert_eq!(
        types(&out.history),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "ExecutionFailed"
        ]
    );
    assert_eq!(out.error.as_deref(), Some("ConnectionsExhausted"));
    assert_eq!(
        out.history[4].to_json()["lambdaFunctionFailedEventDetails"],
        json!({"cause": "pool p1 is full", "error": "ConnectionsExhausted"})
    );
}

#[test]
fn retry_backoff_timing_and_retry_count() {
    // IntervalSeconds 2, BackoffRate 3: retries 2 s, 6 s, 18 s after each failure.
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(
        LAMBDA,
        vec![
            fail("Busy", "1"),
            fail("Busy", "2"),
            fail("Busy", "3"),
            ok(json!("done")),
        ],
    );
    let def = task(
        json!({"Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}]}),
    );
    let out = run_with(&def, &json!({}), &clock, script.clone(), 1);
    assert_eq!(out.status, Status::Succeeded);
    let at: Vec<i64> = script
        .calls()
        .iter()
        .map(|c| (c.at_millis - T0) / 1000)
        .collect();
    assert_eq!(at, [0, 2, 8, 26]);
    let counts: Vec<serde_json::Value> = script
        .calls()
        .iter()
        .map(|c| c.context["State"]["RetryCount"].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2), json!(3)]);
}

#[test]
fn retry_max_delay_caps_and_attempts_run_out() {
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![fail("Busy", "a"); 4]);
    let def = task(
        json!({"Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "BackoffRate": 4, "MaxAttempts": 3, "MaxDelaySeconds": 5}]}),
    );
    let out = run_with(&def, &json!({}), &clock, script.clone(), 1);
    let at: Vec<i64> = script
        .calls()
        .iter()
        .map(|c| (c.at_millis - T0) / 1000)
        .collect();
    assert_eq!(at, [0, 2, 7, 12]);
    assert_eq!(out.error.as_deref(), Some("Busy"));
    assert_eq!(
        out.history
            .iter()
            .filter(|e| e.event_type == "TaskFailed")
            .count(),
        4
    );
}

#[test]
fn full_jitter_stays_within_bounds_and_varies() {
    let mut delays = Vec::new();
    for seed in 0..20 {
        let clock = VirtualClock::new(T0);
        let script = Script::new(&clock).on(LAMBDA, vec![fail("Busy", "a"), ok(json!(1))]);
        let def = task(
            json!({"Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 1, "JitterStrategy": "FULL"}]}),
        );
        run_with(&def, &json!({}), &clock, script.clone(), seed);
        let calls = script.calls();
        let d = calls[1].at_millis - calls[0].at_millis;
        assert!(
            (0..10_000).contains(&d),
            "jittered delay {d} ms out of [0, 10 s)"
        );
        delays.push(d);
    }
    delays.sort();
    delays.dedup();
    assert!(
        delays.len() > 10,
        "jitter should spread the delays: {delays:?}"
    );
}

#[test]
fn catch_with_result_path_and_matching_rules() {
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![fail("ConnectionsExhausted", "full")]);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "Catch": [
            {"ErrorEquals": ["Other"], "Next": "Wrong"},
            {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Fallback"}], "End": true},
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Fallback": {"Type": "Pass", "End": true}}});
    let out = run_with(&def, &json!({"pool": "p"}), &clock, script, 1);
    assert_eq!(
        out.output,
        Some(json!({"pool": "p", "error": {"Error": "ConnectionsExhausted", "Cause": "full"}}))
    );
    // States.ALL does not catch States.Runtime.
    give(
        json!({}),
        json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "InputPath": "$.nope", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}], "End": true},
        "C": {"Type": "Succeed"}}}),
        Expect::Error("States.Runtime", None),
    );
}

#[test]
fn task_timeout_and_heartbeat() {
    // A task slower than TimeoutSeconds fails with States.Timeout at the deadline.
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![ok_after(10, json!(1))]);
    let def = task(
        json!({"TimeoutSeconds": 3, "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "X"}]}),
    );
    let mut def = def;
    def["States"]["X"] = json!({"Type": "Succeed"});
    let out = run_with(&def, &json!({}), &clock, script, 1);
    assert_eq!(
        out.error.as_deref(),
        Some("States.Timeout"),
        "TaskFailed does not catch a timeout"
    );
    let timed_out = out
        .history
        .iter()
        .find(|e| e.event_type == "TaskTimedOut")
        .expect("TaskTimedOut");
    assert_eq!(timed_out.timestamp_millis - T0, 3_000);

    // Heartbeats every 2 s keep a 10 s task alive under HeartbeatSeconds 3.
    let clock = VirtualClock::new(T0);
    let mut r = ok_after(10, json!("beating"));
    r.beat_every = Some(2);
    let script = Script::new(&clock).on(LAMBDA, vec![r]);
    let out = run_with(
        &task(json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 3})),
        &json!({}),
        &clock,
        script,
        1,
    );
    assert_eq!(out.output, Some(json!("beating")));

    // Without heartbeats the same task fails after 3 s, and a retrier can take it.
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![ok_after(10, json!(1)), ok(json!("second"))]);
    let def = task(
        json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 3, "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1}]}),
    );
    let out = run_with(&def, &json!({}), &clock, script.clone(), 1);
    assert_eq!(out.output, Some(json!("second")));
    assert_eq!(script.calls()[1].at_millis - T0, 4_000);
}

#[test]
fn parallel_failure_stops_the_state() {
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(LAMBDA, vec![ok_after(100, json!("slow"))]);
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": LAMBDA, "End": true}}},
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "F"}, "F": {"Type": "Fail", "Error": "BranchFailed", "Cause": "no"}}}]}}});
    let out = run_with(&def, &json!({}), &clock, script, 1);
    assert_eq!(out.error.as_deref(), Some("BranchFailed"));
    assert!(types(&out.history).contains(&"ParallelStateFailed"));
    // The failing branch ended the state at 1 s, without waiting for the slow task.
    assert_eq!(out.history.last().unwrap().timestamp_millis - T0, 1_000);
    assert!(!types(&out.history).contains(&"TaskSucceeded"));
}

#[test]
fn map_runs_iterations_concurrently_up_to_max_concurrency() {
    for (max, want_secs) in [(0, 10), (2, 20), (1, 40)] {
        let clock = VirtualClock::new(T0);
        let script = Script::new(&clock).on(LAMBDA, vec![ok_after(10, json!(1)); 4]);
        let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": max, "End": true,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}}}});
        let out = run_with(&def, &json!([1, 2, 3, 4]), &clock, script, 1);
        assert_eq!(out.output, Some(json!([1, 1, 1, 1])));
        assert_eq!(
            (out.history.last().unwrap().timestamp_millis - T0) / 1000,
            want_secs,
            "MaxConcurrency {max}"
        );
    }
}

struct Collect(Mutex<Vec<HistoryEvent>>);
impl HistoryObserver for Collect {
    fn on_event(&self, e: &HistoryEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

fn services(clock: &VirtualClock, observer: Option<Arc<dyn HistoryObserver>>) -> Services {
    Services {
        clock: Arc::new(clock.clone()),
        random: Arc::new(SeededRandom::new(1)),
        invoker: Script::new(clock),
        observer,
    }
}

#[test]
fn execution_timeout_abort_and_history_stream() {
    // TimeoutSeconds on the machine ends a long wait with ExecutionTimedOut.
    let clock = VirtualClock::new(T0);
    let m = leasehold_asl::load(r#"{"TimeoutSeconds": 5, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}}"#).unwrap();
    let cfg = ExecutionConfig::new("us-east-1", "1", "M", "e", "{}");
    let out = clock
        .block_on(execute(
            Arc::new(m),
            cfg,
            services(&clock, None),
            AbortHandle::new(),
        ))
        .unwrap();
    assert_eq!(out.status, Status::TimedOut);
    assert_eq!(out.history.last().unwrap().event_type, "ExecutionTimedOut");
    assert_eq!(out.history.last().unwrap().timestamp_millis - T0, 5_000);

    // An abort from outside ends it with ExecutionAborted, and the observer saw every event.
    let clock = VirtualClock::new(T0);
    let seen = Arc::new(Collect(Mutex::new(Vec::new())));
    let m = leasehold_asl::load(
        r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}}"#,
    )
    .unwrap();
    let cfg = ExecutionConfig::new("us-east-1", "1", "M", "e", "{}");
    let abort = AbortHandle::new();
    let stopper = abort.clone();
    let c2 = clock.clone();
    let run = execute(
        Arc::new(m),
        cfg,
        services(&clock, Some(seen.clone())),
        abort,
    );
    let out = clock
        .block_on(async move {
            let stop = async move {
                c2.sleep(Duration::from_secs(7)).await;
                stopper.abort(Some("Stopped".into()), Some("by operator".into()));
                std::future::pending::<()>().await;
            };
            let mut run = std::pin::pin!(run);
            let mut stop = std::pin::pin!(stop);
            std::future::poll_fn(move |cx| {
                let _ = stop.as_mut().poll(cx);
                run.as_mut().poll(cx)
            })
            .await
        })
        .unwrap();
    assert_eq!(out.status, Status::Aborted);
    assert_eq!(out.error.as_deref(), Some("Stopped"));
    let streamed = seen.0.lock().unwrap().clone();
    assert_eq!(streamed, out.history);
    assert_eq!(
        types(&streamed),
        ["ExecutionStarted", "WaitStateEntered", "ExecutionAborted"]
    );
}

use std::future::Future;

#[test]
fn runs_on_another_executor() {
    // The same future runs on a general-purpose executor with a clock that never waits.
    struct Instant;
    impl Clock for Instant {
        fn now_millis(&self) -> i64 {
            0
        }
        fn sleep(&self, _: Duration) -> leasehold_asl::clock::BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }
    let m = leasehold_asl::load(r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "Next": "P"}, "P": {"Type": "Pass", "Result": 1, "End": true}}}"#).unwrap();
    let clock = VirtualClock::new(0);
    let mut svc = services(&clock, None);
    svc.clock = Arc::new(Instant);
    let cfg = ExecutionConfig::new("us-east-1", "1", "M", "e", "{}");
    let out = futures_executor::block_on(execute(Arc::new(m), cfg, svc, AbortHandle::new()));
    assert_eq!(out.output, Some(json!(1)));
}

#[test]
fn callback_tasks_get_a_token() {
    const SQS: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
    let clock = VirtualClock::new(T0);
    let script = Script::new(&clock).on(SQS, vec![ok(json!({"answer": 1}))]);
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": SQS,
        "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}}, "End": true}}});
    let out = run_with(&def, &json!({}), &clock, script.clone(), 3);
    assert_eq!(out.output, Some(json!({"answer": 1})));
    let call = &script.calls()[0];
    let token = call.parameters["MessageBody"]["token"]
        .as_str()
        .expect("a token");
    assert_eq!(token.len(), 36);
    assert_eq!(call.context["Task"]["Token"], json!(token));
}

#[test]
fn execution_future_can_be_spawned() {
    // A multi-threaded runtime (the local stack's) needs `Send + 'static` futures.
    fn spawnable<F: Future + Send + 'static>(f: F) -> F {
        f
    }
    let clock = VirtualClock::new(T0);
    let m =
        leasehold_asl::load(r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#)
            .unwrap();
    let cfg = ExecutionConfig::new("us-east-1", "1", "M", "e", "{}");
    let fut = spawnable(execute(
        Arc::new(m),
        cfg,
        services(&clock, None),
        AbortHandle::new(),
    ));
    let handle = std::thread::spawn(move || VirtualClock::new(T0).block_on(fut));
    let out = handle.join().unwrap().unwrap();
    assert_eq!(out.status, Status::Succeeded);
}

/// Starts its work, reports the submission, then finishes after a (virtual) minute.
struct Submitting(VirtualClock);

impl leasehold_asl::invoker::TaskInvoker for Submitting {
    fn invoke(
        &self,
        req: leasehold_asl::invoker::TaskRequest,
    ) -> leasehold_asl::clock::BoxFuture<
        'static,
        Result<serde_json::Value, leasehold_asl::invoker::TaskError>,
    > {
        let clock = self.0.clone();
        Box::pin(async move {
            req.submitted.submit(json!({"ExecutionArn": "arn:child"}));
            req.submitted
                .submit(json!({"ExecutionArn": "ignored: only the first counts"}));
            clock.sleep(Duration::from_secs(60)).await;
            Ok(json!({"Status": "SUCCEEDED"}))
        })
    }
}

#[test]
fn a_submitted_task_records_task_submitted_between_started_and_its_end() {
    let clock = VirtualClock::new(T0);
    let def = json!({"StartAt": "Child", "States": {"Child": {"Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": true}}});
    let out = run_with(
        &def,
        &json!({}),
        &clock,
        Arc::new(Submitting(clock.clone())),
        1,
    );
    assert_eq!(
        types(&out.history),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let submitted = &out.history[4];
    assert_eq!(submitted.previous_event_id, 4);
    assert_eq!(
        out.history[5].previous_event_id, 5,
        "the end links to TaskSubmitted"
    );
    let details = submitted.to_json()["taskSubmittedEventDetails"].clone();
    assert_eq!(details["resource"], "startExecution.sync:2");
    assert_eq!(details["output"], r#"{"ExecutionArn":"arn:child"}"#);
    assert_eq!(
        out.history[5].timestamp_millis - submitted.timestamp_millis,
        60_000
    );
}
