//! Run phase: executes a loaded [`StateMachine`] against injected services (clock, random,
//! task invoker, history observer), recording the history AWS would. Everything here is
//! executor-agnostic: Parallel branches and Map iterations run as concurrent futures (up to
//! `MaxConcurrency`), and waits go through the injected clock.

use crate::clock::{BoxFuture, Clock, Random};
use crate::definition::*;
use crate::error::Failure;
use crate::history::{Details, History, HistoryEvent, HistoryObserver, Thread};
use crate::intrinsics::{self, Arg, ArgEnv};
use crate::invoker::{Heartbeat, Submitted, TaskError, TaskInvoker, TaskRequest, TaskStyle};
use crate::jsonata::{self, JValue};
use crate::jsonpath::JsonPath;
use crate::values::{MAX_PAYLOAD_BYTES, iso_millis, parse_iso, to_json, type_name};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

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
    cfg: ExecutionConfig,
    services: Services,
    abort: AbortHandle,
) -> Outcome {
    let history = History::new(services.observer.clone());
    let start = services.clock.now_millis();
    let input: Value = serde_json::from_str(&cfg.input_text).unwrap_or(Value::Null);
    let mut main = Thread::default();
    let input_detail = json_detail(&cfg.input_text);
    history.add(
        &mut main,
        start,
        "ExecutionStarted",
        Some((
            "executionStartedEventDetails",
            json!({"input": input_detail, "inputDetails": {"truncated": false}, "roleArn": cfg.role_arn}),
        )),
        false,
    );
    let ex = Exec {
        svc: services.clone(),
        history: history.clone(),
        cfg: cfg.clone(),
        input: input.clone(),
        start,
    };
    let run = async {
        let mut flow = Flow {
            ex: &ex,
            history: ex.history.clone(),
            thread: Thread::default(),
            vars: Vars::default(),
        };
        let r = flow.run_machine(&machine, input).await;
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
    let now = ex.svc.clock.now_millis();
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
            let mut d = Map::new();
            if let Some(c) = &f.cause {
                d.insert("cause".into(), Value::String(c.clone()));
            }
            if !f.error.is_empty() {
                d.insert("error".into(), Value::String(f.error.clone()));
            }
            history.add(
                &mut t,
                now,
                "ExecutionFailed",
                Some(("executionFailedEventDetails", Value::Object(d))),
                true,
            );
            let error = Some(f.error).filter(|e| !e.is_empty());
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
            let mut d = Map::new();
            if let Some(c) = &c {
                d.insert("cause".into(), Value::String(c.clone()));
            }
            if let Some(e) = &e {
                d.insert("error".into(), Value::String(e.clone()));
            }
            t.source = 0;
            history.add(
                &mut t,
                now,
                "ExecutionAborted",
                Some(("executionAbortedEventDetails", Value::Object(d))),
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

/// History details carry JSON text; parse-able input stays as given.
fn json_detail(text: &str) -> Value {
    Value::String(text.to_string())
}

/// A running branch or iteration: its index, result and where its thread ended.
type Branch<'a> = BoxFuture<'a, (usize, Result<Value, Fail>, Thread)>;

struct Exec {
    svc: Services,
    history: History,
    cfg: ExecutionConfig,
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

/// Why a state failed, and which history events the failure needs.
#[derive(Debug, Clone)]
struct Fail {
    error: String,
    cause: Option<String>,
    /// `Some(location)` for JSONata evaluation errors (an `EvaluationFailed` event).
    eval_location: Option<String>,
    /// A `States.Runtime` error raised by the state's own fields (no `<Type>StateFailed`).
    runtime: bool,
    /// `MapStateFailed`/`ParallelStateFailed`, recorded only once no retrier takes the error.
    state_failed: Option<&'static str>,
}

impl Fail {
    fn plain(error: &str, cause: Option<String>) -> Fail {
        Fail {
            error: error.to_string(),
            cause,
            eval_location: None,
            runtime: false,
            state_failed: None,
        }
    }
}

impl From<Fail> for Failure {
    fn from(f: Fail) -> Failure {
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
    fn runtime(&self, msg: &str) -> Fail {
        Fail {
            error: "States.Runtime".into(),
            cause: Some(format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
                self.state.name, self.entered_id
            )),
            eval_location: None,
            runtime: true,
            state_failed: None,
        }
    }
    fn query_error(&self, location: &str, msg: &str) -> Fail {
        Fail {
            error: "States.QueryEvaluationError".into(),
            cause: Some(format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
                self.state.name, self.entered_id
            )),
            eval_location: Some(location.to_string()),
            runtime: true,
            state_failed: None,
        }
    }
}

struct Flow<'e> {
    ex: &'e Exec,
    /// Where events go: the execution's history, or a Distributed Map child's own.
    history: History,
    thread: Thread,
    vars: Vars,
}

enum Step {
    Next(String, Value),
    End(Value),
}

struct Env2<'a, 'e> {
    flow: &'a Flow<'e>,
    sc: &'a StateCtx<'a>,
    input: &'a Value,
    field: &'a str,
}

impl ArgEnv for Env2<'_, '_> {
    fn resolve(&self, arg: &Arg) -> Result<Value, String> {
        match arg {
            Arg::Path(p) => self.flow.select_path(p, self.sc, self.input, self.field),
            Arg::Var(n, p) => self.flow.select_var(n, p.as_ref(), self.field),
            _ => Err("unexpected argument".into()),
        }
    }
    fn random_unit(&self) -> f64 {
        self.flow.ex.svc.random.next_f64()
    }
    fn random_u64(&self) -> u64 {
        self.flow.ex.svc.random.next_u64()
    }
}

impl<'e> Flow<'e> {
    fn now(&self) -> i64 {
        self.ex.svc.clock.now_millis()
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

    fn context(&self, sc: &StateCtx<'_>) -> Value {
        let c = &self.ex.cfg;
        let mut state = Map::new();
        state.insert("Name".into(), Value::String(sc.state.name.clone()));
        state.insert(
            "EnteredTime".into(),
            Value::String(iso_millis(sc.entered_time)),
        );
        if let Some(r) = sc.retry_count {
            state.insert("RetryCount".into(), Value::from(r));
        }
        let mut m = Map::new();
        m.insert(
            "Execution".into(),
            json!({
                "Id": c.execution_arn,
                "Input": self.ex.input,
                "StartTime": iso_millis(self.ex.start),
                "Name": c.execution_name,
                "RoleArn": c.role_arn,
                "RedriveCount": 0,
            }),
        );
        m.insert(
            "StateMachine".into(),
            json!({"Id": c.state_machine_arn, "Name": c.state_machine_name}),
        );
        m.insert("State".into(), Value::Object(state));
        if let Some((i, v)) = &sc.map_item {
            m.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
        }
        if let Some(t) = &sc.task_token {
            m.insert("Task".into(), json!({"Token": t}));
        }
        Value::Object(m)
    }

    fn select_path(
        &self,
        p: &JsonPath,
        sc: &StateCtx<'_>,
        input: &Value,
        field: &str,
    ) -> Result<Value, String> {
        let (doc, ctx);
        let target = if p.is_context() {
            ctx = self.context(sc);
            &ctx
        } else {
            doc = input;
            doc
        };
        p.select(target).ok_or_else(|| {
            format!(
                "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                p.as_str(),
                field,
                to_json(target)
            )
        })
    }

    fn select_var(&self, name: &str, p: Option<&JsonPath>, field: &str) -> Result<Value, String> {
        let Some(v) = self.vars.get(name) else {
            return Err(format!(
                "The variable '${name}' specified for the field '{field}' is not defined"
            ));
        };
        match p {
            None => Ok(v),
            Some(p) => p.select(&v).ok_or_else(|| {
                format!(
                    "The JSONPath '${name}{}' specified for the field '{field}' could not be found in the input '{}'",
                    &p.as_str()[1..],
                    to_json(&v)
                )
            }),
        }
    }

    fn template(
        &self,
        t: &Template,
        sc: &StateCtx<'_>,
        input: &Value,
        field: &str,
    ) -> Result<Value, Fail> {
        Ok(match t {
            Template::Lit(v) => v.clone(),
            Template::Path(p) => self
                .select_path(p, sc, input, field)
                .map_err(|m| sc.runtime(&m))?,
            Template::Var(n, p) => self
                .select_var(n, p.as_ref(), field)
                .map_err(|m| sc.runtime(&m))?,
            Template::Call(c, _) => {
                let env = Env2 {
                    flow: self,
                    sc,
                    input,
                    field,
                };
                intrinsics::eval(c, &env).map_err(|m| sc.runtime(&m))?
            }
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, name, t) in fields {
                    m.insert(k.clone(), self.template(t, sc, input, name)?);
                }
                Value::Object(m)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| self.template(t, sc, input, field))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn states_var(&self, sc: &StateCtx<'_>, input: &Value, extra: &[(&str, &Value)]) -> Value {
        let mut m = Map::new();
        m.insert("input".into(), input.clone());
        m.insert("context".into(), self.context(sc));
        for (k, v) in extra {
            m.insert((*k).into(), (*v).clone());
        }
        Value::Object(m)
    }

    /// Evaluates a JSONata template; `loc` names the field for messages (`Output/result`).
    fn jt(
        &self,
        t: &JTemplate,
        sc: &StateCtx<'_>,
        states: &Value,
        loc: &str,
    ) -> Result<Value, Fail> {
        match self.jt_raw(t, sc, states, loc)? {
            JValue::Value(v) => Ok(v),
            JValue::Undefined => Ok(Value::Null),
            JValue::Seq(s) => Ok(Value::Array(s)),
            JValue::Func(_) => Err(sc.query_error(loc, &format!("The JSONata expression specified for the field '{loc}' returned an unsupported result type."))),
        }
    }

    fn jt_raw(
        &self,
        t: &JTemplate,
        sc: &StateCtx<'_>,
        states: &Value,
        loc: &str,
    ) -> Result<JValue, Fail> {
        Ok(match t {
            JTemplate::Lit(v) => JValue::Value(v.clone()),
            JTemplate::Expr(e, src) => {
                let vars = |n: &str| self.vars.get(n);
                let env = jsonata::Env {
                    vars: &vars,
                    states: states.clone(),
                    now_millis: self.now(),
                    random: &*self.ex.svc.random,
                };
                let input = states.get("input").cloned().unwrap_or(Value::Null);
                match e.eval(&input, &env) {
                    Ok(JValue::Undefined) => {
                        return Err(sc.query_error(loc, &format!("The JSONata expression '{src}' specified for the field '{loc}' returned nothing (undefined).")));
                    }
                    Ok(v) => v,
                    Err(err) => {
                        return Err(sc.query_error(loc, &format!("The JSONata expression '{src}' specified for the field '{loc}' threw an error during evaluation. {err}")));
                    }
                }
            }
            JTemplate::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    let v = self.jt(t, sc, states, &format!("{loc}/{k}"))?;
                    m.insert(k.clone(), v);
                }
                JValue::Value(Value::Object(m))
            }
            JTemplate::Array(items) => {
                let mut out = Vec::new();
                for (i, t) in items.iter().enumerate() {
                    out.push(self.jt(t, sc, states, &format!("{loc}/{i}"))?);
                }
                JValue::Value(Value::Array(out))
            }
        })
    }

    /// Evaluates `Assign` (values see the variables as they were before the state).
    fn assign(
        &self,
        a: &Assign,
        sc: &StateCtx<'_>,
        path_input: &Value,
        states: &Value,
    ) -> Result<Map<String, Value>, Fail> {
        let v = match a {
            Assign::Path(t) => self.template(t, sc, path_input, "Assign")?,
            Assign::Jsonata(t) => self.jt(t, sc, states, "Assign")?,
        };
        Ok(v.as_object().cloned().unwrap_or_default())
    }

    fn apply_assign(&mut self, assigned: Map<String, Value>, out: &mut Option<Map<String, Value>>) {
        if assigned.is_empty() {
            return;
        }
        let mut shown = out.take().unwrap_or_default();
        for (k, v) in assigned {
            shown.insert(k.clone(), Value::String(to_json(&v)));
            self.vars.own.insert(k, v);
        }
        *out = Some(shown);
    }

    fn input_path(&self, st: &State, sc: &StateCtx<'_>, input: &Value) -> Result<Value, Fail> {
        match &st.input_path {
            None => Ok(input.clone()),
            Some(PathOrNull::Null) => Ok(json!({})),
            Some(PathOrNull::Path(p)) => self.invalid_path(p, sc, input),
            Some(PathOrNull::Var(n, p, _)) => self
                .select_var(n, p.as_ref(), "InputPath")
                .map_err(|m| sc.runtime(&m)),
        }
    }

    fn invalid_path(&self, p: &JsonPath, sc: &StateCtx<'_>, input: &Value) -> Result<Value, Fail> {
        let target = if p.is_context() {
            self.context(sc)
        } else {
            input.clone()
        };
        p.select(&target).ok_or_else(|| {
            sc.runtime(&format!(
                "Invalid path '{}' : No results for path: {}",
                p.as_str(),
                p.canonical()
            ))
        })
    }

    fn output_path(&self, st: &State, sc: &StateCtx<'_>, v: Value) -> Result<Value, Fail> {
        match &st.output_path {
            None => Ok(v),
            Some(PathOrNull::Null) => Ok(json!({})),
            Some(PathOrNull::Path(p)) => self.invalid_path(p, sc, &v),
            Some(PathOrNull::Var(n, p, _)) => self
                .select_var(n, p.as_ref(), "OutputPath")
                .map_err(|m| sc.runtime(&m)),
        }
    }

    fn result_path(
        &self,
        rp: &Option<PathOrNull>,
        sc: &StateCtx<'_>,
        raw_input: Value,
        result: Value,
    ) -> Result<Value, Fail> {
        match rp {
            None => Ok(result),
            Some(PathOrNull::Null) => Ok(raw_input),
            Some(PathOrNull::Var(..)) => Err(sc.runtime("ResultPath cannot reference a variable")),
            Some(PathOrNull::Path(p)) => p
                .write(raw_input, result)
                .map_err(|m| sc.runtime(&format!("Invalid path '{}': {m}", p.as_str()))),
        }
    }

    fn num_value(
        &self,
        n: &Num,
        sc: &StateCtx<'_>,
        input: &Value,
        states: &Value,
        field: &str,
    ) -> Result<Value, Fail> {
        match n {
            Num::Lit(v) => Ok(v.clone()),
            Num::Ref(t, _) => self.template(t, sc, input, field),
            Num::Expr(t) => self.jt(t, sc, states, field),
        }
    }

    fn run_machine<'a>(
        &'a mut self,
        m: &'a StateMachine,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, Fail>> {
        Box::pin(async move {
            let mut name = m.start_at.clone();
            let mut input = input;
            loop {
                if self.history.last_id() >= self.ex.cfg.max_history_events {
                    return Err(Fail::plain(
                        "States.Runtime",
                        Some(format!(
                            "The execution reached the maximum number of history events ({}).",
                            self.ex.cfg.max_history_events
                        )),
                    ));
                }
                let Some(st) = m.get(&name) else {
                    return Err(Fail::plain(
                        "States.Runtime",
                        Some(format!("State '{name}' does not exist")),
                    ));
                };
                let entered_prev = self.thread.source;
                let input_text = to_json(&input);
                let entered_id = self.event_fields(
                    &st.entered_event,
                    "stateEnteredEventDetails",
                    vec![
                        ("name", Value::String(st.name.clone())),
                        ("input", Value::String(input_text)),
                    ],
                    true,
                );
                let sc = StateCtx {
                    state: st,
                    entered_id,
                    entered_prev,
                    entered_time: self.now(),
                    retry_count: None,
                    map_item: None,
                    task_token: None,
                };
                let mut assigned = None;
                let step = self.run_state(st, sc, input, &mut assigned).await?;
                let out = match &step {
                    Step::Next(_, v) | Step::End(v) => v,
                };
                let text = to_json(out);
                if text.len() > MAX_PAYLOAD_BYTES {
                    return Err(Fail::plain(
                        "States.DataLimitExceeded",
                        Some(format!(
                            "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                            st.name
                        )),
                    ));
                }
                if !matches!(st.kind, Kind::Fail { .. }) {
                    let mut fields = Vec::with_capacity(4);
                    if let Some(a) = assigned {
                        fields.push(("assignedVariables", Value::Object(a)));
                        fields.push(("assignedVariablesDetails", json!({"truncated": false})));
                    }
                    fields.push(("name", Value::String(st.name.clone())));
                    fields.push(("output", Value::String(text)));
                    self.event_fields(&st.exited_event, "stateExitedEventDetails", fields, true);
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

    fn next_step(st: &State, v: Value) -> Step {
        match &st.next {
            Some(n) if !st.end => Step::Next(n.clone(), v),
            _ => Step::End(v),
        }
    }

    /// Emits the `EvaluationFailed` event for JSONata errors.
    fn note_failure(&mut self, f: &Fail, sc: &StateCtx<'_>) {
        if let Some(loc) = &f.eval_location {
            let mut t = Thread {
                source: if matches!(sc.state.kind, Kind::Wait { .. }) {
                    sc.entered_id
                } else {
                    sc.entered_prev
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
                        json!({"cause": f.cause, "error": f.error, "state": sc.state.name})
                    } else {
                        json!({"cause": f.cause, "error": f.error, "location": loc, "state": sc.state.name})
                    },
                )),
                true,
            );
            self.thread.source = id;
        }
    }

    async fn run_state(
        &mut self,
        st: &State,
        mut sc: StateCtx<'_>,
        raw: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let r = match &st.kind {
            Kind::Pass { result } => self.pass(st, &sc, raw, result.as_ref(), assigned),
            Kind::Succeed => {
                if jp {
                    let v = self.input_path(st, &sc, &raw)?;
                    self.output_path(st, &sc, v).map(Step::End)
                } else {
                    let states = self.states_var(&sc, &raw, &[]);
                    match &st.output {
                        Some(o) => self.jt(o, &sc, &states, "Output").map(Step::End),
                        None => Ok(Step::End(raw)),
                    }
                }
            }
            Kind::Fail { error, cause } => Err(self.fail_state(st, &sc, &raw, error, cause)),
            Kind::Choice { choices, default } => {
                self.choice(st, &sc, raw, choices, default.as_deref(), assigned)
            }
            Kind::Wait { seconds, timestamp } => {
                self.wait(st, &sc, raw, seconds, timestamp, assigned).await
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
                sc.retry_count = Some(0);
                self.execution_state(st, &mut sc, raw, assigned).await
            }
        };
        if let Err(f) = &r {
            self.note_failure(f, &sc);
        }
        r
    }

    fn pass(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: Value,
        result: Option<&Value>,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, Fail> {
        if st.ql == QueryLanguage::Jsonata {
            let states = self.states_var(sc, &raw, &[]);
            let a = st
                .assign
                .as_ref()
                .map(|a| self.assign(a, sc, &raw, &states))
                .transpose()?;
            let out = match &st.output {
                Some(o) => self.jt(o, sc, &states, "Output")?,
                None => raw,
            };
            if let Some(a) = a {
                self.apply_assign(a, assigned);
            }
            return Ok(Self::next_step(st, out));
        }
        let input = self.input_path(st, sc, &raw)?;
        let mut res = match &st.parameters {
            Some(p) => self.template(p, sc, &input, "Parameters")?,
            None => input,
        };
        if let Some(r) = result {
            res = r.clone();
        }
        let a = st
            .assign
            .as_ref()
            .map(|a| self.assign(a, sc, &res, &Value::Null))
            .transpose()?;
        let v = self.result_path(&st.result_path, sc, raw, res)?;
        let v = self.output_path(st, sc, v)?;
        // New values become visible only after the state, so OutputPath still sees the old.
        if let Some(a) = a {
            self.apply_assign(a, assigned);
        }
        Ok(Self::next_step(st, v))
    }

    fn fail_state(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: &Value,
        error: &Option<Num>,
        cause: &Option<Num>,
    ) -> Fail {
        let states = self.states_var(sc, raw, &[]);
        let get = |this: &Self, n: &Option<Num>, field: &str| -> Result<Option<String>, Fail> {
            match n {
                None => Ok(None),
                Some(Num::Lit(Value::String(s))) => Ok(Some(s.clone())),
                Some(Num::Lit(v)) => Ok(Some(to_json(v))),
                Some(Num::Ref(t, _)) => {
                    let v = this.template(t, sc, raw, field)?;
                    Ok(Some(match v {
                        Value::String(s) => s,
                        other => to_json(&other),
                    }))
                }
                Some(Num::Expr(t)) => {
                    let v = this.jt(t, sc, &states, field)?;
                    Ok(Some(match v {
                        Value::String(s) => s,
                        other => to_json(&other),
                    }))
                }
            }
        };
        let error = match get(self, error, "ErrorPath") {
            Ok(e) => e,
            Err(f) => return f,
        };
        let cause = match get(self, cause, "CausePath") {
            Ok(c) => c,
            Err(f) => return f,
        };
        let _ = st;
        Fail {
            error: error.unwrap_or_default(),
            cause,
            eval_location: None,
            runtime: false,
            state_failed: None,
        }
        .normalize_empty()
    }

    fn choice(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: Value,
        choices: &[Choice],
        default: Option<&str>,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let input = if jp {
            self.input_path(st, sc, &raw)?
        } else {
            raw.clone()
        };
        let states = if jp {
            Value::Null
        } else {
            self.states_var(sc, &raw, &[])
        };
        for c in choices {
            if self.rule(&c.rule, sc, &input, &states)? {
                let a = match &c.assign {
                    Some(a) => Some(self.assign(a, sc, &input, &states)?),
                    None => None,
                };
                let out = match &c.output {
                    Some(o) => self.jt(o, sc, &states, "Output")?,
                    None if jp => self.output_path(st, sc, input)?,
                    None => raw,
                };
                if let Some(a) = a {
                    self.apply_assign(a, assigned);
                }
                return Ok(Step::Next(c.next.clone(), out));
            }
        }
        let Some(d) = default else {
            return Err(Fail::plain(
                "States.NoChoiceMatched",
                Some(format!("No Matches! at state '{}'", st.name)),
            ));
        };
        let a = st
            .assign
            .as_ref()
            .map(|a| self.assign(a, sc, &input, &states))
            .transpose()?;
        let out = match &st.output {
            Some(o) if !jp => self.jt(o, sc, &states, "Output")?,
            _ if jp => self.output_path(st, sc, input)?,
            _ => raw,
        };
        if let Some(a) = a {
            self.apply_assign(a, assigned);
        }
        Ok(Step::Next(d.to_string(), out))
    }

    fn rule(
        &self,
        r: &ChoiceRule,
        sc: &StateCtx<'_>,
        input: &Value,
        states: &Value,
    ) -> Result<bool, Fail> {
        Ok(match r {
            ChoiceRule::And(rs) => {
                for x in rs {
                    if !self.rule(x, sc, input, states)? {
                        return Ok(false);
                    }
                }
                true
            }
            ChoiceRule::Or(rs) => {
                for x in rs {
                    if self.rule(x, sc, input, states)? {
                        return Ok(true);
                    }
                }
                false
            }
            ChoiceRule::Not(x) => !self.rule(x, sc, input, states)?,
            ChoiceRule::Condition(t) => match self.jt(t, sc, states, "Condition")? {
                Value::Bool(b) => b,
                other => {
                    return Err(sc.query_error(
                        "Condition",
                        &format!(
                            "The Condition field evaluated to a non-boolean value: {}",
                            to_json(&other)
                        ),
                    ));
                }
            },
            ChoiceRule::Cmp {
                variable,
                variable_src,
                op,
                operand,
            } => {
                let var = self.template(variable, sc, input, "Variable").ok();
                if op == "IsPresent" {
                    return Ok(var.is_some() == (operand_bool(operand)));
                }
                let Some(v) = var else {
                    return Err(sc.runtime(&format!("Invalid path '{variable_src}': The choice state's condition path references an invalid value.")));
                };
                let rhs = match operand {
                    CmpOperand::Lit(x) => x.clone(),
                    CmpOperand::Path(t) => match self.template(t, sc, input, op) {
                        Ok(x) => x,
                        Err(_) => return Ok(false),
                    },
                };
                compare(op, &v, &rhs)
            }
        })
    }

    async fn wait(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: Value,
        seconds: &Option<Num>,
        timestamp: &Option<Num>,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let input = if jp {
            self.input_path(st, sc, &raw)?
        } else {
            raw.clone()
        };
        let states = if jp {
            Value::Null
        } else {
            self.states_var(sc, &raw, &[])
        };
        let now = self.now();
        let until = if let Some(s) = seconds {
            let (v, path_src) = match s {
                Num::Ref(t, src) => (
                    self.template(t, sc, &input, "SecondsPath").map_err(|_| {
                        sc.runtime(&format!(
                            "The SecondsPath parameter does not reference an input value: {src}"
                        ))
                    })?,
                    Some(src),
                ),
                other => (self.num_value(other, sc, &input, &states, "Seconds")?, None),
            };
            let secs = match (&v, path_src) {
                (Value::Number(n), Some(src)) => match n.as_i64() {
                    Some(x) if x < 0 => {
                        return Err(sc.runtime(&format!(
                            "The SecondsPath parameter references a negative value: {src} == {n}"
                        )));
                    }
                    Some(x) => x,
                    None => return Err(sc.runtime(&format!(
                        "The SecondsPath parameter cannot be parsed as a long value: {src} == {n}"
                    ))),
                },
                (_, Some(src)) => {
                    return Err(sc.runtime(&format!(
                        "The SecondsPath parameter cannot be parsed as a long value: {src} == {}",
                        to_json(&v)
                    )));
                }
                (Value::Number(n), None) => match n.as_i64() {
                    Some(x) if x >= 0 => x,
                    _ => {
                        return Err(sc.query_error(
                            "Seconds",
                            &format!("The Seconds field must be a non-negative integer: {n}"),
                        ));
                    }
                },
                (other, None) => {
                    return Err(sc.query_error(
                        "Seconds",
                        &format!(
                            "The Seconds field must be a non-negative integer: {}",
                            to_json(other)
                        ),
                    ));
                }
            };
            now + secs * 1000
        } else if let Some(t) = timestamp {
            match t {
                Num::Ref(tm, src) => {
                    let v = self.template(tm, sc, &input, "TimestampPath").map_err(|_| sc.runtime(&format!("The TimestampPath parameter does not reference an input value: {src}")))?;
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| to_json(&v));
                    parse_iso(&s).ok_or_else(|| sc.runtime(&format!("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {src} == {s}")))?
                }
                other => {
                    let v = self.num_value(other, sc, &input, &states, "Timestamp")?;
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| to_json(&v));
                    match parse_iso(&s) {
                        Some(ms) => ms,
                        None if jp => return Err(sc.runtime(&format!("The Timestamp parameter is not a valid ISO-8601 extended offset date-time format string: {s}"))),
                        None => return Err(sc.query_error("Timestamp", &format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {s}"))),
                    }
                }
            }
        } else {
            now
        };
        let a = st
            .assign
            .as_ref()
            .map(|a| self.assign(a, sc, &input, &states))
            .transpose()?;
        let out = if jp {
            self.output_path(st, sc, input)?
        } else {
            match &st.output {
                Some(o) => self.jt(o, sc, &states, "Output")?,
                None => raw,
            }
        };
        if until > now {
            self.ex
                .svc
                .clock
                .sleep(Duration::from_millis((until - now) as u64))
                .await;
        }
        if let Some(a) = a {
            self.apply_assign(a, assigned);
        }
        Ok(Self::next_step(st, out))
    }

    /// Task, Parallel and Map: the body with Retry and Catch around it.
    async fn execution_state(
        &mut self,
        st: &State,
        sc: &mut StateCtx<'_>,
        raw: Value,
        assigned: &mut Option<Map<String, Value>>,
    ) -> Result<Step, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let mut counters = vec![0u64; st.retry.len()];
        loop {
            let body = self.body(st, sc, &raw).await;
            let err = match body {
                Ok(result) => {
                    // Result processing.
                    if jp {
                        let a = st
                            .assign
                            .as_ref()
                            .map(|a| self.assign(a, sc, &result, &Value::Null))
                            .transpose()?;
                        let selected = match &st.result_selector {
                            Some(t) => self.template(t, sc, &result, "ResultSelector")?,
                            None => result,
                        };
                        let v = self.result_path(&st.result_path, sc, raw, selected)?;
                        let v = self.output_path(st, sc, v)?;
                        if let Some(a) = a {
                            self.apply_assign(a, assigned);
                        }
                        return Ok(Self::next_step(st, v));
                    }
                    let states = self.states_var(sc, &raw, &[("result", &result)]);
                    let a = st
                        .assign
                        .as_ref()
                        .map(|a| self.assign(a, sc, &raw, &states))
                        .transpose()?;
                    let out = match &st.output {
                        Some(o) => self.jt(o, sc, &states, "Output")?,
                        None => result,
                    };
                    if let Some(a) = a {
                        self.apply_assign(a, assigned);
                    }
                    return Ok(Self::next_step(st, out));
                }
                Err(e) => e,
            };
            if err.runtime && err.error == "States.Runtime" {
                return Err(err);
            }
            if let Some(i) = st
                .retry
                .iter()
                .position(|r| matches_error(&r.error_equals, &err.error))
            {
                let r = &st.retry[i];
                if counters[i] < r.max_attempts {
                    let mut delay = r.interval_seconds * r.backoff_rate.powi(counters[i] as i32);
                    if let Some(m) = r.max_delay_seconds {
                        delay = delay.min(m);
                    }
                    if r.jitter_full {
                        delay *= self.ex.svc.random.next_f64();
                    }
                    counters[i] += 1;
                    sc.retry_count = Some(sc.retry_count.unwrap_or(0) + 1);
                    self.ex
                        .svc
                        .clock
                        .sleep(Duration::from_millis((delay * 1000.0) as u64))
                        .await;
                    continue;
                }
            }
            if let Some(ev) = err.state_failed {
                self.event(ev, None, true);
            }
            let err = Fail {
                state_failed: None,
                ..err
            };
            if let Some(c) = st
                .catch
                .iter()
                .find(|c| matches_error(&c.error_equals, &err.error))
            {
                let error_output =
                    json!({"Error": err.error, "Cause": err.cause.clone().unwrap_or_default()});
                if jp {
                    let a = match &c.assign {
                        Some(a) => Some(self.assign(a, sc, &error_output, &Value::Null)?),
                        None => None,
                    };
                    let v = self.result_path(&c.result_path, sc, raw, error_output)?;
                    if let Some(a) = a {
                        self.apply_assign(a, assigned);
                    }
                    return Ok(Step::Next(c.next.clone(), v));
                }
                let states = self.states_var(sc, &raw, &[("errorOutput", &error_output)]);
                let a = match &c.assign {
                    Some(a) => Some(self.assign(a, sc, &raw, &states)?),
                    None => None,
                };
                let out = match &c.output {
                    Some(o) => self.jt(o, sc, &states, "Output")?,
                    None => error_output,
                };
                if let Some(a) = a {
                    self.apply_assign(a, assigned);
                }
                return Ok(Step::Next(c.next.clone(), out));
            }
            return Err(err);
        }
    }

    async fn body(&mut self, st: &State, sc: &StateCtx<'_>, raw: &Value) -> Result<Value, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        match &st.kind {
            Kind::Task {
                resource,
                timeout,
                heartbeat,
            } => {
                // Callback integrations get a token in `$$.Task.Token`.
                let token = resource.ends_with(".waitForTaskToken").then(|| {
                    intrinsics::uuid_v4(
                        self.ex.svc.random.next_u64(),
                        self.ex.svc.random.next_u64(),
                    )
                });
                let tsc = StateCtx {
                    state: sc.state,
                    entered_id: sc.entered_id,
                    entered_prev: sc.entered_prev,
                    entered_time: sc.entered_time,
                    retry_count: sc.retry_count,
                    map_item: sc.map_item.clone(),
                    task_token: token,
                };
                let sc = &tsc;
                let (params, input) = if jp {
                    let input = self.input_path(st, sc, raw)?;
                    let p = match &st.parameters {
                        Some(p) => self.template(p, sc, &input, "Parameters")?,
                        None => input.clone(),
                    };
                    (p, input)
                } else {
                    let states = self.states_var(sc, raw, &[]);
                    let p = match &st.arguments {
                        Some(a) => self.jt(a, sc, &states, "Arguments")?,
                        None => raw.clone(),
                    };
                    (p, raw.clone())
                };
                let states = if jp {
                    Value::Null
                } else {
                    self.states_var(sc, raw, &[])
                };
                let secs =
                    |this: &Self, n: &Option<Num>, field: &str| -> Result<Option<u64>, Fail> {
                        match n {
                            None => Ok(None),
                            Some(n) => {
                                let v = this.num_value(n, sc, &input, &states, field)?;
                                match v.as_u64() {
                                    Some(x) if x > 0 => Ok(Some(x)),
                                    _ => Err(sc.runtime(&format!(
                                        "The {field} field must be a positive integer: {}",
                                        to_json(&v)
                                    ))),
                                }
                            }
                        }
                    };
                let timeout = secs(self, timeout, "TimeoutSeconds")?;
                let heartbeat = secs(self, heartbeat, "HeartbeatSeconds")?;
                self.task(resource, params, sc, timeout, heartbeat).await
            }
            Kind::Parallel { branches } => self.parallel(st, sc, raw, branches).await,
            Kind::Map(spec) => self.map(st, sc, raw, spec).await,
            _ => Err(Fail::plain(
                "States.Runtime",
                Some("not an execution state".into()),
            )),
        }
    }

    async fn task(
        &mut self,
        resource: &str,
        params: Value,
        sc: &StateCtx<'_>,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
    ) -> Result<Value, Fail> {
        let style = self.ex.svc.invoker.style(resource);
        let (rtype, rname) = service_parts(resource);
        let region = self.ex.cfg.region.clone();
        let params_text = to_json(&params);
        match style {
            TaskStyle::Service => {
                let mut d = json!({"resourceType": rtype, "resource": rname, "region": region, "parameters": params_text});
                if let Some(t) = timeout {
                    d["timeoutInSeconds"] = json!(t);
                }
                if let Some(h) = heartbeat {
                    d["heartbeatInSeconds"] = json!(h);
                }
                self.event(
                    "TaskScheduled",
                    Some(("taskScheduledEventDetails", d)),
                    true,
                );
                self.event(
                    "TaskStarted",
                    Some((
                        "taskStartedEventDetails",
                        json!({"resourceType": rtype, "resource": rname}),
                    )),
                    true,
                );
            }
            TaskStyle::Lambda => {
                let mut d = json!({"resource": resource, "input": params_text, "inputDetails": {"truncated": false}});
                if let Some(t) = timeout {
                    d["timeoutInSeconds"] = json!(t);
                }
                self.event(
                    "LambdaFunctionScheduled",
                    Some(("lambdaFunctionScheduledEventDetails", d)),
                    true,
                );
                self.event("LambdaFunctionStarted", None, true);
            }
        }
        let hb = Heartbeat::new(self.now());
        // TaskSubmitted links to TaskStarted, and the task's end to TaskSubmitted.
        let submitted_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let submitted = if style == TaskStyle::Service {
            let (history, clock, id) = (
                self.history.clone(),
                self.ex.svc.clock.clone(),
                submitted_id.clone(),
            );
            let (from, rtype, rname) = (self.thread.source, rtype.to_string(), rname.to_string());
            Submitted::new(move |output| {
                if id.load(std::sync::atomic::Ordering::SeqCst) != 0 {
                    return;
                }
                let mut thread = Thread { source: from };
                let details = json!({"resourceType": rtype, "resource": rname, "output": to_json(&output), "outputDetails": {"truncated": false}});
                let new = history.add(
                    &mut thread,
                    clock.now_millis(),
                    "TaskSubmitted",
                    Some(("taskSubmittedEventDetails", details)),
                    true,
                );
                id.store(new, std::sync::atomic::Ordering::SeqCst);
            })
        } else {
            Submitted::default()
        };
        let req = TaskRequest {
            submitted,
            resource: resource.to_string(),
            parameters: params,
            context: self.context(sc),
            timeout_seconds: timeout,
            heartbeat_seconds: heartbeat,
            heartbeat: hb.clone(),
            task_token: sc.task_token.clone(),
        };
        let call = self.ex.svc.invoker.invoke(req);
        let clock = self.ex.svc.clock.clone();
        let timer = {
            let clock = clock.clone();
            async move {
                let start = clock.now_millis();
                loop {
                    let t_deadline = timeout.map(|t| start + t as i64 * 1000);
                    let h_deadline = heartbeat.map(|h| hb.last() + h as i64 * 1000);
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
                        .sleep(Duration::from_millis((next - now) as u64))
                        .await;
                }
            }
        };
        let raced = race(call, timer).await;
        let submitted_at = submitted_id.load(std::sync::atomic::Ordering::SeqCst);
        if submitted_at != 0 {
            self.thread.source = submitted_at;
        }
        let res = match raced {
            Race::Left(r) => r,
            Race::Right(kind) => {
                let err = TaskError {
                    error: kind.to_string(),
                    cause: None,
                };
                let (ty, key) = match style {
                    TaskStyle::Service => ("TaskTimedOut", "taskTimedOutEventDetails"),
                    TaskStyle::Lambda => (
                        "LambdaFunctionTimedOut",
                        "lambdaFunctionTimedOutEventDetails",
                    ),
                };
                let mut d = if style == TaskStyle::Service {
                    json!({"resourceType": rtype, "resource": rname})
                } else {
                    json!({})
                };
                d["error"] = json!(err.error);
                self.event(ty, Some((key, d)), true);
                return Err(Fail::plain(&err.error, None));
            }
        };
        match res {
            Ok(out) => {
                let text = to_json(&out);
                if text.len() > MAX_PAYLOAD_BYTES {
                    return Err(Fail::plain(
                        "States.DataLimitExceeded",
                        Some(format!(
                            "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                            sc.state.name
                        )),
                    ));
                }
                match style {
                    TaskStyle::Service => self.event("TaskSucceeded", Some(("taskSucceededEventDetails", json!({"resourceType": rtype, "resource": rname, "output": text, "outputDetails": {"truncated": false}}))), true),
                    TaskStyle::Lambda => self.event("LambdaFunctionSucceeded", Some(("lambdaFunctionSucceededEventDetails", json!({"output": text, "outputDetails": {"truncated": false}}))), true),
                };
                Ok(out)
            }
            Err(e) => {
                let mut d = match style {
                    TaskStyle::Service => json!({"resourceType": rtype, "resource": rname}),
                    TaskStyle::Lambda => json!({}),
                };
                if let Some(c) = &e.cause {
                    d["cause"] = json!(c);
                }
                d["error"] = json!(e.error);
                match style {
                    TaskStyle::Service => {
                        self.event("TaskFailed", Some(("taskFailedEventDetails", d)), true)
                    }
                    TaskStyle::Lambda => self.event(
                        "LambdaFunctionFailed",
                        Some(("lambdaFunctionFailedEventDetails", d)),
                        true,
                    ),
                };
                Err(Fail::plain(&e.error, e.cause))
            }
        }
    }

    async fn parallel(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: &Value,
        branches: &[StateMachine],
    ) -> Result<Value, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let input = if jp {
            let i = self.input_path(st, sc, raw)?;
            match &st.parameters {
                Some(p) => self.template(p, sc, &i, "Parameters")?,
                None => i,
            }
        } else {
            let states = self.states_var(sc, raw, &[]);
            match &st.arguments {
                Some(a) => self.jt(a, sc, &states, "Arguments")?,
                None => raw.clone(),
            }
        };
        self.event("ParallelStateStarted", None, true);
        let vars = self.vars.child();
        let start = self.thread;
        let ex = self.ex;
        let mut futs: FuturesUnordered<Branch<'_>> = FuturesUnordered::new();
        for (i, b) in branches.iter().enumerate() {
            let history = self.history.clone();
            let input = input.clone();
            let vars = vars.clone();
            futs.push(Box::pin(async move {
                let mut f = Flow {
                    ex,
                    history,
                    thread: start,
                    vars,
                };
                let r = f.run_machine(b, input).await;
                (i, r, f.thread)
            }) as BoxFuture<'_, _>);
        }
        let mut results = vec![Value::Null; branches.len()];
        let mut failure = None;
        while let Some((i, r, th)) = futs.next().await {
            self.thread.source = self.thread.source.max(th.source);
            match r {
                Ok(v) => results[i] = v,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        drop(futs);
        if let Some(f) = failure {
            return Err(Fail {
                eval_location: None,
                runtime: false,
                state_failed: Some("ParallelStateFailed"),
                ..f
            });
        }
        self.event("ParallelStateSucceeded", None, false);
        Ok(Value::Array(results))
    }

    async fn map(
        &mut self,
        st: &State,
        sc: &StateCtx<'_>,
        raw: &Value,
        spec: &MapSpec,
    ) -> Result<Value, Fail> {
        let jp = st.ql == QueryLanguage::JsonPath;
        let states = if jp {
            Value::Null
        } else {
            self.states_var(sc, raw, &[])
        };
        let input = if jp {
            self.input_path(st, sc, raw)?
        } else {
            raw.clone()
        };
        let items_v = if jp {
            match &spec.items_path {
                Some(PathOrNull::Path(p)) => self.invalid_path(p, sc, &input)?,
                Some(PathOrNull::Var(n, p, _)) => self
                    .select_var(n, p.as_ref(), "ItemsPath")
                    .map_err(|m| sc.runtime(&m))?,
                Some(PathOrNull::Null) => json!({}),
                None => input.clone(),
            }
        } else {
            match &spec.items {
                Some(t) => {
                    let src = match t {
                        JTemplate::Expr(_, s) => s.clone(),
                        _ => String::new(),
                    };
                    match self.jt_raw(t, sc, &states, "Items")? {
                        JValue::Func(_) => return Err(self.map_eval_fail(sc, &format!("The JSONata expression '{src}' specified for the field 'Items' returned an unsupported result type."))),
                        JValue::Value(Value::Array(a)) => Value::Array(a),
                        JValue::Seq(s) => Value::Array(s),
                        JValue::Value(v) => {
                            return Err(self.map_eval_fail(sc, &format!("The JSONata expression '{src}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}", type_name(&v), to_json(&v))));
                        }
                        JValue::Undefined => Value::Null,
                    }
                }
                None => input.clone(),
            }
        };
        let items = match items_v {
            Value::Array(a) => a,
            other => {
                if jp {
                    return Err(sc.runtime(&format!(
                        "Map state input must be an array but was: {}",
                        to_json(&other)
                    )));
                }
                return Err(self.map_eval_fail(
                    sc,
                    &format!(
                        "Map state input must be an array but was: {}",
                        to_json(&other)
                    ),
                ));
            }
        };
        let max_conc = match &spec.max_concurrency {
            None => 0,
            Some(n) => {
                let v = self.num_value(n, sc, &input, &states, "MaxConcurrencyPath")?;
                let v = numeric_string(v);
                match (&v, n) {
                    (Value::Number(x), _) if x.as_u64().is_some() => x.as_u64().unwrap_or(0) as usize,
                    (_, Num::Ref(_, src)) => return Err(sc.runtime(&format!("The MaxConcurrencyPath field refers to value \"{}\" which is not a valid integer: {src}", plain(&v)))),
                    _ => return Err(sc.runtime(&format!("The MaxConcurrency field must be a non-negative integer: {}", to_json(&v)))),
                }
            }
        };
        self.event(
            "MapStateStarted",
            Some((
                "mapStateStartedEventDetails",
                json!({"length": items.len()}),
            )),
            true,
        );
        let tolerated_count = match &spec.tolerated_count {
            None => None,
            Some(n) => {
                let v = numeric_string(self.num_value(
                    n,
                    sc,
                    &input,
                    &states,
                    "ToleratedFailureCountPath",
                )?);
                match (&v, n) {
                    (Value::Number(x), _) if x.as_i64().is_some_and(|c| c < 0) => return Err(sc.runtime("ToleratedFailureCount cannot be negative.")),
                    (Value::Number(x), _) if x.as_i64().is_some() => x.as_i64().map(|c| c as usize),
                    (_, Num::Ref(_, src)) => return Err(sc.runtime(&format!("The ToleratedFailureCountPath field refers to value \"{}\" which is not a valid integer: {src}", plain(&v)))),
                    _ => return Err(sc.runtime("ToleratedFailureCount must be a non-negative integer.")),
                }
            }
        };
        let tolerated_pct = match &spec.tolerated_percentage {
            None => None,
            Some(n) => {
                let v = numeric_string(self.num_value(
                    n,
                    sc,
                    &input,
                    &states,
                    "ToleratedFailurePercentagePath",
                )?);
                match (&v, n) {
                    (Value::Number(x), _) => {
                        let p = x.as_f64().unwrap_or(-1.0);
                        if !(0.0..=100.0).contains(&p) {
                            return Err(sc.runtime("ToleratedFailurePercentage must be between 0 and 100."));
                        }
                        Some(p)
                    }
                    (_, Num::Ref(_, src)) => return Err(sc.runtime(&format!("The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {src}", plain(&v)))),
                    _ => return Err(sc.runtime("ToleratedFailurePercentage must be between 0 and 100.")),
                }
            }
        };
        // Item selection happens per item, with `$$.Map.Item` bound.
        let mut inputs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let isc = StateCtx {
                state: sc.state,
                entered_id: sc.entered_id,
                entered_prev: sc.entered_prev,
                entered_time: sc.entered_time,
                retry_count: sc.retry_count,
                map_item: Some((i, item.clone())),
                task_token: None,
            };
            let v = if let Some(t) = &spec.item_selector {
                self.template(t, &isc, &input, "ItemSelector")?
            } else if let Some(t) = &spec.item_selector_j {
                let st_j = self.states_var(&isc, raw, &[]);
                self.jt(t, &isc, &st_j, "ItemSelector")?
            } else {
                item.clone()
            };
            inputs.push(v);
        }
        if let Some(b) = &spec.item_batcher {
            inputs = self.batch(b, sc, &input, inputs)?;
        }
        let n = inputs.len();
        let limit = if max_conc == 0 { n.max(1) } else { max_conc };
        let vars = self.vars.child();
        let ex = self.ex;
        let name = st.name.clone();
        let distributed = spec.distributed;
        if distributed {
            let arn = format!(
                "{}/{}:{}",
                self.ex
                    .cfg
                    .state_machine_arn
                    .replace(":stateMachine:", ":mapRun:"),
                spec.label.clone().unwrap_or_else(|| intrinsics::uuid_v4(
                    self.ex.svc.random.next_u64(),
                    self.ex.svc.random.next_u64()
                )),
                intrinsics::uuid_v4(self.ex.svc.random.next_u64(), self.ex.svc.random.next_u64())
            );
            self.event(
                "MapRunStarted",
                Some(("mapRunStartedEventDetails", json!({"mapRunArn": arn}))),
                true,
            );
        }
        let base = self.thread;
        let mut results: Vec<Option<Value>> = vec![None; n];
        let mut failures = 0usize;
        let mut first_failure: Option<Fail> = None;
        let mut pending = inputs.into_iter().enumerate();
        let mut futs: FuturesUnordered<Branch<'_>> = FuturesUnordered::new();
        // The iteration thread continues from where the previous one ended when running one
        // at a time, as AWS links them.
        let mut cursor = base;
        let parent_history = self.history.clone();
        let launch = |i: usize, v: Value, start: Thread| {
            let parent_history = parent_history.clone();
            let vars = vars.clone();
            let name = name.clone();
            Box::pin(async move {
                let history = if distributed {
                    History::new(None)
                } else {
                    parent_history.clone()
                };
                let mut f = Flow {
                    ex,
                    history,
                    thread: start,
                    vars,
                };
                if !distributed {
                    f.event_fields(
                        "MapIterationStarted",
                        "mapIterationStartedEventDetails",
                        vec![
                            ("index", Value::from(i)),
                            ("name", Value::String(name.to_string())),
                        ],
                        true,
                    );
                }
                let r = f.run_machine(f_machine(spec), v).await;
                if !distributed {
                    let (ty, key) = if r.is_ok() {
                        ("MapIterationSucceeded", "mapIterationSucceededEventDetails")
                    } else {
                        ("MapIterationFailed", "mapIterationFailedEventDetails")
                    };
                    let fields = vec![
                        ("index", Value::from(i)),
                        ("name", Value::String(name.to_string())),
                    ];
                    f.event_fields(ty, key, fields, false);
                }
                (i, r, f.thread)
            }) as BoxFuture<'_, _>
        };
        for _ in 0..limit {
            if let Some((i, v)) = pending.next() {
                futs.push(launch(i, v, cursor));
            }
        }
        let tolerated = |failures: usize| -> bool {
            tolerated_count.is_some_and(|c| failures <= c)
                || tolerated_pct
                    .is_some_and(|p| n > 0 && (failures as f64) * 100.0 / (n as f64) <= p)
        };
        while let Some((i, r, th)) = futs.next().await {
            cursor.source = cursor.source.max(th.source);
            self.thread.source = self.thread.source.max(th.source);
            match r {
                Ok(v) => results[i] = Some(v),
                Err(f) => {
                    failures += 1;
                    if first_failure.is_none() {
                        first_failure = Some(f);
                    }
                    if !tolerated(failures) {
                        break;
                    }
                }
            }
            if let Some((i, v)) = pending.next() {
                futs.push(launch(i, v, cursor));
            }
        }
        drop(futs);
        if failures > 0 && !tolerated(failures) {
            if distributed {
                self.event("MapRunFailed", None, true);
            }
            let f = first_failure.unwrap_or_else(|| Fail::plain("States.Runtime", None));
            let f = if tolerated_count.is_some() || tolerated_pct.is_some() {
                Fail::plain(
                    "States.ExceedToleratedFailureThreshold",
                    Some("The specified tolerated failure threshold was exceeded".into()),
                )
            } else {
                f
            };
            return Err(Fail {
                eval_location: None,
                runtime: false,
                state_failed: Some("MapStateFailed"),
                ..f
            });
        }
        if distributed {
            self.event("MapRunSucceeded", None, true);
            let run_started = base.source;
            self.event("MapStateSucceeded", None, false);
            if !self.ex.cfg.legacy_map_run_links {
                self.thread.source = run_started;
            }
        } else {
            if n > 0 {
                self.thread.source = self.history.last_id();
            }
            self.event("MapStateSucceeded", None, false);
        }
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }

    /// `ItemBatcher`: groups the selected items into `{"Items": [...], ...BatchInput}`.
    fn batch(
        &self,
        b: &ItemBatcher,
        sc: &StateCtx<'_>,
        input: &Value,
        items: Vec<Value>,
    ) -> Result<Vec<Value>, Fail> {
        let base = match &b.batch_input {
            Some(t) => match self.template(t, sc, input, "BatchInput")? {
                Value::Object(m) => m,
                other => {
                    return Err(sc.runtime(&format!(
                        "The BatchInput field must be an object but was: {}",
                        to_json(&other)
                    )));
                }
            },
            None => Map::new(),
        };
        let size = b.max_items_per_batch.unwrap_or(items.len() as u64).max(1) as usize;
        Ok(items
            .chunks(size)
            .map(|c| {
                let mut m = base.clone();
                m.insert("Items".into(), Value::Array(c.to_vec()));
                Value::Object(m)
            })
            .collect())
    }

    fn map_eval_fail(&mut self, sc: &StateCtx<'_>, msg: &str) -> Fail {
        let loc = if msg.starts_with("Map state input") {
            ""
        } else {
            "Items"
        };
        let f = sc.query_error(loc, msg);
        self.note_failure(&f, sc);
        self.event("MapStateFailed", None, true);
        Fail {
            eval_location: None,
            ..f
        }
    }
}

fn f_machine(spec: &MapSpec) -> &StateMachine {
    &spec.processor
}

impl Fail {
    fn normalize_empty(self) -> Fail {
        self
    }
}

/// Path-given counts may be numeric strings (`"1"`).
fn numeric_string(v: Value) -> Value {
    match &v {
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| s.trim().parse::<f64>().map(|f| json!(f)))
            .unwrap_or(v),
        _ => v,
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => to_json(other),
    }
}

fn operand_bool(o: &CmpOperand) -> bool {
    matches!(o, CmpOperand::Lit(Value::Bool(true)))
}

/// `States.ALL` matches everything but `States.Runtime` and `States.DataLimitExceeded`;
/// `States.TaskFailed` also excludes `States.Timeout`.
pub fn matches_error(names: &[String], error: &str) -> bool {
    names.iter().any(|n| match n.as_str() {
        "States.ALL" => !matches!(error, "States.Runtime" | "States.DataLimitExceeded"),
        "States.TaskFailed" => !matches!(
            error,
            "States.Runtime"
                | "States.DataLimitExceeded"
                | "States.Timeout"
                | "States.HeartbeatTimeout"
        ),
        other => other == error,
    })
}

fn service_parts(resource: &str) -> (String, String) {
    // arn:aws:states:::lambda:invoke -> ("lambda", "invoke")
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

fn compare(op: &str, v: &Value, rhs: &Value) -> bool {
    use std::cmp::Ordering::*;
    let base = op.trim_end_matches("Path");
    match base {
        "IsNull" => v.is_null() == (rhs == &Value::Bool(true)),
        "IsNumeric" => v.is_number() == (rhs == &Value::Bool(true)),
        "IsString" => v.is_string() == (rhs == &Value::Bool(true)),
        "IsBoolean" => v.is_boolean() == (rhs == &Value::Bool(true)),
        "IsTimestamp" => v.as_str().and_then(parse_iso).is_some() == (rhs == &Value::Bool(true)),
        "BooleanEquals" => v.is_boolean() && v == rhs,
        "StringMatches" => match (v.as_str(), rhs.as_str()) {
            (Some(s), Some(p)) => glob_match(p, s),
            _ => false,
        },
        _ => {
            let ord = if base.starts_with("Numeric") {
                match (v.as_f64(), rhs.as_f64()) {
                    (Some(a), Some(b)) if v.is_number() && rhs.is_number() => a.partial_cmp(&b),
                    _ => None,
                }
            } else if base.starts_with("String") {
                match (v.as_str(), rhs.as_str()) {
                    (Some(a), Some(b)) => Some(a.cmp(b)),
                    _ => None,
                }
            } else if base.starts_with("Timestamp") {
                match (
                    v.as_str().and_then(parse_iso),
                    rhs.as_str().and_then(parse_iso),
                ) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                }
            } else {
                None
            };
            let Some(ord) = ord else { return false };
            match base
                .trim_start_matches("Numeric")
                .trim_start_matches("String")
                .trim_start_matches("Timestamp")
            {
                "Equals" => ord == Equal,
                "LessThan" => ord == Less,
                "LessThanEquals" => ord != Greater,
                "GreaterThan" => ord == Greater,
                "GreaterThanEquals" => ord != Less,
                _ => false,
            }
        }
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` escape.
fn glob_match(pattern: &str, s: &str) -> bool {
    let mut toks: Vec<Option<char>> = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => toks.push(it.next()),
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let (mut p, mut i, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while i < s.len() {
        if p < toks.len() && toks[p].is_some_and(|c| c == s[i]) {
            p += 1;
            i += 1;
        } else if p < toks.len() && toks[p].is_none() {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p].is_none() {
        p += 1;
    }
    p == toks.len()
}

/// The default `Pin` import is used by the boxed futures above.
#[allow(dead_code)]
type _Unused = Pin<Box<()>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("*.log", "a.log"));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("a\\*", "a*"));
    }

    #[test]
    fn error_matching() {
        let all = vec!["States.ALL".to_string()];
        assert!(matches_error(&all, "Custom"));
        assert!(!matches_error(&all, "States.Runtime"));
        let tf = vec!["States.TaskFailed".to_string()];
        assert!(matches_error(&tf, "Lambda.Unknown"));
        assert!(!matches_error(&tf, "States.Timeout"));
    }
}
