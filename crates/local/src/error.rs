//! The crate's errors: [`StackError`], why the local stack could not start (each with what it
//! was doing and the underlying error as its source), and the errors the emulated APIs answer
//! with ([`ApiError`] for Step Functions, [`InvokeError`] for Lambda). They live here, apart
//! from the services, so that every module can name them without depending on another service.

use crate::template::TemplateError;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StackError {
    #[error("cannot read {}: {source}", path.display())]
    EnvFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the listener has no address: {0}")]
    Listener(#[source] std::io::Error),
    #[error("the local stack binds 127.0.0.1 only, not {0}")]
    NotLoopback(std::net::SocketAddr),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("table {table}: invalid key schema: {source}")]
    TableSchema {
        table: String,
        #[source]
        source: BuildError,
    },
    #[error("table {table}: cannot create it in the local DynamoDB: {}", DisplayErrorContext(.source.as_ref()))]
    Table {
        table: String,
        #[source]
        source: Box<SdkError<CreateTableError>>,
    },
    #[error(
        "function {function}: no binary at {} (build the handlers first: cargo build --bins)",
        path.display()
    )]
    MissingBinary { function: String, path: PathBuf },
    #[error("mock configuration {}: {reason}", path.display())]
    MockConfig { path: PathBuf, reason: String },
    #[error("--time-scale: {0}")]
    TimeScale(String),
    #[error("--kill or --lose-answers names no function of the template: {0}")]
    KillTarget(String),
    #[error("--function-env names no function of the template: {0}")]
    EnvTarget(String),
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state machine {machine}: the Task resource {resource} is not supported by the local stack"
    )]
    UnsupportedTask { machine: String, resource: String },
    #[error("state machine {machine}: {source}")]
    StateMachine {
        machine: String,
        #[source]
        source: ApiError,
    },
    #[error("rule {rule}: the pattern operator {operator:?} is not supported locally")]
    PatternOperator { rule: String, operator: String },
    #[error("rule {rule}: pattern values must be lists or objects")]
    PatternShape { rule: String },
    #[error(
        "rule {rule}: target {target} is neither a function nor a state machine of the template"
    )]
    RuleTarget { rule: String, target: String },
    #[error("custom resource {resource}: ServiceToken {token} is not a function of the template")]
    ServiceToken { resource: String, token: String },
    #[error("custom resource {resource}: {source}")]
    CustomResourceInvoke {
        resource: String,
        #[source]
        source: InvokeError,
    },
    #[error("custom resource {resource}: no response to {request_type} within {seconds}s")]
    CustomResourceTimeout {
        resource: String,
        request_type: String,
        seconds: u64,
    },
    #[error("function {function}: IAM database authentication needs {variable}, the database user")]
    DatabaseUser { function: String, variable: String },
    #[error(
        "the local stand-in for database user {user}: cannot keep its secret in the local Secrets Manager: {detail}"
    )]
    DatabaseSecret {
        user: String,
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot read the operating system's random source: {0}")]
    Random(#[source] std::io::Error),
    #[error("custom resource {resource}: the response channel closed")]
    CustomResourceChannel { resource: String },
    #[error("custom resource {resource} ({request_type}) failed: {reason}")]
    CustomResourceFailed {
        resource: String,
        request_type: String,
        reason: String,
    },
}

/// An error in the shape of the AWS API (`__type` and `message`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

/// An invocation Lambda itself refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    #[error("Function not found: {0}")]
    NotFound(String),
    #[error("Rate Exceeded. Concurrency limit of {limit} reached for function {function}")]
    Throttled { function: String, limit: usize },
    #[error("{0}")]
    Service(String),
}

impl InvokeError {
    /// Lambda's exception name (`Lambda.<name>` in Step Functions).
    pub fn exception(&self) -> &'static str {
        match self {
            InvokeError::NotFound(_) => "ResourceNotFoundException",
            InvokeError::Throttled { .. } => "TooManyRequestsException",
            InvokeError::Service(_) => "ServiceException",
        }
    }
}
