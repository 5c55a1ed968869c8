//! What one child execution's event history says: how it ended, how long it waited for a
//! lease, how often the pool refused it, how long its query held a connection.
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

/// The state that takes the lease in the connection workflow.
pub const ACQUIRE_STATE: &str = "Acquire";
/// The state that runs the query, in both the governed and the ungoverned workflow.
pub const QUERY_STATE: &str = "Query";

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub outcome: Outcome,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// The execution that started this one (the harness), from its input.
    pub started_by: Option<String>,
    /// First Acquire `TaskScheduled` → Acquire `TaskSucceeded`; `None` without a lease.
    pub acquire_wait_ms: Option<i64>,
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
        exhausted_failures: 0,
        exhausted_retries: 0,
        busy_failures: 0,
        busy_at_ms: Vec::new(),
        crashed_tasks: 0,
        query_hold_ms: Vec::new(),
    };
    let mut state: Option<&str> = None;
    let mut first_acquire_scheduled: Option<i64> = None;
    let mut task_started: Option<i64> = None;
    let mut pending_exhausted = false;
    for event in events {
        let in_state = |name: &str| state == Some(name);
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
                state = event.state.as_deref();
                pending_exhausted = false;
            }
            "TaskScheduled" if in_state(ACQUIRE_STATE) => {
                first_acquire_scheduled.get_or_insert(event.timestamp_ms);
                if pending_exhausted {
                    facts.exhausted_retries += 1;
                    pending_exhausted = false;
                }
            }
            "TaskStarted" => task_started = Some(event.timestamp_ms),
            "TaskSucceeded" => {
                if in_state(ACQUIRE_STATE) {
                    facts.acquire_wait_ms = first_acquire_scheduled.map(|t| event.timestamp_ms - t);
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
                if CRASH_ERRORS.contains(&error) {
                    facts.crashed_tasks += 1;
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
            }
            "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted" => {
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
        assert_eq!((f.exhausted_failures, f.exhausted_retries), (2, 2));
        assert_eq!(f.query_hold_ms, vec![3530 - 2523]);
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
