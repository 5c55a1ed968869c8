//! The Task invoker port: the interpreter hands the resource, the effective parameters and
//! the context to an invoker and awaits a result or an error. The local stack implements it
//! with real Lambda invocations and service integrations; tests script it.

use crate::clock::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// What a Task state asks for.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The `Resource` ARN as written (e.g. `arn:aws:states:::lambda:invoke`).
    pub resource: String,
    /// The effective parameters (`Parameters`/`Arguments` after evaluation).
    pub parameters: Value,
    /// The context object at this state (`$$`).
    pub context: Value,
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    /// Call [`Heartbeat::beat`] to report progress (for `HeartbeatSeconds`).
    pub heartbeat: Heartbeat,
    /// For `.waitForTaskToken` resources: the token also given in `$$.Task.Token`; the
    /// invoker completes the task when SendTaskSuccess/Failure arrives with it.
    pub task_token: Option<String>,
    /// Call [`Submitted::submit`] when a long-running task (a `.sync` integration) has been
    /// started, so that the history shows `TaskSubmitted` as AWS's does.
    pub submitted: Submitted,
}

/// Records `TaskSubmitted` (once) with the output of the call that started the work.
#[derive(Clone, Default)]
pub struct Submitted(Option<Arc<dyn Fn(Value) + Send + Sync>>);

impl Submitted {
    pub(crate) fn new(record: impl Fn(Value) + Send + Sync + 'static) -> Self {
        Submitted(Some(Arc::new(record)))
    }

    /// Reports the submission with the output of the starting call (e.g. the ARN of a child
    /// execution); only the first report is recorded.
    pub fn submit(&self, output: Value) {
        if let Some(record) = &self.0 {
            record(output);
        }
    }
}

impl std::fmt::Debug for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Submitted")
    }
}

/// A task's failure as the workflow sees it (`ErrorEquals` matches `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub error: String,
    pub cause: Option<String>,
}

/// How the history should present a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStyle {
    /// `TaskScheduled`/`TaskStarted`/`TaskSucceeded`/... (service integrations).
    Service,
    /// `LambdaFunctionScheduled`/`...Started`/`...Succeeded`/... (a bare Lambda function ARN).
    Lambda,
    /// `ActivityScheduled`, `ActivityStarted` (when a worker takes the task: the invoker reports
    /// it through [`Submitted::submit`] with `{"workerName": ...}`), `ActivitySucceeded`/...
    /// (an activity ARN).
    Activity,
}

impl TaskStyle {
    /// The style AWS uses for a resource ARN: bare `arn:aws:lambda:...:function:...` ARNs are
    /// Lambda style, `arn:aws:states:...:activity:...` ARNs activities, everything else a
    /// service integration.
    pub fn for_resource(resource: &str) -> TaskStyle {
        if resource.contains(":lambda:") && resource.contains(":function:") {
            TaskStyle::Lambda
        } else if resource.starts_with("arn:aws:states:") && resource.contains(":activity:") {
            TaskStyle::Activity
        } else {
            TaskStyle::Service
        }
    }
}

/// Runs Task states.
pub trait TaskInvoker: Send + Sync {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>>;
    /// The history style for a resource; the default follows [`TaskStyle::for_resource`].
    fn style(&self, resource: &str) -> TaskStyle {
        TaskStyle::for_resource(resource)
    }
}

/// An invoker that fails every task (for workflows without Task states).
#[derive(Debug, Default)]
pub struct NoTasks;

impl TaskInvoker for NoTasks {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, TaskError>> {
        let r = request.resource;
        Box::pin(async move {
            Err(TaskError {
                error: "States.TaskFailed".into(),
                cause: Some(format!("No invoker is configured for resource '{r}'")),
            })
        })
    }
}

/// The time of a task's last heartbeat, shared between the invoker and the interpreter.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    pub(crate) fn new(now: i64) -> Self {
        Heartbeat(Arc::new(AtomicI64::new(now)))
    }
    /// Records a heartbeat at `now_millis` (from the same clock the interpreter uses).
    pub fn beat(&self, now_millis: i64) {
        self.0.store(now_millis, Ordering::SeqCst);
    }
    pub(crate) fn last(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
