//! The callback port: how a queued request's waiting task is completed. In a workflow the
//! queued Acquire is a `lambda:invoke.waitForTaskToken` task; the broker completes it with the
//! lease through [`StepFunctionsCallbacks`] (`SendTaskSuccess`), and checks a token before it
//! queues it (`SendTaskHeartbeat`). [`RecordingCallbacks`] stands in for unit tests.

use async_trait::async_trait;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Why a task could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The task no longer waits or never did (`InvalidToken`, `TaskDoesNotExist`,
    /// `TaskTimedOut`): its execution is gone, so its slot must go to someone else.
    #[error("the task of this token no longer waits: {0}")]
    Gone(String),
    /// Step Functions could not be reached or refused for another reason; may be retried.
    #[error("the callback failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait Callbacks: Send + Sync {
    /// Completes the waiting task with `output` (the lease).
    async fn succeed(&self, token: &str, output: &Value) -> Result<(), CallbackError>;
    /// Confirms that the token's task is waiting, without completing it.
    async fn check(&self, token: &str) -> Result<(), CallbackError>;
}

/// The Step Functions API, through aws-sdk-sfn (`AWS_ENDPOINT_URL_SFN` and the other endpoint
/// settings of the SDK apply).
pub struct StepFunctionsCallbacks {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsCallbacks {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        StepFunctionsCallbacks {
            client: aws_sdk_sfn::Client::new(sdk),
        }
    }
}

/// Sorts an SDK error into gone (the three token errors) or failed.
fn classify<E>(error: aws_sdk_sfn::error::SdkError<E>) -> CallbackError
where
    E: aws_sdk_sfn::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    let message = aws_sdk_sfn::error::DisplayErrorContext(&error).to_string();
    match code.as_deref() {
        Some("InvalidToken" | "TaskDoesNotExist" | "TaskTimedOut") => {
            CallbackError::Gone(format!("{}: {message}", code.unwrap_or_default()))
        }
        _ => CallbackError::Failed(message),
    }
}

#[async_trait]
impl Callbacks for StepFunctionsCallbacks {
    async fn succeed(&self, token: &str, output: &Value) -> Result<(), CallbackError> {
        self.client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn check(&self, token: &str) -> Result<(), CallbackError> {
        self.client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// Records completions in memory; tokens marked gone answer [`CallbackError::Gone`].
#[derive(Debug, Default)]
pub struct RecordingCallbacks {
    completed: Mutex<Vec<(String, Value)>>,
    gone: Mutex<HashSet<String>>,
    failing: Mutex<HashMap<String, u32>>,
}

impl RecordingCallbacks {
    /// Every completion so far, in order: (token, output).
    pub fn completed(&self) -> Vec<(String, Value)> {
        self.completed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The token's task no longer waits (its execution was stopped or timed out).
    pub fn mark_gone(&self, token: &str) {
        self.gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned());
    }

    /// The next `times` completions (not checks) of the token fail as if Step Functions were
    /// unreachable.
    pub fn fail_next(&self, token: &str, times: u32) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), times);
    }

    fn answer(&self, token: &str, completing: bool) -> Result<(), CallbackError> {
        if self
            .gone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(token)
        {
            return Err(CallbackError::Gone(format!("TaskTimedOut: {token}")));
        }
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = failing
            .get_mut(token)
            .filter(|left| completing && **left > 0)
        {
            *left -= 1;
            return Err(CallbackError::Failed("unreachable".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Callbacks for RecordingCallbacks {
    async fn succeed(&self, token: &str, output: &Value) -> Result<(), CallbackError> {
        self.answer(token, true)?;
        self.completed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((token.to_owned(), output.clone()));
        // A task completes once; a second completion finds it gone, as in Step Functions.
        self.mark_gone(token);
        Ok(())
    }

    async fn check(&self, token: &str) -> Result<(), CallbackError> {
        self.answer(token, false)
    }
}
