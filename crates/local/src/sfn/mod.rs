//! Step Functions: state machines and executions in memory, run by the `leasehold-asl`
//! interpreter in real time, behind the AWS JSON 1.0 API (`X-Amz-Target: AWSStepFunctions.*`)
//! that the `aws` CLI and the SDKs speak (`api`: one function per operation).
//!
//! This module depends on no other service of the stack. Its two outward connections are
//! ports it defines itself:
//! - [`Tasks`]: what runs Task states, given when the service is built. The invoker usually
//!   starts child executions, so it needs a handle back to the service; [`StepFunctions::with_tasks`]
//!   builds both at once (`Arc::new_cyclic`) and hands the invoker a `Weak` handle, so the
//!   service owns its invoker and the invoker never keeps the service alive.
//! - [`StatusListener`]: who hears about execution status changes (EventBridge rules). A
//!   listener subscribes with [`StepFunctions::subscribe`] and holds the service's handle
//!   itself; the service only knows the trait, and calls listeners synchronously, in order.
//!
//! `callbacks` holds the task tokens of callback tasks, which the invoker registers and the
//! SendTask* actions complete.

pub mod activities;
mod api;
pub mod callbacks;
mod map_runs;
pub mod mocks;
mod redrive;
mod test_mock;
mod test_state;

pub use crate::error::ApiError;
use crate::rng::Rng;
pub use api::dispatch;
pub use callbacks::Callbacks;
use leasehold_asl::clock::{BoxFuture, Clock};
use leasehold_asl::definition::StateMachine as Definition;
use leasehold_asl::history::{Details, HistoryEvent, HistoryObserver};
use leasehold_asl::invoker::TaskInvoker;
use leasehold_asl::map_run::MapRunReport;
use leasehold_asl::validate::{Severity, load_with_diagnostics};
use leasehold_asl::{AbortHandle, ExecutionConfig, Services, execute};
pub use mocks::MockConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info};

/// Step Functions' input and output limit.
const MAX_PAYLOAD: usize = 256 * 1024;

/// How many finished executions of each state machine are kept (with their histories) unless
/// the stack is told otherwise; older finished ones are forgotten, as AWS forgets executions
/// after 90 days. Running executions are always kept.
pub const DEFAULT_KEEP_EXECUTIONS: usize = 1000;

/// Time for the interpreter, on the tokio runtime: real time, or with a time scale below 1 a
/// faster virtual time (since `origin_ms`), in which Wait states, Retry intervals and
/// timeouts pass `1 / scale` times as fast and history timestamps keep the spacing AWS would
/// record.
pub struct TokioClock {
    pub scale: f64,
    pub origin_ms: i64,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            scale: 1.0,
            origin_ms: 0,
        }
    }
}

impl Clock for TokioClock {
    fn now_millis(&self) -> i64 {
        let real = crate::lambda::epoch_ms() as i64;
        if self.scale == 1.0 {
            return real;
        }
        self.origin_ms + ((real - self.origin_ms) as f64 / self.scale) as i64
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d.mul_f64(self.scale)))
    }
}

pub struct Machine {
    pub arn: String,
    pub name: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    pub definition: String,
    pub parsed: Arc<Definition>,
    pub role_arn: String,
    pub created_ms: i64,
    pub updated_ms: Mutex<Option<i64>>,
}

#[derive(Debug, Clone)]
struct ExecState {
    status: &'static str,
    stop_ms: Option<i64>,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    /// How often RedriveExecution restarted it, and when last.
    redrive_count: u32,
    redrive_ms: Option<i64>,
}

pub struct Execution {
    pub arn: String,
    pub name: String,
    pub machine_arn: String,
    pub machine_name: String,
    pub express: bool,
    pub input: String,
    pub start_ms: i64,
    state: Mutex<ExecState>,
    history: Mutex<Vec<HistoryEvent>>,
    /// Stops the current run (a redrive starts a new one).
    abort: Mutex<AbortHandle>,
    done: watch::Sender<bool>,
    /// What it runs: its machine's definition as it started, the invoker of its tasks (with
    /// its test case's mocks), and its configuration; a redrive runs them again.
    definition: Arc<Definition>,
    invoker: Arc<dyn TaskInvoker>,
    config: ExecutionConfig,
    /// Its Distributed Map runs, as they stand (DescribeMapRun), oldest first.
    map_runs: Mutex<Vec<MapRunReport>>,
}

