//! The Task state: scheduling events, the invoker call, timeouts and heartbeats.

use super::pipeline::Sources;
use super::{Flow, Race, StateCtx, StateFailure, race};
use crate::clock::Clock;
use crate::definition::{State, ValueSource};
use crate::history::Thread;
use crate::intrinsics;
use crate::invoker::{Heartbeat, Submitted, TaskRequest, TaskStyle};
use crate::values::{MAX_PAYLOAD_BYTES, to_json};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which events a task records: `Task*` with the service's resource type and name,
/// `LambdaFunction*`, or `Activity*`.
struct Resource<'r> {
    arn: &'r str,
    style: TaskStyle,
    service: String,
    name: String,
}

impl Resource<'_> {
    /// The `{resourceType, resource}` pair service-integration events start with.
    fn details(&self) -> Value {
        match self.style {
            TaskStyle::Service => json!({"resourceType": self.service, "resource": self.name}),
            TaskStyle::Lambda | TaskStyle::Activity => json!({}),
        }
    }
}

impl Flow<'_> {
    /// Evaluates the Task's fields, then runs it.
    pub(super) async fn task_state(
        &mut self,
        state: &State,
        ctx: &StateCtx<'_>,
        raw: &Value,
        resource: &str,
        (timeout, heartbeat): (&Option<ValueSource>, &Option<ValueSource>),
    ) -> Result<Value, StateFailure> {
        // Callback integrations get a token in `$$.Task.Token`; an activity's is its worker's.
        let activity = self.execution.services.invoker.style(resource) == TaskStyle::Activity;
        let token = (resource.ends_with(".waitForTaskToken") || activity).then(|| {
            intrinsics::uuid_v4(
                self.execution.services.random.next_u64(),
                self.execution.services.random.next_u64(),
            )
        });
        let task_ctx = StateCtx {
            task_token: token,
            map_item: ctx.map_item.clone(),
            ..*ctx
        };
        let ctx = &task_ctx;
        let (input, states) = self.state_input(state, ctx, raw)?;
        let params = self.parameters(state, ctx, input.clone(), &states)?;
        let src = Sources {
            ctx,
            input: &input,
            states: &states,
        };
        let secs = |this: &Self,
                    n: &Option<ValueSource>,
                    field: &str|
         -> Result<Option<u64>, StateFailure> {
            let Some(n) = n else { return Ok(None) };
            let v = this.value_of(n, src, field)?;
            match v.as_u64() {
                Some(x) if x > 0 => Ok(Some(x)),
                _ => Err(ctx.runtime(&format!(
                    "The {field} field must be a positive integer: {}",
                    to_json(&v)
                ))),
            }
        };
        let timeout = secs(self, timeout, "TimeoutSeconds")?;
        let heartbeat = secs(self, heartbeat, "HeartbeatSeconds")?;
        self.task(resource, params, ctx, timeout, heartbeat).await
    }

    async fn task(
        &mut self,
        arn: &str,
        params: Value,
        ctx: &StateCtx<'_>,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
    ) -> Result<Value, StateFailure> {
        let (service, name) = service_parts(arn);
        let resource = Resource {
            arn,
            style: self.execution.services.invoker.style(arn),
            service,
            name,
        };
        self.task_scheduled(&resource, &params, timeout, heartbeat);
        let hb = Heartbeat::new(self.now());
        // TaskSubmitted links to TaskStarted, and the task's end to TaskSubmitted.
        let submitted_id = Arc::new(AtomicU64::new(0));
        let req = TaskRequest {
            submitted: self.submitted_hook(&resource, submitted_id.clone()),
            resource: arn.to_string(),
            parameters: params,
            context: self.context(ctx),
            timeout_seconds: timeout,
            heartbeat_seconds: heartbeat,
            heartbeat: hb.clone(),
            task_token: ctx.task_token.clone(),
        };
        let call = self.execution.services.invoker.invoke(req);
        let timer = task_deadline(
            self.execution.services.clock.clone(),
            timeout,
            heartbeat,
            hb,
        );
        let raced = race(call, timer).await;
        let submitted_at = submitted_id.load(Ordering::SeqCst);
        if submitted_at != 0 {
            self.thread.source = submitted_at;
        }
        match raced {
            Race::Right(kind) => {
                let ended = match resource.style {
                    TaskStyle::Service => ("TaskTimedOut", "taskTimedOutEventDetails"),
                    TaskStyle::Lambda => (
                        "LambdaFunctionTimedOut",
                        "lambdaFunctionTimedOutEventDetails",
                    ),
                    TaskStyle::Activity => ("ActivityTimedOut", "activityTimedOutEventDetails"),
                };
                Err(self.task_failed(&resource, ended, kind, None))
            }
            Race::Left(Ok(out)) => {
                let text = to_json(&out);
                if text.len() > MAX_PAYLOAD_BYTES {
                    return Err(StateFailure::data_limit(&ctx.state.name));
                }
                let (ty, key, mut d) = match resource.style {
                    TaskStyle::Service => (
                        "TaskSucceeded",
                        "taskSucceededEventDetails",
                        resource.details(),
                    ),
                    TaskStyle::Lambda => (
                        "LambdaFunctionSucceeded",
                        "lambdaFunctionSucceededEventDetails",
                        json!({}),
                    ),
                    TaskStyle::Activity => (
                        "ActivitySucceeded",
                        "activitySucceededEventDetails",
                        json!({}),
                    ),
                };
                d["output"] = json!(text);
                d["outputDetails"] = json!({"truncated": false});
                self.event(ty, Some((key, d)), true);
                Ok(out)
            }
            Race::Left(Err(e)) => {
                let ended = match resource.style {
                    TaskStyle::Service => ("TaskFailed", "taskFailedEventDetails"),
                    TaskStyle::Lambda => {
                        ("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails")
                    }
                    TaskStyle::Activity => ("ActivityFailed", "activityFailedEventDetails"),
                };
                Err(self.task_failed(&resource, ended, &e.error, e.cause))
            }
        }
    }

    /// `TaskScheduled` and `TaskStarted`, or their `LambdaFunction*` forms.
    fn task_scheduled(
        &mut self,
        resource: &Resource<'_>,
        params: &Value,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
    ) {
        let params_text = to_json(params);
        let (ty, key, mut d) = match resource.style {
            TaskStyle::Service => (
                "TaskScheduled",
                "taskScheduledEventDetails",
                json!({"resourceType": resource.service, "resource": resource.name, "region": self.execution.config.region, "parameters": params_text}),
            ),
            TaskStyle::Lambda => (
                "LambdaFunctionScheduled",
                "lambdaFunctionScheduledEventDetails",
                json!({"resource": resource.arn, "input": params_text, "inputDetails": {"truncated": false}}),
            ),
            TaskStyle::Activity => (
                "ActivityScheduled",
                "activityScheduledEventDetails",
                json!({"resource": resource.arn, "input": params_text, "inputDetails": {"truncated": false}}),
            ),
        };
        if let Some(t) = timeout {
            d["timeoutInSeconds"] = json!(t);
        }
        // Lambda events have no heartbeat.
        if let Some(h) = heartbeat.filter(|_| resource.style != TaskStyle::Lambda) {
            d["heartbeatInSeconds"] = json!(h);
        }
        self.event(ty, Some((key, d)), true);
        match resource.style {
            TaskStyle::Service => {
                self.event(
                    "TaskStarted",
                    Some(("taskStartedEventDetails", resource.details())),
                    true,
                );
            }
            TaskStyle::Lambda => {
                self.event("LambdaFunctionStarted", None, true);
            }
            // Started when a worker takes it (the submitted hook).
            TaskStyle::Activity => {}
        };
    }

    /// The hook a service integration calls once its job is submitted (an activity: once a
    /// worker took it): it records `TaskSubmitted` (`ActivityStarted`) once and keeps its id
    /// in `submitted_id`.
    fn submitted_hook(&self, resource: &Resource<'_>, submitted_id: Arc<AtomicU64>) -> Submitted {
        if resource.style == TaskStyle::Lambda {
            return Submitted::default();
        }
        let activity = resource.style == TaskStyle::Activity;
        let (history, clock) = (self.history.clone(), self.execution.services.clock.clone());
        let (from, service, name) = (
            self.thread.source,
            resource.service.clone(),
            resource.name.clone(),
        );
        Submitted::new(move |output| {
            if submitted_id.load(Ordering::SeqCst) != 0 {
                return;
            }
            let mut thread = Thread { source: from };
            let (ty, key, details) = if activity {
                // A worker took the activity task.
                let worker = output.get("workerName").cloned().unwrap_or(Value::Null);
                let details = match worker {
                    Value::String(_) => json!({"workerName": worker}),
                    _ => json!({}),
                };
                ("ActivityStarted", "activityStartedEventDetails", details)
            } else {
                let details = json!({"resourceType": service, "resource": name, "output": to_json(&output), "outputDetails": {"truncated": false}});
                ("TaskSubmitted", "taskSubmittedEventDetails", details)
            };
            let new = history.add(
                &mut thread,
                clock.now_millis(),
                ty,
                Some((key, details)),
                true,
            );
            submitted_id.store(new, Ordering::SeqCst);
        })
    }

    /// Records how a task failed or timed out (`ended`: event type and details key).
    fn task_failed(
        &mut self,
        resource: &Resource<'_>,
        (ty, key): (&str, &'static str),
        error: &str,
        cause: Option<String>,
    ) -> StateFailure {
        let mut d = resource.details();
        if let Some(c) = &cause {
            d["cause"] = json!(c);
        }
        d["error"] = json!(error);
        self.event(ty, Some((key, d)), true);
        StateFailure::plain(error, cause)
    }
}

