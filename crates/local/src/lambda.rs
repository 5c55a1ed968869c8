//! Lambda containers: each function's handler binary runs as real processes that speak the
//! Lambda Runtime API to this module, one invocation per container at a time. Containers are
//! reused while warm, started on demand up to the function's concurrency limit (beyond it an
//! invocation is throttled, as Lambda throttles), stopped after a while idle, and killed when an
//! invocation overruns its timeout. Fault injection kills a container in the middle of an
//! invocation with a given probability.
//!
//! What a container prints is kept per function in one log file per container (the log stream)
//! with Lambda's `START`/`END`/`REPORT` lines, rotated by size ([`crate::logfile`]); Embedded
//! Metric Format lines in it are turned into CloudWatch metrics (see [`crate::metrics`]).

pub use crate::error::InvokeError;
use crate::error::StackError;
use crate::logfile::{LogLimits, RotatingLog};
use crate::metrics::MetricsForwarder;
use crate::rng::Rng;
use crate::template::FunctionSpec;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Concurrency of a function whose template sets no `ReservedConcurrentExecutions`.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// How long an idle container is kept warm.
pub const DEFAULT_IDLE_SECONDS: u64 = 60;
/// A killed invocation dies at a random moment in its first this-many milliseconds, or when
/// it reports its result, whichever comes first: always before the caller sees the result.
const KILL_WINDOW_MS: u64 = 1_000;
/// How much of an invocation's log `LogType: Tail` returns (Lambda: the last 4 KB).
const TAIL_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// Where the handler binaries are (`target/debug`).
    pub binaries: PathBuf,
    /// Variables every container gets (region, endpoints, dummy credentials).
    pub base_env: BTreeMap<String, String>,
    pub default_concurrency: usize,
    pub idle_timeout: Duration,
    /// One folder per function, one file per container.
    pub logs_dir: PathBuf,
    /// Size limit of a container's log file, and rotated files kept.
    pub log_limits: LogLimits,
    /// Kill probability per function name.
    pub kill: HashMap<String, f64>,
    /// Per function: the probability that a synchronous caller gets `Lambda.ServiceException`
    /// at once while the invocation runs on (an answer lost between Lambda and its caller).
    pub lose_answers: HashMap<String, f64>,
    pub seed: u64,
}

/// A function's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler's response payload.
    Success(Vec<u8>),
    /// The handler (or the sandbox) reported an error; `payload` is the JSON Lambda returns.
    FunctionError {
        error_type: String,
        message: String,
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct Invoked {
    pub request_id: String,
    pub outcome: Outcome,
    /// The end of the invocation's log (for `LogType: Tail`).
    pub log_tail: String,
}

/// Counters per function, for reports and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FunctionStats {
    pub invocations: u64,
    pub cold_starts: u64,
    pub errors: u64,
    pub throttles: u64,
    pub timeouts: u64,
    pub kills: u64,
    pub crashes: u64,
    pub containers_live: u64,
    pub peak_containers: u64,
}

#[derive(Default)]
struct Counters {
    invocations: AtomicU64,
    cold_starts: AtomicU64,
    errors: AtomicU64,
    throttles: AtomicU64,
    timeouts: AtomicU64,
    kills: AtomicU64,
    crashes: AtomicU64,
    peak: AtomicU64,
}

struct Function {
    spec: FunctionSpec,
    limit: usize,
    kill_probability: f64,
    lose_answer_probability: f64,
    pool: Mutex<Pool>,
    counters: Counters,
}

#[derive(Default)]
struct Pool {
    idle: Vec<(Arc<Container>, Instant)>,
    live: usize,
    next_id: u64,
}

struct Request {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
}

struct Pending {
    id: String,
    reply: oneshot::Sender<Outcome>,
    kill_planned: bool,
}

