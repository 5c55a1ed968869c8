//! What the trace page reads from a stack: its state machines, their executions and histories.
//! Read-only and narrow, so that the page depends on no emulator: the stack implements
//! [`StackView`] over its own Step Functions.

use crate::error::TraceError;
use leasehold_asl::definition::StateMachine;
use leasehold_asl::history::HistoryEvent;
use std::sync::Arc;

/// A state machine and its parsed definition.
#[derive(Clone)]
pub struct MachineView {
    pub arn: String,
    pub name: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    pub definition: Arc<StateMachine>,
}

/// A snapshot of an execution: what the page lists and draws of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionView {
    pub machine_arn: String,
    pub machine_name: String,
    pub arn: String,
    pub name: String,
    pub input: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: &'static str,
    pub start_ms: i64,
    /// How it ended; all `None` while it runs.
    pub stop_ms: Option<i64>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The stack as the trace page sees it. A lookup of an unknown ARN answers
/// [`TraceError::NotFound`], of a malformed one [`TraceError::InvalidArn`].
pub trait StackView: Send + Sync {
    /// Every state machine.
    fn machines(&self) -> Vec<MachineView>;
    fn machine(&self, arn: &str) -> Result<MachineView, TraceError>;
    /// The executions of a machine, newest first.
    fn executions_of(&self, machine_arn: &str) -> Vec<ExecutionView>;
    fn execution(&self, arn: &str) -> Result<ExecutionView, TraceError>;
    /// An execution's history so far, oldest event first.
    fn history(&self, arn: &str) -> Result<Vec<HistoryEvent>, TraceError>;
}
