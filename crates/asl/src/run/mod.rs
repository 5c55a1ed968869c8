//! Run phase: executes a loaded [`StateMachine`] against injected services (clock, random,
//! task invoker, history observer), recording the history AWS would. Everything here is
//! executor-agnostic: Parallel branches and Map iterations run as concurrent futures (up to
//! `MaxConcurrency`), and waits go through the injected clock.
//!
//! This module holds the execution loop (a state's entered/exited events and the transition
//! to the next); `pipeline` the input/output/assign processing every state shares; one
//! module per state type the rest; `retry` the Retry/Catch loop around Task, Parallel and
//! Map.

mod choice;
mod map;
mod map_run;
mod parallel;
mod pass;
mod pipeline;
mod retry;
mod task;
mod terminal;
mod wait;

use crate::clock::{BoxFuture, Clock, Random};
use crate::definition::{Kind, State, StateMachine};
use crate::error::Failure;
use crate::history::{Details, History, HistoryEvent, HistoryObserver, Thread};
use crate::invoker::TaskInvoker;
use crate::values::{MAX_PAYLOAD_BYTES, to_json};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use retry::matches_error;

/// Names and input of one execution.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    pub execution_arn: String,
    pub execution_name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub role_arn: String,
    /// The input exactly as given to StartExecution (repeated verbatim in the history).
    pub input_text: String,
    /// Used in ARNs built for Distributed Map runs.
    pub region: String,
    /// AWS changed how `MapStateExited` of a Distributed Map links back (in November 2024):
    /// now to `MapRunStarted`, before to `MapRunSucceeded`. `true` reproduces the old links.
    pub legacy_map_run_links: bool,
    /// AWS stops an execution whose history reaches 25,000 events (a Distributed Map's child
    /// executions count separately).
    pub max_history_events: u64,
    /// Set for a redriven execution: where it starts again, after the events it already has.
    pub redrive: Option<Redrive>,
}

/// Where a redriven execution (RedriveExecution) starts again: its history so far (the new
/// events follow it, after `ExecutionRedriven`), how often it was redriven (this time
/// included: `$$.Execution.RedriveCount`), the top-level state that did not complete, the
/// input it was entered with, and the variables assigned before it.
#[derive(Debug, Clone)]
pub struct Redrive {
    pub history: Vec<crate::history::HistoryEvent>,
    pub count: u32,
    pub state: String,
    pub input: Value,
    pub variables: Map<String, Value>,
}

impl ExecutionConfig {
    /// A config with ARNs built from a region, account, machine name and execution name.
    pub fn new(region: &str, account: &str, machine: &str, name: &str, input_text: &str) -> Self {
        ExecutionConfig {
            execution_arn: format!("arn:aws:states:{region}:{account}:execution:{machine}:{name}"),
            execution_name: name.to_string(),
            state_machine_arn: format!("arn:aws:states:{region}:{account}:stateMachine:{machine}"),
            state_machine_name: machine.to_string(),
            role_arn: format!("arn:aws:iam::{account}:role/StepFunctionsRole"),
            input_text: input_text.to_string(),
            region: region.to_string(),
            legacy_map_run_links: false,
            max_history_events: 25_000,
            redrive: None,
        }
    }
}

/// The injected services an execution uses.
#[derive(Clone)]
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub invoker: Arc<dyn TaskInvoker>,
    pub observer: Option<Arc<dyn HistoryObserver>>,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    /// AWS's spelling (`SUCCEEDED`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

/// The result of an execution, with its full history.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<HistoryEvent>,
}

/// Stops a running execution from outside (StopExecution).
#[derive(Clone, Default)]
pub struct AbortHandle(Arc<AbortInner>);

#[derive(Default)]
struct AbortInner {
    flag: AtomicBool,
    reason: Mutex<(Option<String>, Option<String>)>,
    wakers: Mutex<Vec<Waker>>,
}

