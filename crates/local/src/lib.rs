//! The local stack: leasehold's workflows and Lambda functions on one machine, the way AWS
//! runs them, so that users can try everything before deploying.
//!
//! `template.yaml` is the single source: the stack reads its functions (the handler binary per
//! `CodeUri`, environment, timeout, memory, concurrency), state machines (`DefinitionUri` with
//! `DefinitionSubstitutions`), tables, custom resources and event rules. Functions run as real
//! processes speaking the Lambda Runtime API; state machines run on the `leasehold-asl`
//! interpreter behind the Step Functions API; DynamoDB, CloudWatch and Secrets Manager come from
//! moto and MySQL from MariaDB (`scripts/dev-env.sh`). Everything binds 127.0.0.1.
//!
//! # Layout
//! - [`database`]: the local MariaDB in the functions' environment (its CA, and password
//!   accounts standing in for IAM database authentication).
//! - [`template`]: reading the template (`template/intrinsics`: intrinsic functions and
//!   substitutions; `template/resources`: each resource type the stack runs).
//! - [`lambda`]: containers, the Runtime API, concurrency, timeouts, fault injection, logs.
//! - [`logfile`]: a container's log file, rotated by size.
//! - [`metrics`]: Embedded Metric Format lines to CloudWatch metrics.
//! - [`sfn`]: state machines, executions, task tokens of callback tasks and the Step Functions
//!   JSON 1.0 API.
//! - [`integrations`]: the Task resources (`lambda:invoke` and `.waitForTaskToken`,
//!   `states:startExecution(.sync:2)`, `dynamodb:*Item`).
//! - [`events`]: EventBridge rules (status change events, schedules).
//!
//! Dependencies run one way: [`sfn`] knows no other service; [`integrations`] (its Task
//! invoker, given when it is built) and [`events`] (a listener of its status changes) depend on
//! it, and hold `Weak` handles to it.
//! - [`server`]: the HTTP endpoint (Step Functions, Lambda, custom resource responses).
//! - [`trace_view`]: the stack as the trace page (`leasehold-trace`) reads it.
//! - [`stack`]: wiring it all from a template.
//! - [`error`]: [`StackError`] (why the stack could not start) and the APIs' error types.
//! - [`facts`]: `leasehold-local template-facts`, what the template reader knows, as JSON.
//! - [`rng`]: the seeded generator behind ids and fault injection.
#![forbid(unsafe_code)]

pub mod database;
pub mod error;
pub mod events;
pub mod facts;
pub mod integrations;
pub mod lambda;
pub mod logfile;
pub mod metrics;
pub mod rng;
pub mod server;
pub mod sfn;
pub mod stack;
pub mod template;
pub mod trace_view;

pub use error::StackError;
pub use stack::{Retention, Stack, StackOptions};

/// Reads a `KEY=VALUE` file (`.local/env`): blank lines and `#` comments are skipped.
pub fn read_env_file(
    path: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, String>, StackError> {
    let text = std::fs::read_to_string(path).map_err(|source| StackError::EnvFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}
