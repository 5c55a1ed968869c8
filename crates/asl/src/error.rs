//! Errors of the crate: definitions that cannot be loaded, and the `{error, cause}` pair a
//! workflow sees when something fails.

use crate::diagnostics::Diagnostic;

/// A definition that cannot run, with every diagnostic found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid state machine definition: {}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
pub struct LoadError(pub Vec<Diagnostic>);

/// A failure as Step Functions reports it (`ErrorEquals` matches `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: Option<String>,
}