impl AbortHandle {
    pub fn new() -> Self {
        Self::default()
    }
    /// Requests the stop; the execution ends with `ExecutionAborted`.
    pub fn abort(&self, error: Option<String>, cause: Option<String>) {
        *self.0.reason.lock().unwrap_or_else(|p| p.into_inner()) = (error, cause);
        self.0.flag.store(true, Ordering::SeqCst);
        for w in self
            .0
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            w.wake();
        }
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.0.flag.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.0
                .wakers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(cx.waker().clone());
            if self.0.flag.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

enum Race<A, B> {
    Left(A),
    Right(B),
}

async fn race<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> Race<A, B> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Race::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Race::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Runs one execution to its end. The returned future is `Send`; drive it on any executor.
pub async fn execute(
    machine: Arc<StateMachine>,
    config: ExecutionConfig,
    services: Services,
    abort: AbortHandle,
) -> Outcome {
    let history = History::new(services.observer.clone());
    let input: Value = serde_json::from_str(&config.input_text).unwrap_or(Value::Null);
    let (main, start) = begin(&history, &config, services.clock.now_millis());
    let execution = Execution {
        services: services.clone(),
        history: history.clone(),
        config: config.clone(),
        input: input.clone(),
        start,
    };
    let run = async {
        let mut flow = Flow {
            execution: &execution,
            history: execution.history.clone(),
            thread: main,
            vars: Vars::default(),
        };
        let r = match &execution.config.redrive {
            Some(redrive) => {
                flow.vars.own = redrive.variables.clone();
                let from = redrive.state.clone();
                flow.run_machine_from(&machine, from, redrive.input.clone())
                    .await
            }
            None => flow.run_machine(&machine, input).await,
        };
        (r, flow.thread)
    };
    let timeout = machine.timeout_seconds;
    let clock = services.clock.clone();
    let timer = async move {
        match timeout {
            Some(t) => clock.sleep(Duration::from_secs(t)).await,
            None => std::future::pending::<()>().await,
        }
    };
    let outcome = race(race(run, timer), abort.wait()).await;
    let now = execution.services.clock.now_millis();
    let mut t = Thread {
        source: history.last_id(),
    };
    let (status, output, error, cause) = match outcome {
        Race::Left(Race::Left((Ok(out), th))) => {
            t = th;
            let text = to_json(&out);
            history.add(
                &mut t,
                now,
                "ExecutionSucceeded",
                Some((
                    "executionSucceededEventDetails",
                    json!({"output": text, "outputDetails": {"truncated": false}}),
                )),
                true,
            );
            (Status::Succeeded, Some(out), None, None)
        }
        Race::Left(Race::Left((Err(f), th))) => {
            t = th;
            let error = Some(f.error).filter(|e| !e.is_empty());
            let d = error_details(error.as_deref(), f.cause.as_deref());
            history.add(
                &mut t,
                now,
                "ExecutionFailed",
                Some(("executionFailedEventDetails", d)),
                true,
            );
            (Status::Failed, None, error, f.cause)
        }
        Race::Left(Race::Right(())) => {
            history.add(
                &mut t,
                now,
                "ExecutionTimedOut",
                Some(("executionTimedOutEventDetails", json!({}))),
                true,
            );
            (
                Status::TimedOut,
                None,
                Some("States.Timeout".to_string()),
                None,
            )
        }
        Race::Right(()) => {
            let (e, c) = abort
                .0
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            t.source = 0;
            history.add(
                &mut t,
                now,
                "ExecutionAborted",
                Some((
                    "executionAbortedEventDetails",
                    error_details(e.as_deref(), c.as_deref()),
                )),
                true,
            );
            (Status::Aborted, None, e, c)
        }
    };
    Outcome {
        status,
        output,
        error,
        cause,
        history: history.take(),
    }
}

/// The first event of a run, `ExecutionStarted`, or `ExecutionRedriven` after the events a
/// redriven execution already has: where the main thread stands, and when the execution
/// started (a redriven one keeps its start, for `$$.Execution.StartTime`).
fn begin(history: &History, config: &ExecutionConfig, now: i64) -> (Thread, i64) {
    let mut main = Thread::default();
    match &config.redrive {
        Some(redrive) => {
            history.restore(redrive.history.clone());
            main.source = history.last_id();
            let details = json!({"redriveCount": redrive.count});
            let event = ("executionRedrivenEventDetails", details);
            history.add(&mut main, now, "ExecutionRedriven", Some(event), true);
            (
                main,
                redrive.history.first().map_or(now, |e| e.timestamp_millis),
            )
        }
        None => {
            let input_detail = json_detail(&config.input_text);
            let details = json!({"input": input_detail, "inputDetails": {"truncated": false}, "roleArn": config.role_arn});
            let event = ("executionStartedEventDetails", details);
            history.add(&mut main, now, "ExecutionStarted", Some(event), false);
            (main, now)
        }
    }
}

/// `{cause, error}` of an execution's end, each only when there is one.
fn error_details(error: Option<&str>, cause: Option<&str>) -> Value {
    let mut d = Map::new();
    if let Some(c) = cause {
        d.insert("cause".into(), Value::from(c));
    }
    if let Some(e) = error {
        d.insert("error".into(), Value::from(e));
    }
    Value::Object(d)
}

/// History details carry JSON text; parse-able input stays as given.
fn json_detail(text: &str) -> Value {
    Value::String(text.to_string())
}

/// A running branch or iteration: its index, result and where its thread ended.
type Branch<'a> = BoxFuture<'a, (usize, Result<Value, StateFailure>, Thread)>;

struct Execution {
    services: Services,
    history: History,
    config: ExecutionConfig,
    input: Value,
    start: i64,
}

#[derive(Clone, Default)]
struct Vars {
    outer: Option<Arc<Map<String, Value>>>,
    own: Map<String, Value>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<Value> {
        self.own
            .get(name)
            .or_else(|| self.outer.as_ref().and_then(|o| o.get(name)))
            .cloned()
    }
    fn child(&self) -> Vars {
        let mut m = self
            .outer
            .as_ref()
            .map(|o| (**o).clone())
            .unwrap_or_default();
        for (k, v) in &self.own {
            m.insert(k.clone(), v.clone());
        }
        Vars {
            outer: Some(Arc::new(m)),
            own: Map::new(),
        }
    }
}

/// Why a state failed, and which history events the failure needs. (Named apart from the
/// public [`Failure`], which is only the `{error, cause}` pair, and from the Fail state.)
#[derive(Debug, Clone)]
struct StateFailure {
    error: String,
    cause: Option<String>,
    /// `Some(location)` for JSONata evaluation errors (an `EvaluationFailed` event).
    eval_location: Option<String>,
    /// A `States.Runtime` error raised by the state's own fields (no `<Type>StateFailed`).
    runtime: bool,
    /// `MapStateFailed`/`ParallelStateFailed`, recorded only once no retrier takes the error.
    state_failed: Option<&'static str>,
}

impl StateFailure {
    fn plain(error: &str, cause: Option<String>) -> StateFailure {
        StateFailure {
            error: error.to_string(),
            cause,
            eval_location: None,
            runtime: false,
            state_failed: None,
        }
    }