struct Recorder(Weak<Execution>);

impl HistoryObserver for Recorder {
    fn on_event(&self, event: &HistoryEvent) {
        if let Some(execution) = self.0.upgrade() {
            execution
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event.clone());
        }
    }

    fn on_map_run(&self, run: &MapRunReport) {
        if let Some(execution) = self.0.upgrade() {
            execution.record_map_run(run);
        }
    }
}

/// A snapshot of an execution, as DescribeExecution reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub arn: String,
    pub name: String,
    pub machine_arn: String,
    pub status: &'static str,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Execution {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`, without copying the rest.
    pub fn status(&self) -> &'static str {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).status
    }

    pub fn describe(&self) -> Described {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Described {
            arn: self.arn.clone(),
            name: self.name.clone(),
            machine_arn: self.machine_arn.clone(),
            status: s.status,
            start_ms: self.start_ms,
            stop_ms: s.stop_ms,
            input: self.input.clone(),
            output: s.output,
            error: s.error,
            cause: s.cause,
        }
    }

    pub fn history(&self) -> Vec<HistoryEvent> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the execution has ended.
    pub async fn finished(&self) -> Described {
        let mut done = self.done.subscribe();
        while !*done.borrow_and_update() {
            if done.changed().await.is_err() {
                break;
            }
        }
        self.describe()
    }

    pub fn stop(&self, error: Option<String>, cause: Option<String>) {
        self.abort
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort(error, cause);
    }

    /// Ends the execution FAILED with `States.Runtime` when its run broke down (a panic in
    /// the interpreter or an invoker): an `ExecutionFailed` event closes its history.
    fn fail_internally(&self, why: &str, now: i64) -> &'static str {
        const ERROR: &str = "States.Runtime";
        let cause = format!("An internal error stopped the execution: {why}");
        {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let previous = history.last().map_or(0, |e| e.id);
            let id = history.len() as u64 + 1;
            history.push(HistoryEvent {
                id,
                previous_event_id: previous,
                timestamp_millis: now,
                event_type: "ExecutionFailed".into(),
                details: Some(Details::from((
                    "executionFailedEventDetails",
                    json!({"error": ERROR, "cause": cause}),
                ))),
            });
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.status = "FAILED";
        state.stop_ms = Some(now);
        state.output = None;
        state.error = Some(ERROR.to_owned());
        state.cause = Some(cause);
        state.status
    }
}

/// What a task that did not finish left behind: its panic's message, if it had one.
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the run was cancelled".to_owned();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map_or_else(
            || "the run panicked".to_owned(),
            |m| format!("the run panicked: {m}"),
        )
}

/// Tells whether a Task resource can run here.
pub type ResourceCheck = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// What runs the Task states of every execution.
pub struct Tasks {
    pub invoker: Arc<dyn TaskInvoker>,
    /// Resources a Task may name; anything else is refused when a machine is checked.
    pub supports: ResourceCheck,
}

impl Tasks {
    /// No Task resource at all (machines of Pass, Choice, Wait, ... states only).
    pub fn none() -> Tasks {
        Tasks {
            invoker: Arc::new(leasehold_asl::invoker::NoTasks),
            supports: Box::new(|_| false),
        }
    }
}

/// Hears every status change of a STANDARD execution (started, then ended).
pub trait StatusListener: Send + Sync {
    fn status_changed(&self, execution: &Execution);
}