/// Resolves with `States.Timeout` or `States.HeartbeatTimeout` when the task's time runs
/// out; never without either limit.
async fn task_deadline(
    clock: Arc<dyn Clock>,
    timeout: Option<u64>,
    heartbeat: Option<u64>,
    hb: Heartbeat,
) -> &'static str {
    // Seconds from a definition or an input can be any u64: deadlines saturate far ahead
    // rather than wrap into the past.
    let millis = |seconds: u64| i64::try_from(seconds).map_or(i64::MAX, |s| s.saturating_mul(1000));
    let start = clock.now_millis();
    loop {
        let t_deadline = timeout.map(|t| start.saturating_add(millis(t)));
        let h_deadline = heartbeat.map(|h| hb.last().saturating_add(millis(h)));
        let next = [t_deadline, h_deadline].into_iter().flatten().min();
        let Some(next) = next else {
            return std::future::pending::<&'static str>().await;
        };
        let now = clock.now_millis();
        if now >= next {
            return if t_deadline.is_some_and(|t| now >= t) {
                "States.Timeout"
            } else {
                "States.HeartbeatTimeout"
            };
        }
        clock
            .sleep(Duration::from_millis(next.saturating_sub(now) as u64))
            .await;
    }
}

/// `arn:aws:states:::lambda:invoke` -> (`lambda`, `invoke`), as Task events name a resource.
fn service_parts(resource: &str) -> (String, String) {
    let parts: Vec<&str> = resource.split(':').collect();
    if parts.len() >= 7 && parts[2] == "states" {
        return (parts[5].to_string(), parts[6..].join(":"));
    }
    if parts.len() >= 3 {
        return (
            parts[2].to_string(),
            parts.last().copied().unwrap_or_default().to_string(),
        );
    }
    (String::new(), resource.to_string())
}