    /// A state output or task result over the payload limit.
    fn data_limit(state_name: &str) -> StateFailure {
        StateFailure::plain(
            "States.DataLimitExceeded",
            Some(format!(
                "The state/task '{state_name}' returned a result with a size exceeding the maximum number of bytes service limit."
            )),
        )
    }
}

impl From<StateFailure> for Failure {
    fn from(f: StateFailure) -> Failure {
        Failure {
            error: f.error,
            cause: f.cause,
        }
    }
}

struct StateCtx<'s> {
    state: &'s State,
    entered_id: u64,
    entered_prev: u64,
    entered_time: i64,
    retry_count: Option<u64>,
    map_item: Option<(usize, Value)>,
    /// `$$.Task.Token` for `.waitForTaskToken` integrations.
    task_token: Option<String>,
}

impl StateCtx<'_> {
    /// A `States.Runtime` error caused by the state's own fields.
    fn runtime(&self, msg: &str) -> StateFailure {
        StateFailure {
            error: "States.Runtime".into(),
            cause: Some(self.cause(msg)),
            eval_location: None,
            runtime: true,
            state_failed: None,
        }
    }

    /// A JSONata evaluation error in the field at `location`.
    fn query_error(&self, location: &str, msg: &str) -> StateFailure {
        StateFailure {
            error: "States.QueryEvaluationError".into(),
            cause: Some(self.cause(msg)),
            eval_location: Some(location.to_string()),
            runtime: true,
            state_failed: None,
        }
    }

    fn cause(&self, msg: &str) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
            self.state.name, self.entered_id
        )
    }
}

struct Flow<'e> {
    execution: &'e Execution,
    /// Where events go: the execution's history, or a Distributed Map child's own.
    history: History,
    thread: Thread,
    vars: Vars,
}

enum Step {
    Next(String, Value),
    End(Value),
}

impl<'e> Flow<'e> {
    fn now(&self) -> i64 {
        self.execution.services.clock.now_millis()
    }

