//! The trace page's errors: details go to the log, the page gets a plain message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::warn;

/// An error of the stack behind a [`crate::StackView`], kept as its source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    BadRequest(String),
    /// No such state machine or execution.
    #[error(transparent)]
    NotFound(SourceError),
    /// An ARN the stack does not accept.
    #[error(transparent)]
    InvalidArn(SourceError),
    #[error("the local stack has no CloudWatch endpoint, so there are no metrics to show")]
    NoMetrics,
    #[error("CloudWatch did not answer")]
    Metrics(#[source] Box<aws_sdk_cloudwatch::Error>),
}

impl From<aws_sdk_cloudwatch::Error> for TraceError {
    fn from(e: aws_sdk_cloudwatch::Error) -> Self {
        TraceError::Metrics(Box::new(e))
    }
}

impl IntoResponse for TraceError {
    fn into_response(self) -> Response {
        let status = match &self {
            TraceError::BadRequest(_) | TraceError::InvalidArn(_) => StatusCode::BAD_REQUEST,
            TraceError::NotFound(_) => StatusCode::NOT_FOUND,
            TraceError::NoMetrics => StatusCode::SERVICE_UNAVAILABLE,
            TraceError::Metrics(e) => {
                warn!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(e.as_ref()), "trace page: reading metrics failed");
                StatusCode::BAD_GATEWAY
            }
        };
        let message = match &self {
            TraceError::Metrics(_) => {
                "CloudWatch did not answer; the stack's log has the details".to_owned()
            }
            other => other.to_string(),
        };
        crate::json::json_response(status, json!({ "message": message }))
    }
}
