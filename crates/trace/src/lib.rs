//! The trace page: a web page served by the local stack that draws a state machine, colours the
//! path an execution took (like the console's graph view), lists the event history, drills into
//! Map iterations and the child executions they started, and plots the pool's metrics read back
//! from CloudWatch.
//!
//! `GET /trace` is one self-contained HTML page (inline CSS, JavaScript and SVG; no external
//! resource, enforced by its Content-Security-Policy) that reads the JSON endpoints below and
//! polls them while an execution runs:
//!
//! | endpoint | answers |
//! |---|---|
//! | `/trace/api/machines` | state machines with execution counts |
//! | `/trace/api/executions?machine=ARN&status=S&limit=N` | executions, newest first |
//! | `/trace/api/execution?arn=ARN` | the execution (with the states that wait for a task token's callback), its laid-out graph with a status per state and edge, Map iterations, child executions |
//! | `/trace/api/history?arn=ARN&after=ID` | history events after an id, each with its state and iteration |
//! | `/trace/api/metrics?pool=P&minutes=M` (or `&startMs=T&endMs=T`) | `RemainingConnections` and `NoConnectionsLeftError` of a pool over time |
//!
//! The page reads the stack through [`StackView`], a narrow read-only view the stack
//! implements, so this crate depends on no emulator; the stack mounts [`app`] on its router.
//!
//! # Layout
//! - [`view`]: the read-only view of a stack the page needs (machines, executions, histories).
//! - [`routes`]: the page and its JSON endpoints.
//! - [`graph`]: the graph of a definition (states, transitions, nested groups) and its layout.
//! - `layers`: the layered layout of a graph of boxes the graph module uses.
//! - [`path`]: the path an execution took, read from its history.
//! - [`metrics`]: reading the pool's metrics from CloudWatch.
//! - [`error`]: the endpoints' errors.
//! - `json`: the endpoints' JSON answers (never cached).
#![forbid(unsafe_code)]

pub mod error;
pub mod graph;
mod json;
mod layers;
pub mod metrics;
pub mod path;
pub mod routes;
pub mod view;

pub use error::{SourceError, TraceError};
pub use routes::{DEFAULT_NAMESPACE, PAGE, TraceState, app};
pub use view::{ExecutionView, MachineView, StackView};