    fn event(&mut self, ty: &str, details: Option<(&'static str, Value)>, advance: bool) -> u64 {
        let now = self.now();
        self.history
            .add(&mut self.thread, now, ty, details, advance)
    }

    /// Records an event with field-list details (the cheap form for hot paths).
    fn event_fields(
        &mut self,
        ty: &str,
        key: &'static str,
        fields: Vec<(&'static str, Value)>,
        advance: bool,
    ) -> u64 {
        let now = self.now();
        let d = Details::Fields { key, fields };
        self.history
            .add(&mut self.thread, now, ty, Some(d), advance)
    }

    /// Runs a machine (the execution's, a branch or an iteration) from `StartAt` to its end,
    /// recording each state's entered and exited events.
    fn run_machine<'a>(
        &'a mut self,
        m: &'a StateMachine,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, StateFailure>> {
        self.run_machine_from(m, m.start_at.clone(), input)
    }

    /// [`Flow::run_machine`] from the state `name` on (a redriven execution's restart).
    fn run_machine_from<'a>(
        &'a mut self,
        m: &'a StateMachine,
        name: String,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, StateFailure>> {
        Box::pin(async move {
            let mut name = name;
            let mut input = input;
            loop {
                if self.history.last_id() >= self.execution.config.max_history_events {
                    return Err(StateFailure::plain(
                        "States.Runtime",
                        Some(format!(
                            "The execution reached the maximum number of history events ({}).",
                            self.execution.config.max_history_events
                        )),
                    ));
                }
                let Some(state) = m.get(&name) else {
                    return Err(StateFailure::plain(
                        "States.Runtime",
                        Some(format!("State '{name}' does not exist")),
                    ));
                };
                let entered_prev = self.thread.source;
                let input_text = to_json(&input);
                let entered_id = self.event_fields(
                    &state.entered_event,
                    "stateEnteredEventDetails",
                    vec![
                        ("name", Value::String(state.name.clone())),
                        ("input", Value::String(input_text)),
                    ],
                    true,
                );
                let ctx = StateCtx {
                    state,
                    entered_id,
                    entered_prev,
                    entered_time: self.now(),
                    retry_count: None,
                    map_item: None,
                    task_token: None,
                };
                let mut assigned = None;
                let step = self.run_state(state, ctx, input, &mut assigned).await?;
                let out = match &step {
                    Step::Next(_, v) | Step::End(v) => v,
                };
                let text = to_json(out);
                if text.len() > MAX_PAYLOAD_BYTES {
                    return Err(StateFailure::data_limit(&state.name));
                }
                if !matches!(state.kind, Kind::Fail { .. }) {
                    let mut fields = Vec::with_capacity(4);
                    if let Some(a) = assigned {
                        fields.push(("assignedVariables", Value::Object(a)));
                        fields.push(("assignedVariablesDetails", json!({"truncated": false})));
                    }
                    fields.push(("name", Value::String(state.name.clone())));
                    fields.push(("output", Value::String(text)));
                    self.event_fields(&state.exited_event, "stateExitedEventDetails", fields, true);
                }
                match step {
                    Step::Next(n, v) => {
                        name = n;
                        input = v;
                    }
                    Step::End(v) => return Ok(v),
                }
            }
        })
    }

    fn next_step(state: &State, v: Value) -> Step {
        match &state.next {
            Some(n) if !state.end => Step::Next(n.clone(), v),
            _ => Step::End(v),
        }
    }

    /// Emits the `EvaluationFailed` event for JSONata errors.
    fn note_failure(&mut self, f: &StateFailure, ctx: &StateCtx<'_>) {
        if let Some(loc) = &f.eval_location {
            let mut t = Thread {
                source: if matches!(ctx.state.kind, Kind::Wait { .. }) {
                    ctx.entered_id
                } else {
                    ctx.entered_prev
                },
            };
            let now = self.now();
            let id = self.history.add(
                &mut t,
                now,
                "EvaluationFailed",
                Some((
                    "evaluationFailedEventDetails",
                    if loc.is_empty() {
                        json!({"cause": f.cause, "error": f.error, "state": ctx.state.name})
                    } else {
                        json!({"cause": f.cause, "error": f.error, "location": loc, "state": ctx.state.name})
                    },
                )),
                true,
            );
            self.thread.source = id;
        }
    }

    /// Runs one state by its type; a JSONata evaluation error gets its `EvaluationFailed`
    /// event here.
    async fn run_state(
        &mut self,
        state: &State,
        mut ctx: StateCtx<'_>,
        raw: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, StateFailure> {
        let r = match &state.kind {
            Kind::Pass { result } => self.pass(state, &ctx, raw, result.as_ref(), assigned),
            Kind::Succeed => self.succeed(state, &ctx, raw),
            Kind::Fail { error, cause } => Err(self.fail_state(&ctx, &raw, error, cause)),
            Kind::Choice { choices, default } => {
                self.choice(state, &ctx, raw, choices, default.as_deref(), assigned)
            }
            Kind::Wait { seconds, timestamp } => {
                self.wait(state, &ctx, raw, (seconds, timestamp), assigned)
                    .await
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
                ctx.retry_count = Some(0);
                self.execution_state(state, &mut ctx, raw, assigned).await
            }
        };
        if let Err(f) = &r {
            self.note_failure(f, &ctx);
        }
        r
    }
}
