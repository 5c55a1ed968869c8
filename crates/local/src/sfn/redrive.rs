//! RedriveExecution: a Standard execution that failed, timed out or was stopped starts again
//! from the top-level state that did not complete, with the input it was entered with and the
//! variables assigned before it; its history goes on after an `ExecutionRedriven` event, and
//! `$$.Execution.RedriveCount` counts the redrives. (A Map or Parallel state runs again whole:
//! AWS redrives only its failed iterations.)

use super::{ApiError, Execution, StepFunctions};
use leasehold_asl::AbortHandle;
use leasehold_asl::Redrive;
use leasehold_asl::history::HistoryEvent;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// AWS redrives an execution at most this often.
const MAX_REDRIVES: u32 = 1000;

fn not_redrivable(why: String) -> ApiError {
    ApiError::new("ExecutionNotRedrivable", why)
}

/// Whether `execution` may be redriven now; why not otherwise (AWS's redriveStatusReason).
pub(super) fn redrivable(execution: &Execution, status: &str, count: u32) -> Result<(), String> {
    if execution.express {
        return Err("Express executions cannot be redriven".into());
    }
    if !matches!(status, "FAILED" | "TIMED_OUT" | "ABORTED") {
        return Err(format!("Execution is {status}"));
    }
    if count >= MAX_REDRIVES {
        return Err(format!("Execution was redriven {MAX_REDRIVES} times"));
    }
    Ok(())
}

/// A field of an event's details (`key` names the details object).
fn detail(event: &HistoryEvent, key: &str, field: &str) -> Option<Value> {
    let details = event.details.as_ref().filter(|d| d.key() == key)?;
    details.to_value().get(field).cloned()
}

fn text(event: &HistoryEvent, key: &str, field: &str) -> Option<String> {
    detail(event, key, field)?.as_str().map(str::to_owned)
}

/// Where to start again: the last top-level state entered and not exited, its input, and the
/// variables top-level states assigned before it; `None` when no state was entered.
fn restart_point(
    history: &[HistoryEvent],
    top_level: &[String],
) -> Option<(String, Value, Map<String, Value>)> {
    let is_top = |name: &Option<String>| name.as_ref().is_some_and(|n| top_level.contains(n));
    let mut last: Option<(usize, String, Value)> = None;
    for (i, event) in history.iter().enumerate() {
        if event.event_type.ends_with("StateEntered") {
            let name = text(event, "stateEnteredEventDetails", "name");
            if is_top(&name) {
                let input = text(event, "stateEnteredEventDetails", "input")
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                last = Some((i, name?, input));
            }
        }
    }
    let (at, state, input) = last?;
    let mut variables = Map::new();
    for event in &history[..at] {
        if !event.event_type.ends_with("StateExited") {
            continue;
        }
        let assigned = detail(event, "stateExitedEventDetails", "assignedVariables");
        for (name, value) in assigned.iter().filter_map(Value::as_object).flatten() {
            let value = value
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            variables.insert(name.clone(), value);
        }
    }
    Some((state, input, variables))
}

impl StepFunctions {
    /// RedriveExecution; the redrive's date (epoch milliseconds).
    pub fn redrive(self: &Arc<Self>, arn: &str) -> Result<i64, ApiError> {
        let execution = self.execution(arn)?;
        let mut config = execution.config.clone();
        let history = execution.history();
        let top_level: Vec<String> = execution
            .definition
            .states
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let now = self.now_millis();
        {
            let mut state = execution.state.lock().unwrap_or_else(|e| e.into_inner());
            redrivable(&execution, state.status, state.redrive_count).map_err(not_redrivable)?;
            let (from, input, variables) =
                restart_point(&history, &top_level).unwrap_or_else(|| {
                    let input = serde_json::from_str(&execution.input).unwrap_or(Value::Null);
                    (execution.definition.start_at.clone(), input, Map::new())
                });
            state.redrive_count += 1;
            state.redrive_ms = Some(now);
            state.status = "RUNNING";
            state.stop_ms = None;
            (state.output, state.error, state.cause) = (None, None, None);
            config.redrive = Some(Redrive {
                history,
                count: state.redrive_count,
                state: from,
                input,
                variables,
            });
        }
        *execution.abort.lock().unwrap_or_else(|e| e.into_inner()) = AbortHandle::new();
        execution.done.send_replace(false);
        self.launch(&execution, config);
        Ok(now)
    }
}

impl Execution {
    /// DescribeExecution's redrive fields: `redriveCount`, `redriveDate` once redriven,
    /// `redriveStatus` (`REDRIVABLE` or `NOT_REDRIVABLE`) and, when not, why.
    pub fn redrive_fields(&self) -> Map<String, Value> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut fields = Map::new();
        fields.insert("redriveCount".into(), json!(state.redrive_count));
        if let Some(ms) = state.redrive_ms {
            fields.insert("redriveDate".into(), super::seconds(ms));
        }
        match redrivable(self, state.status, state.redrive_count) {
            Ok(()) => {
                fields.insert("redriveStatus".into(), json!("REDRIVABLE"));
            }
            Err(why) => {
                fields.insert("redriveStatus".into(), json!("NOT_REDRIVABLE"));
                fields.insert("redriveStatusReason".into(), json!(why));
            }
        }
        fields
    }
}
