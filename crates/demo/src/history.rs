//! What one child execution's event history says: how it ended, how long it waited for a
//! lease (polling or queued), how often the pool refused it, how long its query held a
//! connection.
//!
//! Works on [`Event`], a small copy of the fields of an AWS history event that matter here, so
//! the reading is the same for the local stack and for AWS, and testable without either.

use serde_json::Value;

/// The fields of a history event the analysis reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `TaskStateEntered`, `TaskScheduled`, `TaskFailed`, `ExecutionSucceeded`, ...
    pub kind: String,
    pub timestamp_ms: i64,
    /// The state's name, on `*StateEntered` events.
    pub state: Option<String>,
    /// The error name, on `TaskFailed` and `ExecutionFailed` events.
    pub error: Option<String>,
    /// The execution's input (`ExecutionStarted`) or output (`ExecutionSucceeded`).
    pub data: Option<String>,
}

/// How a child execution ended, as the load harness counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Served,
    FromCache,
    Shed,
    /// Failed, timed out or aborted, with the error name.
    Failed(String),
    Running,
}

/// The state that takes the lease in the connection workflow's polling mode.
pub const ACQUIRE_STATE: &str = "Acquire";
/// The state that waits in the pool's queue for a lease in the queued mode.
pub const QUEUED_ACQUIRE_STATE: &str = "AcquireQueued";
/// The state that runs the query, in both the governed and the ungoverned workflow.
pub const QUERY_STATE: &str = "Query";
/// The state that gives a served execution's lease back.
pub const RELEASE_STATE: &str = "Release";

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub outcome: Outcome,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// The execution that started this one (the harness), from its input.
    pub started_by: Option<String>,
    /// First `TaskScheduled` → `TaskSucceeded` of the acquire state (`Acquire` or
    /// `AcquireQueued`); `None` without a lease.
    pub acquire_wait_ms: Option<i64>,
    /// How long the execution stayed in its acquire state, whether it got a lease or not:
    /// first `TaskScheduled` → the last task event there (`TaskSucceeded`, the refusal or
    /// timeout that sent it to the fallback), retries and backoff included. `None` when it
    /// never left the state (aborted while waiting, or never got there).
    pub lease_wait_ms: Option<i64>,
    /// The broker's own measure of the queued wait: the output's `lease.waitedMs` (enqueue →
    /// slot handed over; 0 when a slot was free), served queued executions only.
    pub queue_waited_ms: Option<i64>,
    /// `AcquireQueued` attempts that timed out (`States.Timeout`: no slot in time).
    pub queue_timeouts: u32,
    /// The acquire state's `TaskSucceeded` → the Release state's `TaskSucceeded`: how long
    /// the lease was held as the workflow saw it (served executions).
    pub lease_held_ms: Option<i64>,
    /// Acquire attempts refused with `ConnectionsExhausted`.
    pub exhausted_failures: u32,
    /// Of those, the ones the workflow retried (the last refusal before a fallback is not).
    pub exhausted_retries: u32,
    /// Query attempts that failed with `DatabaseBusy` (MySQL error 1040).
    pub busy_failures: u32,
    /// When they failed (epoch ms).
    pub busy_at_ms: Vec<i64>,
    /// Task attempts that failed because the container died (`Runtime.ExitError`, ...).
    pub crashed_tasks: u32,
    /// `TaskStarted` → `TaskSucceeded` of each successful Query attempt: how long the query
    /// function held its connection, plus the local invoke overhead.
    pub query_hold_ms: Vec<i64>,
}

impl Facts {
    pub fn duration_ms(&self) -> Option<i64> {
        self.end_ms.map(|end| end - self.start_ms)
    }
}

const CRASH_ERRORS: [&str; 3] = ["Runtime.ExitError", "Sandbox.Timedout", "Lambda.Unknown"];