pub struct StepFunctions {
    pub region: String,
    pub account: String,
    machines: RwLock<BTreeMap<String, Arc<Machine>>>,
    executions: RwLock<HashMap<String, Arc<Execution>>>,
    /// Execution ARNs per machine, oldest first.
    by_machine: Mutex<HashMap<String, Vec<String>>>,
    /// Finished executions kept per machine ([`DEFAULT_KEEP_EXECUTIONS`]).
    keep_finished: AtomicUsize,
    tasks: Tasks,
    listeners: RwLock<Vec<Arc<dyn StatusListener>>>,
    random: Arc<Rng>,
    /// Task tokens of `.waitForTaskToken` tasks.
    pub callbacks: Callbacks,
    /// Mocked service integrations, for executions started with a test case.
    mocks: RwLock<Option<Arc<MockConfig>>>,
    /// Activities and the tasks waiting for their workers.
    pub activities: activities::Activities,
    /// The clock of every execution (real time unless the time is scaled).
    clock: RwLock<Arc<TokioClock>>,
}

fn valid_name(name: &str) -> bool {
    (1..=80).contains(&name.chars().count())
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c))
}

/// An entry of a registry by ARN: `InvalidArn` unless the ARN is a Step Functions one of the
/// right type (`right_type`), else `missing` (error type, noun) when there is no such entry.
fn registered<T>(
    arn: &str,
    right_type: bool,
    entry: impl FnOnce() -> Option<T>,
    missing: (&'static str, &str),
) -> Result<T, ApiError> {
    if !arn.starts_with("arn:aws:states:") || !right_type {
        return Err(ApiError::new(
            "InvalidArn",
            format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"),
        ));
    }
    entry().ok_or_else(|| {
        let (kind, noun) = missing;
        ApiError::new(kind, format!("{noun} Does Not Exist: '{arn}'"))
    })
}

/// Calls `visit` on every JSON object of a definition (nested states included); nothing for
/// text that is not JSON.
pub(crate) fn each_object(
    definition: &str,
    mut visit: impl FnMut(&serde_json::Map<String, Value>),
) {
    fn walk(v: &Value, visit: &mut dyn FnMut(&serde_json::Map<String, Value>)) {
        match v {
            Value::Object(m) => {
                visit(m);
                m.values().for_each(|v| walk(v, visit));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, visit)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::from_str::<Value>(definition) {
        walk(&v, &mut visit);
    }
}

/// An execution's statuses as AWS spells them.
pub(crate) const STATUSES: [&str; 6] = [
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "ABORTED",
    "PENDING_REDRIVE",
];

/// A date as the JSON API gives it: epoch seconds.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn now_ms() -> i64 {
    crate::lambda::epoch_ms() as i64
}

impl StepFunctions {
    /// A service without Task resources.
    pub fn new(region: &str, account: &str, seed: u64) -> Arc<Self> {
        Self::with_tasks(region, account, seed, |_| Tasks::none())
    }

    /// A service whose Task states run on what `tasks` builds; `tasks` receives the service's
    /// own (not yet usable) handle for invokers that start child executions.
    pub fn with_tasks(
        region: &str,
        account: &str,
        seed: u64,
        tasks: impl FnOnce(&Weak<StepFunctions>) -> Tasks,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| StepFunctions {
            region: region.to_owned(),
            account: account.to_owned(),
            machines: RwLock::default(),
            executions: RwLock::default(),
            by_machine: Mutex::default(),
            keep_finished: AtomicUsize::new(DEFAULT_KEEP_EXECUTIONS),
            tasks: tasks(me),
            listeners: RwLock::default(),
            random: Arc::new(Rng::new(seed ^ 0x5f3c_11aa)),
            callbacks: Callbacks::default(),
            mocks: RwLock::default(),
            activities: activities::Activities::default(),
            clock: RwLock::new(Arc::new(TokioClock::default())),
        })
    }

    /// Uses `config` for executions started with a test case (`<state machine ARN>#<test
    /// case>`), as Step Functions Local does with its mock configuration file.
    pub fn set_mocks(&self, config: MockConfig) {
        *self.mocks.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(config));
    }

    /// Runs Wait states, Retry intervals and timeouts `factor` times as long (0 < factor <= 1:
    /// a test of a backoff policy takes milliseconds); history timestamps are then virtual,
    /// spaced as AWS would space them (see [`TokioClock`]).
    pub fn scale_time(&self, factor: f64) -> Result<(), String> {
        if !(factor > 0.0 && factor <= 1.0) {
            return Err(format!(
                "the time scale must be above 0 and at most 1, got {factor}"
            ));
        }
        *self.clock.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(TokioClock {
            scale: factor,
            origin_ms: now_ms(),
        });
        Ok(())
    }

    /// The mocks of test case `case` of `machine`, for one execution.
    fn test_case(&self, machine: &Machine, case: &str) -> Result<Arc<mocks::MockCase>, ApiError> {
        let mocked = self
            .mocks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .ok_or_else(|| {
                ApiError::new(
                    "ValidationException",
                    format!(
                        "Test case '{case}' cannot be used: the local stack has no mock configuration (--mock-config or SFN_MOCK_CONFIG)"
                    ),
                )
            })?
            .case(&machine.name, case)?;
        let known = mocks::state_names(&machine.definition);
        if let Some(missing) = mocked.states().find(|s| !known.contains(s)) {
            return Err(ApiError::new(
                "ValidationException",
                format!(
                    "Test case '{case}' mocks state '{missing}', which state machine '{}' does not have",
                    machine.name
                ),
            ));
        }
        Ok(mocked)
    }

    /// The ARN of the activity `name`.
    pub fn activity_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:activity:{name}",
            self.region, self.account
        )
    }

    /// The time scale (1: real time).
    pub fn time_scale(&self) -> f64 {
        self.clock.read().unwrap_or_else(|e| e.into_inner()).scale
    }

    /// The executions' time now, in epoch milliseconds (virtual when the time is scaled).
    pub fn now_millis(&self) -> i64 {
        self.clock
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .now_millis()
    }

    /// Keeps at most `keep` finished executions per state machine (at least one).
    pub fn keep_finished(&self, keep: usize) {
        self.keep_finished.store(keep.max(1), Ordering::Relaxed);
    }

    /// Forgets the finished executions of a machine that ended longest ago, beyond what is
    /// kept; they are then neither described nor listed (`ExecutionDoesNotExist`), like
    /// executions AWS no longer keeps. A caller that still holds one (a parent waiting on a
    /// child) keeps its copy.
    fn forget_old(&self, machine_arn: &str) {
        let keep = self.keep_finished.load(Ordering::Relaxed);
        let mut by_machine = self.by_machine.lock().unwrap_or_else(|e| e.into_inner());
        let Some(arns) = by_machine.get_mut(machine_arn) else {
            return;
        };
        let mut executions = self.executions.write().unwrap_or_else(|e| e.into_inner());
        // (when it ended, ARN) of each finished execution.
        let mut finished: Vec<(i64, String)> = arns
            .iter()
            .filter_map(|arn| {
                let state = executions.get(arn)?.state.lock().ok()?;
                state.stop_ms.map(|stop| (stop, arn.clone()))
            })
            .collect();
        if finished.len() <= keep {
            return;
        }
        finished.sort();
        let forgotten: std::collections::HashSet<String> = finished
            .drain(..finished.len() - keep)
            .map(|(_, arn)| arn)
            .collect();
        arns.retain(|arn| !forgotten.contains(arn));
        for arn in &forgotten {
            executions.remove(arn);
        }
        debug!(machine = %machine_arn, forgotten = forgotten.len(), "old finished executions forgotten");
    }

    /// Adds a listener of execution status changes.
    pub fn subscribe(&self, listener: Arc<dyn StatusListener>) {
        self.listeners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    fn machine_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.region, self.account
        )
    }

    /// Every Task resource of a definition, for checks at start-up.
    pub fn task_resources(definition: &str) -> Vec<String> {
        let mut out = Vec::new();
        each_object(definition, |m| {
            if m.get("Type") == Some(&json!("Task"))
                && let Some(r) = m.get("Resource").and_then(Value::as_str)
            {
                out.push(r.to_owned());
            }
        });
        out
    }

    fn parse(definition: &str) -> Result<Definition, ApiError> {
        let (machine, diagnostics) = load_with_diagnostics(definition);
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                format!(
                    "{}: {} at {}",
                    d.code,
                    d.message,
                    d.location.as_deref().unwrap_or("/")
                )
            })
            .collect();
        match machine {
            Some(m) if errors.is_empty() => Ok(m),
            _ => Err(ApiError::new(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: '{}'", errors.join(", ")),
            )),
        }
    }

    pub fn create_machine(
        &self,
        name: &str,
        definition: &str,
        role_arn: &str,
        kind: &str,
    ) -> Result<Arc<Machine>, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::new(
                "InvalidName",
                format!("Invalid Name: '{name}'"),
            ));
        }
        if kind != "STANDARD" && kind != "EXPRESS" {
            return Err(ApiError::new(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
                ),
            ));
        }
        let parsed = Self::parse(definition)?;
        let arn = self.machine_arn(name);
        let mut machines = self.machines.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = machines.get(&arn) {
            if existing.definition == definition
                && existing.role_arn == role_arn
                && existing.kind == kind
            {
                return Ok(existing.clone());
            }
            return Err(ApiError::new(
                "StateMachineAlreadyExists",
                format!("State Machine Already Exists: '{arn}'"),
            ));
        }
        let machine = Arc::new(Machine {
            arn: arn.clone(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            definition: definition.to_owned(),
            parsed: Arc::new(parsed),
            role_arn: role_arn.to_owned(),
            created_ms: now_ms(),
            updated_ms: Mutex::new(None),
        });
        machines.insert(arn, machine.clone());
        info!(machine = %name, kind, "state machine created");
        Ok(machine)
    }

    pub fn machine(&self, arn: &str) -> Result<Arc<Machine>, ApiError> {
        registered(
            arn,
            arn.contains(":stateMachine:"),
            || {
                self.machines
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(arn)
                    .cloned()
            },
            ("StateMachineDoesNotExist", "State Machine"),
        )
    }

    pub fn machines(&self) -> Vec<Arc<Machine>> {
        self.machines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn update_machine(
        &self,
        arn: &str,
        definition: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<i64, ApiError> {
        let old = self.machine(arn)?;
        let parsed = match definition {
            Some(d) => Arc::new(Self::parse(d)?),
            None => old.parsed.clone(),
        };
        let updated = now_ms();
        let machine = Arc::new(Machine {
            arn: old.arn.clone(),
            name: old.name.clone(),
            kind: old.kind.clone(),
            definition: definition
                .map(str::to_owned)
                .unwrap_or_else(|| old.definition.clone()),
            parsed,
            role_arn: role_arn
                .map(str::to_owned)
                .unwrap_or_else(|| old.role_arn.clone()),
            created_ms: old.created_ms,
            updated_ms: Mutex::new(Some(updated)),
        });
        self.machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(arn.to_owned(), machine);
        Ok(updated)
    }

    pub fn delete_machine(&self, arn: &str) -> Result<(), ApiError> {
        self.machine(arn)?;
        self.machines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(arn);
        Ok(())
    }

    pub fn execution(&self, arn: &str) -> Result<Arc<Execution>, ApiError> {
        registered(
            arn,
            true,
            || {
                self.executions
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(arn)
                    .cloned()
            },
            ("ExecutionDoesNotExist", "Execution"),
        )
    }

    /// Executions of a machine, newest first.
    pub fn executions_of(&self, machine_arn: &str) -> Vec<Arc<Execution>> {
        let arns = self
            .by_machine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(machine_arn)
            .cloned()
            .unwrap_or_default();
        let executions = self.executions.read().unwrap_or_else(|e| e.into_inner());
        arns.iter()
            .rev()
            .filter_map(|a| executions.get(a).cloned())
            .collect()
    }

    fn uuid(&self) -> String {
        let (a, b) = (self.random.next_u64(), self.random.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16 & 0x0fff,
            (b >> 48) as u16 & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// Starts an execution (StartExecution). A repeated start of a running STANDARD execution
    /// with the same name and input returns it, as AWS does.
    pub fn start(
        self: &Arc<Self>,
        machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
    ) -> Result<Arc<Execution>, ApiError> {
        // `<state machine ARN>#<test case>`: the execution uses that test case's mocks.
        let (machine_arn, case) = match machine_arn.split_once('#') {
            Some((arn, case)) => (arn, Some(case)),
            None => (machine_arn, None),
        };
        let machine = self.machine(machine_arn)?;
        let case = case
            .map(|case| self.test_case(&machine, case))
            .transpose()?;
        let name = match name {
            Some(n) if !valid_name(n) => {
                return Err(ApiError::new("InvalidName", format!("Invalid Name: '{n}'")));
            }
            Some(n) => n.to_owned(),
            None => self.uuid(),
        };
        let input = input.unwrap_or("{}").to_owned();
        if input.len() > MAX_PAYLOAD {
            return Err(ApiError::new(
                "ValidationException",
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to 262144",
            ));
        }
        if serde_json::from_str::<Value>(&input).is_err() {
            return Err(ApiError::new(
                "InvalidExecutionInput",
                format!(
                    "Invalid State Machine Execution Input: 'Unexpected character: {}'",
                    input.chars().next().unwrap_or(' ')
                ),
            ));
        }
        let express = machine.kind == "EXPRESS";
        let arn = if express {
            format!(
                "arn:aws:states:{}:{}:express:{}:{name}:{}",
                self.region,
                self.account,
                machine.name,
                self.uuid()
            )
        } else {
            format!(
                "arn:aws:states:{}:{}:execution:{}:{name}",
                self.region, self.account, machine.name
            )
        };
        let mut executions = self.executions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = executions.get(&arn) {
            if existing.status() == "RUNNING" && existing.input == input {
                return Ok(existing.clone());
            }
            return Err(ApiError::new(
                "ExecutionAlreadyExists",
                format!("Execution Already Exists: '{arn}'"),
            ));
        }
        let mut cfg =
            ExecutionConfig::new(&self.region, &self.account, &machine.name, &name, &input);
        cfg.execution_arn = arn.clone();
        cfg.state_machine_arn = machine.arn.clone();
        cfg.role_arn = machine.role_arn.clone();
        let invoker: Arc<dyn TaskInvoker> = match case {
            Some(case) => Arc::new(mocks::MockingInvoker {
                inner: self.tasks.invoker.clone(),
                case,
            }),
            None => self.tasks.invoker.clone(),
        };
        let (done, _) = watch::channel(false);
        let execution = Arc::new(Execution {
            arn: arn.clone(),
            name: name.clone(),
            machine_arn: machine.arn.clone(),
            machine_name: machine.name.clone(),
            express,
            input: input.clone(),
            start_ms: self.now_millis(),
            state: Mutex::new(ExecState {
                status: "RUNNING",
                stop_ms: None,
                output: None,
                error: None,
                cause: None,
                redrive_count: 0,
                redrive_ms: None,
            }),
            history: Mutex::new(Vec::new()),
            abort: Mutex::new(AbortHandle::new()),
            done,
            definition: machine.parsed.clone(),
            invoker,
            config: cfg.clone(),
            map_runs: Mutex::new(Vec::new()),
        });
        executions.insert(arn.clone(), execution.clone());
        drop(executions);
        self.by_machine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(machine.arn.clone())
            .or_default()
            .push(arn.clone());
        self.launch(&execution, cfg);
        Ok(execution)
    }

    /// Runs `run` with `cfg` on a task of its own and records how it ended.
    fn launch(self: &Arc<Self>, run: &Arc<Execution>, cfg: ExecutionConfig) {
        let services = Services {
            clock: self.clock.read().unwrap_or_else(|e| e.into_inner()).clone(),
            random: self.random.clone(),
            invoker: run.invoker.clone(),
            observer: Some(Arc::new(Recorder(Arc::downgrade(run)))),
        };
        self.publish_status(run);
        let abort = run.abort.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (sfn, run, parsed) = (self.clone(), run.clone(), run.definition.clone());
        tokio::spawn(async move {
            // The run is a task of its own, so that a panic in it ends the execution as a
            // failure instead of leaving it RUNNING forever.
            let ran = tokio::spawn(execute(parsed, cfg, services, abort)).await;
            let ended = match ran {
                Ok(outcome) => {
                    let stop_ms = outcome
                        .history
                        .last()
                        .map(|e| e.timestamp_millis)
                        .unwrap_or_else(|| sfn.now_millis());
                    let mut state = run.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.status = outcome.status.as_str();
                    state.stop_ms = Some(stop_ms);
                    state.output = outcome.output.map(|o| o.to_string());
                    state.error = outcome.error;
                    state.cause = outcome.cause;
                    state.status
                }
                Err(e) => run.fail_internally(&panic_message(e), sfn.now_millis()),
            };
            info!(execution = %run.arn, status = ended, "execution ended");
            sfn.publish_status(&run);
            // `send` keeps the old value when nobody is subscribed yet: later waiters must see
            // the end too.
            run.done.send_replace(true);
            sfn.forget_old(&run.machine_arn);
        });
    }

    /// Tells the listeners about a status change (STANDARD executions only: Express workflows
    /// emit no status change events).
    fn publish_status(&self, execution: &Execution) {
        if execution.express {
            return;
        }
        // A listener may start executions, which publish in turn: no lock is held meanwhile.
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for listener in listeners {
            listener.status_changed(execution);
        }
    }

    /// Every execution that is still running (for shutdown).
    pub fn running(&self) -> Vec<Arc<Execution>> {
        self.executions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.status() == "RUNNING")
            .cloned()
            .collect()
    }

    /// Whether the local stack can run a Task resource.
    pub fn supports(&self, resource: &str) -> bool {
        (self.tasks.supports)(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_aws_rules() {
        assert!(valid_name("run-1_ok.A"));
        for bad in ["", "has space", "a:b", "a/b", "x*", &"n".repeat(81)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    struct Panics;

    impl TaskInvoker for Panics {
        fn invoke(
            &self,
            _: leasehold_asl::invoker::TaskRequest,
        ) -> BoxFuture<'static, Result<Value, leasehold_asl::invoker::TaskError>> {
            Box::pin(async { panic!("a task invoker failed badly") })
        }
    }

    #[derive(Default)]
    struct Heard(Mutex<Vec<&'static str>>);

    impl StatusListener for Heard {
        fn status_changed(&self, execution: &Execution) {
            self.0.lock().unwrap().push(execution.status());
        }
    }

    /// A panic while an execution runs ends it FAILED with `States.Runtime`, an
    /// `ExecutionFailed` event and a status change, instead of leaving it RUNNING forever.
    #[tokio::test]
    async fn a_panic_in_an_execution_fails_it() {
        let sfn = StepFunctions::with_tasks("us-east-1", "123456789012", 1, |_| Tasks {
            invoker: Arc::new(Panics),
            supports: Box::new(|_| true),
        });
        let heard = Arc::new(Heard::default());
        sfn.subscribe(heard.clone());
        let definition = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","End":true}}}"#;
        let role = "arn:aws:iam::123456789012:role/r";
        let machine = sfn
            .create_machine("m", definition, role, "STANDARD")
            .unwrap();
        let execution = sfn.start(&machine.arn, Some("e"), None).unwrap();
        let d = tokio::time::timeout(Duration::from_secs(10), execution.finished())
            .await
            .expect("the execution ends");
        assert_eq!(d.status, "FAILED");
        assert_eq!(d.error.as_deref(), Some("States.Runtime"));
        assert!(d.stop_ms.is_some());
        let history = execution.history();
        let last = history.last().expect("a history");
        assert_eq!(last.event_type, "ExecutionFailed");
        assert_eq!(last.id, history.len() as u64);
        assert_eq!(
            last.details.as_ref().map(|d| d.to_value()["error"].clone()),
            Some(json!("States.Runtime"))
        );
        assert_eq!(*heard.0.lock().unwrap(), ["RUNNING", "FAILED"]);
        assert!(sfn.running().is_empty());
    }

    #[test]
    fn task_resources_are_found_in_nested_states() {
        let definition = r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:x","End":true}}},"End":true}}}"#;
        assert_eq!(StepFunctions::task_resources(definition), ["arn:x"]);
    }
}
