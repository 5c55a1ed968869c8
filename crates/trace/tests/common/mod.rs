//! A view of a stack without state machines, shared by the trace page's router tests.

#![allow(dead_code)]

use leasehold_asl::history::HistoryEvent;
use leasehold_trace::{ExecutionView, MachineView, StackView, TraceError};

/// A stack without state machines, whose lookups fail the way the local stack's do.
pub struct Empty;

fn missing(arn: &str) -> TraceError {
    if arn.starts_with("arn:aws:states:") {
        TraceError::NotFound(format!("Does Not Exist: '{arn}'").into())
    } else {
        TraceError::InvalidArn(format!("Invalid Arn: '{arn}'").into())
    }
}

impl StackView for Empty {
    fn machines(&self) -> Vec<MachineView> {
        Vec::new()
    }
    fn machine(&self, arn: &str) -> Result<MachineView, TraceError> {
        Err(missing(arn))
    }
    fn executions_of(&self, _: &str) -> Vec<ExecutionView> {
        Vec::new()
    }
    fn execution(&self, arn: &str) -> Result<ExecutionView, TraceError> {
        Err(missing(arn))
    }
    fn history(&self, arn: &str) -> Result<Vec<HistoryEvent>, TraceError> {
        Err(missing(arn))
    }
}
