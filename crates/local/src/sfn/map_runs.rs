//! Distributed Map runs (DescribeMapRun, ListMapRuns): each execution keeps the reports of
//! its runs as the interpreter sends them, so a run is described while it goes and after.
//! A run is found by its ARN among the executions this stack still keeps.

use super::{ApiError, Execution, StepFunctions, registered, seconds};
use leasehold_asl::map_run::{MapRunCounts, MapRunReport};
use serde_json::{Value, json};
use std::sync::Arc;

impl Execution {
    /// Keeps the latest report of a run (a new run is added after the others).
    pub(super) fn record_map_run(&self, run: &MapRunReport) {
        let mut runs = self.map_runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.iter_mut().find(|r| r.arn == run.arn) {
            Some(known) => *known = run.clone(),
            None => runs.push(run.clone()),
        }
    }

    /// Its map runs, oldest first.
    pub fn map_runs(&self) -> Vec<MapRunReport> {
        self.map_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl StepFunctions {
    /// The run with this ARN and its execution: `InvalidArn` for an ARN that is not a map
    /// run's, `ResourceNotFound` for one nobody started (or whose execution was forgotten).
    pub fn map_run(&self, arn: &str) -> Result<(Arc<Execution>, MapRunReport), ApiError> {
        let right_type = arn.split(':').nth(5) == Some("mapRun");
        registered(
            arn,
            right_type,
            || {
                let executions = self.executions.read().unwrap_or_else(|e| e.into_inner());
                executions.values().find_map(|e| {
                    let runs = e.map_runs.lock().unwrap_or_else(|p| p.into_inner());
                    let run = runs.iter().find(|r| r.arn == arn)?.clone();
                    Some((e.clone(), run))
                })
            },
            ("ResourceNotFound", "Map Run"),
        )
    }
}

fn counts(c: &MapRunCounts) -> Value {
    json!({
        "pending": c.pending,
        "running": c.running,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "timedOut": c.timed_out,
        "aborted": c.aborted,
        "total": c.total,
        // No ResultWriter here: nothing is written out.
        "resultsWritten": 0,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    })
}

/// DescribeMapRun's answer.
pub(super) fn describe(execution: &Execution, run: &MapRunReport) -> Value {
    let mut v = json!({
        "mapRunArn": run.arn,
        "executionArn": execution.arn,
        "status": run.status.as_str(),
        "startDate": seconds(run.start_millis),
        "maxConcurrency": run.max_concurrency,
        "toleratedFailurePercentage": run.tolerated_failure_percentage,
        "toleratedFailureCount": run.tolerated_failure_count,
        "itemCounts": counts(&run.items),
        "executionCounts": counts(&run.executions),
        "redriveCount": 0,
    });
    if let Some(stop) = run.stop_millis {
        v["stopDate"] = seconds(stop);
    }
    v
}

/// One entry of ListMapRuns.
pub(super) fn listed(execution: &Execution, run: &MapRunReport) -> Value {
    let mut v = json!({
        "executionArn": execution.arn,
        "mapRunArn": run.arn,
        "stateMachineArn": execution.machine_arn,
        "startDate": seconds(run.start_millis),
    });
    if let Some(stop) = run.stop_millis {
        v["stopDate"] = seconds(stop);
    }
    v
}