/// Reads one execution's history (oldest event first).
pub fn analyze(events: &[Event]) -> Facts {
    let mut facts = Facts {
        outcome: Outcome::Running,
        start_ms: events.first().map_or(0, |e| e.timestamp_ms),
        end_ms: None,
        started_by: None,
        acquire_wait_ms: None,
        lease_wait_ms: None,
        queue_waited_ms: None,
        queue_timeouts: 0,
        lease_held_ms: None,
        exhausted_failures: 0,
        exhausted_retries: 0,
        busy_failures: 0,
        busy_at_ms: Vec::new(),
        crashed_tasks: 0,
        query_hold_ms: Vec::new(),
    };
    let mut state: Option<&str> = None;
    let mut first_acquire_scheduled: Option<i64> = None;
    // The last task event of the acquire state: where its wait ends once the state is left.
    let mut last_acquire_event: Option<i64> = None;
    let mut task_started: Option<i64> = None;
    let mut pending_exhausted = false;
    let is_acquire = |s: Option<&str>| matches!(s, Some(ACQUIRE_STATE | QUEUED_ACQUIRE_STATE));
    for event in events {
        let in_state = |name: &str| state == Some(name);
        let in_acquire = is_acquire(state);
        let left_acquire = |facts: &mut Facts| {
            if in_acquire && facts.lease_wait_ms.is_none() {
                facts.lease_wait_ms = first_acquire_scheduled
                    .zip(last_acquire_event)
                    .map(|(from, to)| to - from);
            }
        };
        match event.kind.as_str() {
            "ExecutionStarted" => {
                facts.start_ms = event.timestamp_ms;
                facts.started_by = event
                    .data
                    .as_deref()
                    .and_then(|input| serde_json::from_str::<Value>(input).ok())
                    .and_then(|input| {
                        input
                            .get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    });
            }
            kind if kind.ends_with("StateEntered") => {
                left_acquire(&mut facts);
                state = event.state.as_deref();
                pending_exhausted = false;
            }
            "TaskScheduled" if in_acquire => {
                first_acquire_scheduled.get_or_insert(event.timestamp_ms);
                if pending_exhausted {
                    facts.exhausted_retries += 1;
                    pending_exhausted = false;
                }
            }
            "TaskStarted" => task_started = Some(event.timestamp_ms),
            "TaskSucceeded" => {
                if in_acquire {
                    last_acquire_event = Some(event.timestamp_ms);
                    facts.acquire_wait_ms = first_acquire_scheduled.map(|t| event.timestamp_ms - t);
                } else if in_state(RELEASE_STATE) {
                    facts.lease_held_ms = last_acquire_event.map(|t| event.timestamp_ms - t);
                } else if in_state(QUERY_STATE)
                    && let Some(started) = task_started
                {
                    facts.query_hold_ms.push(event.timestamp_ms - started);
                }
                task_started = None;
            }
            "TaskFailed" | "TaskTimedOut" => {
                task_started = None;
                let error = event.error.as_deref().unwrap_or_default();
                if in_acquire {
                    last_acquire_event = Some(event.timestamp_ms);
                }
                if CRASH_ERRORS.contains(&error) {
                    facts.crashed_tasks += 1;
                }
                if in_state(QUEUED_ACQUIRE_STATE) && event.kind == "TaskTimedOut" {
                    facts.queue_timeouts += 1;
                }
                if in_state(ACQUIRE_STATE) && error == "ConnectionsExhausted" {
                    facts.exhausted_failures += 1;
                    pending_exhausted = true;
                }
                if in_state(QUERY_STATE) && error == "DatabaseBusy" {
                    facts.busy_failures += 1;
                    facts.busy_at_ms.push(event.timestamp_ms);
                }
            }
            "ExecutionSucceeded" => {
                facts.end_ms = Some(event.timestamp_ms);
                let output: Value = event
                    .data
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
                    .unwrap_or(Value::Null);
                facts.outcome = outcome_of_output(&output);
                facts.queue_waited_ms = output.pointer("/lease/waitedMs").and_then(Value::as_i64);
            }
            "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted" => {
                // An execution stopped while it waited has no end to its wait.
                if event.kind != "ExecutionAborted" {
                    left_acquire(&mut facts);
                }
                facts.end_ms = Some(event.timestamp_ms);
                let fallback = match event.kind.as_str() {
                    "ExecutionTimedOut" => "States.Timeout",
                    "ExecutionAborted" => "Aborted",
                    _ => "Failed",
                };
                facts.outcome = Outcome::Failed(
                    event
                        .error
                        .clone()
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| fallback.to_owned()),
                );
            }
            _ => {}
        }
    }
    facts
}