struct Container {
    id: String,
    function: String,
    pid: Option<u32>,
    /// Wakes the task that owns the process to kill it (a permit is kept if it is not waiting).
    kill: tokio::sync::Notify,
    next: tokio::sync::Mutex<mpsc::Receiver<Request>>,
    queue: mpsc::Sender<Request>,
    current: Mutex<Option<Pending>>,
    dead: AtomicBool,
    log: Mutex<RotatingLog>,
    /// The current invocation's start and the end of its log.
    tail: Mutex<(Option<Instant>, String)>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Container {
    fn write_log(&self, line: &str) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_line(line);
    }

    fn kill(&self) {
        self.kill.notify_one();
    }

    fn take_pending(&self) -> Option<Pending> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

pub struct LambdaService {
    functions: HashMap<String, Arc<Function>>,
    aliases: HashMap<String, String>,
    config: LambdaConfig,
    metrics: MetricsForwarder,
    rng: Rng,
    containers: Mutex<Vec<Arc<Container>>>,
    next_request: AtomicU64,
}

impl LambdaService {
    pub fn new(
        specs: &[FunctionSpec],
        config: LambdaConfig,
        metrics: MetricsForwarder,
    ) -> Result<Arc<Self>, StackError> {
        let mut functions = HashMap::new();
        let mut aliases = HashMap::new();
        for spec in specs {
            let binary = config.binaries.join(&spec.binary);
            if !binary.is_file() {
                return Err(StackError::MissingBinary {
                    function: spec.logical_id.clone(),
                    path: binary,
                });
            }
            let probability = |of: &HashMap<String, f64>| {
                of.get(&spec.name)
                    .or_else(|| of.get(&spec.logical_id))
                    .copied()
                    .unwrap_or(0.0)
            };
            let kill_probability = probability(&config.kill);
            let lose_answer_probability = probability(&config.lose_answers);
            let limit = spec
                .reserved_concurrency
                .map(|n| n as usize)
                .unwrap_or(config.default_concurrency);
            aliases.insert(spec.arn.clone(), spec.name.clone());
            aliases.insert(spec.logical_id.clone(), spec.name.clone());
            functions.insert(
                spec.name.clone(),
                Arc::new(Function {
                    spec: spec.clone(),
                    limit,
                    kill_probability,
                    lose_answer_probability,
                    pool: Mutex::new(Pool::default()),
                    counters: Counters::default(),
                }),
            );
        }
        for key in config.kill.keys().chain(config.lose_answers.keys()) {
            if !functions.contains_key(key) && !aliases.contains_key(key) {
                return Err(StackError::KillTarget(key.clone()));
            }
        }
        std::fs::create_dir_all(&config.logs_dir).map_err(|source| StackError::Folder {
            path: config.logs_dir.clone(),
            source,
        })?;
        let rng = Rng::new(config.seed);
        let service = Arc::new(LambdaService {
            functions,
            aliases,
            config,
            metrics,
            rng,
            containers: Mutex::new(Vec::new()),
            next_request: AtomicU64::new(1),
        });
        let reaper = Arc::downgrade(&service);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match reaper.upgrade() {
                    Some(service) => service.stop_idle(),
                    None => return,
                }
            }
        });
        Ok(service)
    }

    /// The function's name for a name, an ARN (with or without a qualifier) or a logical id.
    pub fn resolve(&self, name_or_arn: &str) -> Option<&FunctionSpec> {
        let key = name_or_arn.strip_suffix(":$LATEST").unwrap_or(name_or_arn);
        let name = self.aliases.get(key).map(String::as_str).unwrap_or(key);
        let name = name.rsplit(":function:").next().unwrap_or(name);
        self.functions.get(name).map(|f| &f.spec)
    }

    pub fn specs(&self) -> Vec<&FunctionSpec> {
        let mut specs: Vec<&FunctionSpec> = self.functions.values().map(|f| &f.spec).collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs
    }

    pub fn stats(&self) -> BTreeMap<String, FunctionStats> {
        self.functions
            .iter()
            .map(|(name, f)| {
                let c = &f.counters;
                let live = f.pool.lock().unwrap_or_else(|e| e.into_inner()).live as u64;
                (
                    name.clone(),
                    FunctionStats {
                        invocations: c.invocations.load(Ordering::Relaxed),
                        cold_starts: c.cold_starts.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                        throttles: c.throttles.load(Ordering::Relaxed),
                        timeouts: c.timeouts.load(Ordering::Relaxed),
                        kills: c.kills.load(Ordering::Relaxed),
                        crashes: c.crashes.load(Ordering::Relaxed),
                        containers_live: live,
                        peak_containers: c.peak.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }

    /// Runs one invocation and waits for its outcome (`RequestResponse`).
    ///
    /// The invocation runs in a task of its own: a caller that stops waiting (a stopped
    /// execution, a client that hung up) does not stop it, as in Lambda, where it runs on to
    /// its end or its timeout and its container is then reused or retired as usual.
    pub async fn invoke(
        self: &Arc<Self>,
        name_or_arn: &str,
        payload: Vec<u8>,
    ) -> Result<Invoked, InvokeError> {
        let lose = self
            .resolve(name_or_arn)
            .and_then(|spec| self.functions.get(&spec.name))
            .is_some_and(|f| {
                f.lose_answer_probability > 0.0 && self.rng.next_f64() < f.lose_answer_probability
            });
        let (service, name) = (self.clone(), name_or_arn.to_owned());
        let running = tokio::spawn(async move { service.run_invocation(&name, payload).await });
        if lose {
            // Fault injection: the caller hears of a service error while the invocation runs.
            return Err(InvokeError::Service(
                "the answer was lost on its way to the caller (fault injection)".into(),
            ));
        }
        running
            .await
            .unwrap_or_else(|e| Err(InvokeError::Service(format!("the invocation failed: {e}"))))
    }

    async fn run_invocation(
        self: &Arc<Self>,
        name_or_arn: &str,
        payload: Vec<u8>,
    ) -> Result<Invoked, InvokeError> {
        let function = self
            .resolve(name_or_arn)
            .and_then(|spec| self.functions.get(&spec.name))
            .cloned()
            .ok_or_else(|| InvokeError::NotFound(name_or_arn.to_owned()))?;
        let container = self.container(&function)?;
        function
            .counters
            .invocations
            .fetch_add(1, Ordering::Relaxed);
        let request_id = self.request_id();
        let timeout = Duration::from_secs(function.spec.timeout_seconds);
        let deadline_ms = epoch_ms() + timeout.as_millis() as u64;
        let kill_planned =
            function.kill_probability > 0.0 && self.rng.next_f64() < function.kill_probability;
        let (reply, outcome) = oneshot::channel();
        *container.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
            id: request_id.clone(),
            reply,
            kill_planned,
        });
        *container.tail.lock().unwrap_or_else(|e| e.into_inner()) =
            (Some(Instant::now()), String::new());
        container.write_log(&format!("START RequestId: {request_id} Version: $LATEST"));
        if container
            .queue
            .send(Request {
                id: request_id.clone(),
                payload,
                deadline_ms,
            })
            .await
            .is_err()
        {
            container.take_pending();
            self.retire(&container);
            return Err(InvokeError::Service("the container went away".into()));
        }
        if kill_planned {
            let delay = Duration::from_millis(self.rng.below(KILL_WINDOW_MS));
            let (target, id) = (container.clone(), request_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let still_running = target
                    .current
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|p| p.id == id);
                if still_running {
                    target.kill();
                }
            });
        }
        let result = tokio::time::timeout(timeout, outcome).await;
        let (outcome, reusable) = match result {
            Ok(Ok(outcome)) => {
                let dead = container.dead.load(Ordering::SeqCst);
                (outcome, !dead)
            }
            Ok(Err(_)) => (
                sandbox_error(
                    &request_id,
                    "Runtime.ExitError",
                    "Runtime exited without providing a reason",
                ),
                false,
            ),
            Err(_) => {
                function.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                container.take_pending();
                container.kill();
                let seconds = function.spec.timeout_seconds;
                container.write_log(&format!(
                    "{} {request_id} Task timed out after {seconds}.00 seconds",
                    iso_now()
                ));
                (
                    sandbox_error(
                        &request_id,
                        "Sandbox.Timedout",
                        &format!("Task timed out after {seconds}.00 seconds"),
                    ),
                    false,
                )
            }
        };
        if kill_planned && !reusable {
            function.counters.kills.fetch_add(1, Ordering::Relaxed);
        }
        if let Outcome::FunctionError { .. } = outcome {
            function.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        let tail = container.end_invocation_log(&request_id);
        if reusable {
            let mut pool = function.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.idle.push((container, Instant::now()));
        } else {
            self.retire(&container);
        }
        Ok(Invoked {
            request_id,
            outcome,
            log_tail: tail,
        })
    }

    /// Queues an asynchronous invocation (`Event`): retried twice on a function error, as
    /// Lambda does (with delays of 1 and 2 seconds here instead of 1 and 2 minutes).
    pub fn invoke_async(
        self: &Arc<Self>,
        name_or_arn: &str,
        payload: Vec<u8>,
    ) -> Result<(), InvokeError> {
        let name = self
            .resolve(name_or_arn)
            .ok_or_else(|| InvokeError::NotFound(name_or_arn.to_owned()))?
            .name
            .clone();
        let service = self.clone();
        tokio::spawn(async move {
            for attempt in 0..3u64 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
                match service.invoke(&name, payload.clone()).await {
                    Ok(Invoked {
                        outcome: Outcome::Success(_),
                        ..
                    }) => return,
                    Ok(Invoked {
                        outcome: Outcome::FunctionError { error_type, .. },
                        ..
                    }) => {
                        warn!(function = %name, attempt, error = %error_type, "asynchronous invocation failed");
                    }
                    Err(e) => {
                        warn!(function = %name, attempt, error = %e, "asynchronous invocation refused")
                    }
                }
            }
        });
        Ok(())
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let r = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            (r & 0xfff) as u16,
            (n & 0xfff) as u16,
            n
        )
    }

    /// An idle container of the function, or a new one when under its concurrency limit.
    fn container(
        self: &Arc<Self>,
        function: &Arc<Function>,
    ) -> Result<Arc<Container>, InvokeError> {
        let mut pool = function.pool.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((container, _)) = pool.idle.pop() {
            if !container.dead.load(Ordering::SeqCst) {
                return Ok(container);
            }
        }
        if pool.live >= function.limit {
            function.counters.throttles.fetch_add(1, Ordering::Relaxed);
            return Err(InvokeError::Throttled {
                function: function.spec.name.clone(),
                limit: function.limit,
            });
        }
        pool.live += 1;
        pool.next_id += 1;
        let ordinal = pool.next_id;
        function
            .counters
            .peak
            .fetch_max(pool.live as u64, Ordering::Relaxed);
        drop(pool);
        function
            .counters
            .cold_starts
            .fetch_add(1, Ordering::Relaxed);
        match self.start_container(function, ordinal) {
            Ok(c) => Ok(c),
            Err(e) => {
                function.pool.lock().unwrap_or_else(|e| e.into_inner()).live -= 1;
                Err(InvokeError::Service(e))
            }
        }
    }

    /// The function's process as Lambda's `provided.al2023` runtime starts it: a clean
    /// environment with the Runtime API address and the function's settings.
    fn command(&self, spec: &FunctionSpec, runtime_api: &str, stream: &str) -> Command {
        let mut command = Command::new(self.config.binaries.join(&spec.binary));
        command.env_clear();
        for key in ["PATH", "LANG", "TZ"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.envs(&self.config.base_env);
        command.envs(&spec.environment);
        command
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if spec.json_logs {
            command.env("AWS_LAMBDA_LOG_FORMAT", "JSON");
        }
        command
    }

    fn start_container(
        self: &Arc<Self>,
        function: &Arc<Function>,
        ordinal: u64,
    ) -> Result<Arc<Container>, String> {
        let spec = &function.spec;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let stream = format!(
            "{}/[$LATEST]{:032x}",
            chrono_day(),
            (self.rng.next_u64() as u128) << 64 | ordinal as u128
        );
        let id = format!("{}-{ordinal}", spec.name);
        let log_dir = self.config.logs_dir.join(&spec.name);
        let _ = std::fs::create_dir_all(&log_dir);
        let log = RotatingLog::open(
            log_dir.join(format!("{ordinal:05}.log")),
            self.config.log_limits,
        );

        let mut command = self.command(spec, &address.to_string(), &stream);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (queue, next) = mpsc::channel(1);
        let container = Arc::new(Container {
            id: id.clone(),
            function: spec.name.clone(),
            pid: child.id(),
            kill: tokio::sync::Notify::new(),
            next: tokio::sync::Mutex::new(next),
            queue,
            current: Mutex::new(None),
            dead: AtomicBool::new(false),
            log: Mutex::new(log),
            tail: Mutex::new((None, String::new())),
            server: Mutex::new(None),
        });
        info!(function = %spec.name, container = %id, pid = container.pid, "container started (cold start)");
        let app = runtime_api(container.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *container.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
        for pipe in [
            stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stderr.map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let (target, metrics) = (container.clone(), self.metrics.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    target.capture(&line);
                    metrics.offer(&line);
                }
            });
        }
        // Owns the process: kills it when asked, and when it exits for any reason fails its
        // invocation like Lambda does.
        let (watched, service, function) =
            (container.clone(), Arc::downgrade(self), function.clone());
        tokio::spawn(async move {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status.ok(),
                    _ = watched.kill.notified() => {
                        let _ = child.start_kill();
                    }
                }
            };
            watched.dead.store(true, Ordering::SeqCst);
            let reason = match status {
                Some(s) => match s.code() {
                    Some(code) => format!("exit status {code}"),
                    None => "signal: killed".to_owned(),
                },
                None => "unknown".to_owned(),
            };
            if let Some(pending) = watched.take_pending() {
                function.counters.crashes.fetch_add(1, Ordering::Relaxed);
                watched.write_log(&format!(
                    "RequestId: {} Error: Runtime exited with error: {reason}",
                    pending.id
                ));
                let _ = pending.reply.send(sandbox_error(
                    &pending.id,
                    "Runtime.ExitError",
                    &format!("Runtime exited with error: {reason}"),
                ));
            }
            if let Some(server) = watched
                .server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                server.abort();
            }
            if let Some(service) = service.upgrade() {
                service.retire(&watched);
            }
            debug!(container = %watched.id, %reason, "container exited");
        });
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(container.clone());
        Ok(container)
    }

    /// Takes a container out of service (killed, crashed, timed out, or its process exited)
    /// and frees its concurrency slot, once however often it is called.
    fn retire(&self, container: &Arc<Container>) {
        container.kill();
        let Some(function) = self.functions.get(&container.function) else {
            return;
        };
        function
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .retain(|(c, _)| !Arc::ptr_eq(c, container));
        let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let before = containers.len();
        containers.retain(|c| !Arc::ptr_eq(c, container));
        if containers.len() < before {
            let mut pool = function.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.live = pool.live.saturating_sub(1);
        }
    }

    fn stop_idle(&self) {
        for function in self.functions.values() {
            let expired: Vec<Arc<Container>> = {
                let mut pool = function.pool.lock().unwrap_or_else(|e| e.into_inner());
                let limit = self.config.idle_timeout;
                let (old, keep): (Vec<_>, Vec<_>) = pool
                    .idle
                    .drain(..)
                    .partition(|(_, since)| since.elapsed() >= limit);
                pool.idle = keep;
                old.into_iter().map(|(c, _)| c).collect()
            };
            for container in expired {
                info!(container = %container.id, "idle container stopped");
                container.kill();
            }
        }
    }

    /// Stops every container (by its own pid) and waits for them to exit.
    pub async fn shutdown(&self) {
        let containers: Vec<Arc<Container>> = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in &containers {
            c.kill();
        }
        for _ in 0..100 {
            if containers.iter().all(|c| c.dead.load(Ordering::SeqCst)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Process ids of the running containers.
    pub fn container_pids(&self) -> Vec<u32> {
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| !c.dead.load(Ordering::SeqCst))
            .filter_map(|c| c.pid)
            .collect()
    }

    pub fn logs_dir(&self) -> &std::path::Path {
        &self.config.logs_dir
    }
}

impl Container {
    fn capture(&self, line: &str) {
        {
            let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            let text = &mut tail.1;
            text.push_str(line);
            text.push('\n');
            if text.len() > TAIL_BYTES * 2 {
                let cut = (text.len() - TAIL_BYTES..text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.drain(..cut);
            }
        }
        self.write_log(line);
    }

    /// Writes `END` and `REPORT` and returns the end of the invocation's log.
    fn end_invocation_log(&self, request_id: &str) -> String {
        let (started, text) =
            std::mem::take(&mut *self.tail.lock().unwrap_or_else(|e| e.into_inner()));
        let millis = started
            .map(|s| s.elapsed().as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        self.write_log(&format!("END RequestId: {request_id}"));
        self.write_log(&format!(
            "REPORT RequestId: {request_id}\tDuration: {millis:.2} ms"
        ));
        let start = text.len().saturating_sub(TAIL_BYTES);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_owned()
    }
}

fn sandbox_error(request_id: &str, error_type: &str, message: &str) -> Outcome {
    let message = format!("RequestId: {request_id} Error: {message}");
    let payload = json!({"errorType": error_type, "errorMessage": message}).to_string();
    Outcome::FunctionError {
        error_type: error_type.to_owned(),
        message,
        payload: payload.into_bytes(),
    }
}

// ---------------------------------------------------------------------------- Runtime API

fn runtime_api(container: Arc<Container>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(report_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(container)
}

async fn next(State(container): State<Arc<Container>>) -> Response {
    let request = {
        let mut next = container.next.lock().await;
        next.recv().await
    };
    let Some(request) = request else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let arn = format!("arn:aws:lambda:local:function:{}", container.function);
    for (name, value) in [
        ("lambda-runtime-aws-request-id", request.id.clone()),
        (
            "lambda-runtime-deadline-ms",
            request.deadline_ms.to_string(),
        ),
        ("lambda-runtime-invoked-function-arn", arn),
        (
            "lambda-runtime-trace-id",
            format!(
                "Root=1-{:08x}-{}",
                epoch_ms() / 1000,
                &request.id.replace('-', "")[..24]
            ),
        ),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    (StatusCode::OK, headers, request.payload).into_response()
}

/// Hands the result to the waiting invocation, unless fault injection kills the container
/// first (the work is done but the caller never hears of it: the worst moment to crash).
fn complete(container: &Arc<Container>, id: &str, outcome: Outcome) -> StatusCode {
    let mut current = container.current.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_ref() {
        Some(p) if p.id == id => {}
        _ => return StatusCode::BAD_REQUEST,
    }
    if current.as_ref().is_some_and(|p| p.kill_planned) {
        drop(current);
        container.kill();
        return StatusCode::ACCEPTED;
    }
    let pending = current.take().expect("checked above");
    drop(current);
    let _ = pending.reply.send(outcome);
    StatusCode::ACCEPTED
}

async fn respond(
    State(container): State<Arc<Container>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    complete(&container, &id, Outcome::Success(body.to_vec()))
}

async fn report_error(
    State(container): State<Arc<Container>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error_type = parsed["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message = parsed["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let payload = json!({"errorType": error_type, "errorMessage": message}).to_string();
    complete(
        &container,
        &id,
        Outcome::FunctionError {
            error_type,
            message,
            payload: payload.into_bytes(),
        },
    )
}

async fn init_error(State(container): State<Arc<Container>>, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    container.write_log(&format!("INIT_REPORT Status: error {parsed}"));
    if let Some(pending) = container.take_pending() {
        let error_type = parsed["errorType"].as_str().unwrap_or("Runtime.InitError");
        let message = parsed["errorMessage"].as_str().unwrap_or_default();
        let _ = pending
            .reply
            .send(sandbox_error(&pending.id, error_type, message));
    }
    container.kill();
    StatusCode::ACCEPTED
}

pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn iso_now() -> String {
    leasehold_asl::values::iso_millis(epoch_ms() as i64)
}

fn chrono_day() -> String {
    iso_now()[..10].replace('-', "/")
}