/// The harness's own rule: `status` SERVED or FALLBACK, `source` cache or none.
pub fn outcome_of_output(output: &Value) -> Outcome {
    match (
        output.get("status").and_then(Value::as_str),
        output.get("source").and_then(Value::as_str),
    ) {
        (Some("SERVED"), _) => Outcome::Served,
        (Some("FALLBACK"), Some("cache")) => Outcome::FromCache,
        (Some("FALLBACK"), _) => Outcome::Shed,
        _ => Outcome::Failed("States.Runtime".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, t: i64) -> Event {
        Event {
            kind: kind.into(),
            timestamp_ms: t,
            state: None,
            error: None,
            data: None,
        }
    }
    fn entered(name: &str, t: i64) -> Event {
        Event {
            state: Some(name.into()),
            ..ev("TaskStateEntered", t)
        }
    }
    fn failed(error: &str, t: i64) -> Event {
        Event {
            error: Some(error.into()),
            ..ev("TaskFailed", t)
        }
    }
    fn with_data(mut e: Event, data: &str) -> Event {
        e.data = Some(data.into());
        e
    }

    #[test]
    fn a_served_execution_after_two_refusals() {
        // GIVEN Acquire refused twice, then granted; the query holds its connection 1 s
        let events = vec![
            with_data(
                ev("ExecutionStarted", 1000),
                r#"{"pool":"main","AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID":"arn:h"}"#,
            ),
            entered("Acquire", 1001),
            ev("TaskScheduled", 1002),
            ev("TaskStarted", 1003),
            failed("ConnectionsExhausted", 1010),
            ev("TaskScheduled", 1500),
            ev("TaskStarted", 1501),
            failed("ConnectionsExhausted", 1510),
            ev("TaskScheduled", 2500),
            ev("TaskStarted", 2501),
            ev("TaskSucceeded", 2520),
            ev("TaskStateExited", 2520),
            entered("Query", 2521),
            ev("TaskScheduled", 2522),
            ev("TaskStarted", 2523),
            ev("TaskSucceeded", 3530),
            entered("Release", 3531),
            ev("TaskScheduled", 3532),
            ev("TaskStarted", 3533),
            ev("TaskSucceeded", 3550),
            with_data(
                ev("ExecutionSucceeded", 3600),
                r#"{"status":"SERVED","source":"database"}"#,
            ),
        ];
        // WHEN the history is read
        let f = analyze(&events);
        // THEN every figure comes from its own events
        assert_eq!(f.outcome, Outcome::Served);
        assert_eq!(f.started_by.as_deref(), Some("arn:h"));
        assert_eq!(f.acquire_wait_ms, Some(2520 - 1002));
        assert_eq!(f.lease_wait_ms, Some(2520 - 1002));
        assert_eq!((f.exhausted_failures, f.exhausted_retries), (2, 2));
        assert_eq!(f.query_hold_ms, vec![3530 - 2523]);
        assert_eq!(f.lease_held_ms, Some(3550 - 2520));
        assert_eq!(f.duration_ms(), Some(2600));
        assert_eq!(f.busy_failures, 0);
    }

    #[test]
    fn the_last_refusal_before_a_fallback_is_not_a_retry() {
        let events = vec![
            ev("ExecutionStarted", 0),
            entered("Acquire", 1),
            ev("TaskScheduled", 2),
            failed("ConnectionsExhausted", 3),
            ev("TaskScheduled", 4),
            failed("ConnectionsExhausted", 5),
            entered("LookupCache", 6),
            ev("TaskScheduled", 7),
            ev("TaskSucceeded", 8),
            with_data(
                ev("ExecutionSucceeded", 9),
                r#"{"status":"FALLBACK","source":"none"}"#,
            ),
        ];
        let f = analyze(&events);
        assert_eq!(f.outcome, Outcome::Shed);
        assert_eq!((f.exhausted_failures, f.exhausted_retries), (2, 1));
        assert_eq!(f.acquire_wait_ms, None);
    }

    #[test]
    fn an_ungoverned_execution_failing_on_a_full_database() {
        let events = vec![
            ev("ExecutionStarted", 0),
            entered("Query", 1),
            ev("TaskScheduled", 2),
            ev("TaskStarted", 3),
            failed("DatabaseBusy", 4),
            ev("TaskScheduled", 900),
            ev("TaskStarted", 901),
            failed("Runtime.ExitError", 902),
            Event {
                error: Some("DatabaseBusy".into()),
                ..ev("ExecutionFailed", 950)
            },
        ];
        let f = analyze(&events);
        assert_eq!(f.outcome, Outcome::Failed("DatabaseBusy".into()));
        assert_eq!((f.busy_failures, f.crashed_tasks), (1, 1));
        assert_eq!(f.busy_at_ms, vec![4]);
        assert!(f.query_hold_ms.is_empty());
        assert_eq!(f.duration_ms(), Some(950));
    }

    #[test]
    fn a_queued_execution_handed_a_slot() {
        // GIVEN AcquireQueued waits 2.5 s for its callback, the broker measured 2.48 s
        let events = vec![
            ev("ExecutionStarted", 0),
            entered("AcquireQueued", 10),
            ev("TaskScheduled", 11),
            ev("TaskStarted", 12),
            ev("TaskSubmitted", 40),
            ev("TaskSucceeded", 2511),
            ev("TaskStateExited", 2511),
            entered("Query", 2512),
            ev("TaskScheduled", 2513),
            ev("TaskStarted", 2514),
            ev("TaskSucceeded", 3520),
            entered("Release", 3521),
            ev("TaskSucceeded", 3540),
            with_data(
                ev("ExecutionSucceeded", 3600),
                r#"{"status":"SERVED","source":"database","lease":{"waitedMs":2480}}"#,
            ),
        ];
        // WHEN the history is read
        let f = analyze(&events);
        // THEN the wait is the AcquireQueued task's, and the broker's own figure is kept
        assert_eq!(f.outcome, Outcome::Served);
        assert_eq!(f.acquire_wait_ms, Some(2511 - 11));
        assert_eq!(f.lease_wait_ms, Some(2511 - 11));
        assert_eq!(f.queue_waited_ms, Some(2480));
        assert_eq!(f.query_hold_ms, vec![3520 - 2514]);
        assert_eq!((f.queue_timeouts, f.exhausted_failures), (0, 0));
    }

    #[test]
    fn a_queued_execution_that_timed_out_waited_until_the_timeout() {
        // GIVEN no slot came within the 60 s wait: LeaveQueue, then the cache
        let events = vec![
            ev("ExecutionStarted", 0),
            entered("AcquireQueued", 1),
            ev("TaskScheduled", 2),
            ev("TaskStarted", 3),
            ev("TaskSubmitted", 20),
            Event {
                error: Some("States.Timeout".into()),
                ..ev("TaskTimedOut", 60_002)
            },
            entered("LeaveQueue", 60_003),
            ev("TaskSucceeded", 60_030),
            entered("LookupCache", 60_031),
            with_data(
                ev("ExecutionSucceeded", 60_050),
                r#"{"status":"FALLBACK","source":"cache"}"#,
            ),
        ];
        let f = analyze(&events);
        // THEN it counts in the wait distribution, not among the leases granted
        assert_eq!(f.outcome, Outcome::FromCache);
        assert_eq!(f.lease_wait_ms, Some(60_000));
        assert_eq!(f.acquire_wait_ms, None);
        assert_eq!(f.queue_waited_ms, None);
        assert_eq!(f.queue_timeouts, 1);
    }

    #[test]
    fn a_polling_wait_ends_with_the_refusal_that_sends_it_to_the_fallback() {
        let events = vec![
            ev("ExecutionStarted", 0),
            entered("Acquire", 1),
            ev("TaskScheduled", 2),
            failed("ConnectionsExhausted", 5),
            ev("TaskScheduled", 1000),
            failed("ConnectionsExhausted", 1004),
            entered("LookupCache", 1005),
            with_data(
                ev("ExecutionSucceeded", 1010),
                r#"{"status":"FALLBACK","source":"none"}"#,
            ),
        ];
        assert_eq!(analyze(&events).lease_wait_ms, Some(1002));
        // A crashed acquire that ends the execution ends the wait too ...
        let crashed = analyze(&[
            ev("ExecutionStarted", 0),
            entered("Acquire", 1),
            ev("TaskScheduled", 2),
            failed("Runtime.ExitError", 30),
            Event {
                error: Some("Runtime.ExitError".into()),
                ..ev("ExecutionFailed", 31)
            },
        ]);
        assert_eq!(crashed.lease_wait_ms, Some(28));
        // ... an execution stopped while it waits has no wait to report.
        let aborted = analyze(&[
            ev("ExecutionStarted", 0),
            entered("AcquireQueued", 1),
            ev("TaskScheduled", 2),
            ev("TaskSubmitted", 5),
            ev("ExecutionAborted", 900),
        ]);
        assert_eq!(aborted.lease_wait_ms, None);
        assert_eq!(aborted.outcome, Outcome::Failed("Aborted".into()));
    }

    #[test]
    fn outputs_map_to_the_harness_categories() {
        use serde_json::json;
        assert_eq!(
            outcome_of_output(&json!({"status": "FALLBACK", "source": "cache"})),
            Outcome::FromCache
        );
        assert_eq!(
            outcome_of_output(&json!({"status": "SERVED"})),
            Outcome::Served
        );
        assert!(matches!(outcome_of_output(&json!({})), Outcome::Failed(_)));
        let aborted = analyze(&[ev("ExecutionStarted", 0), ev("ExecutionAborted", 5)]);
        assert_eq!(aborted.outcome, Outcome::Failed("Aborted".into()));
    }
}
