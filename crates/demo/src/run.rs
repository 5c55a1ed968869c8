//! One run: the load harness over one child workflow, with live progress, then everything the
//! report needs, read from the sources after the run has settled.

use super::error::DemoError;
use super::history::{Facts, Outcome, analyze, outcome_of_output};
use super::sampler::{Sampler, Series};
use super::sources::{Sources, StackStats, flush_status, global_status, millis, now_ms};
use mysql_async::Conn;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long to wait, after a run, for its leases to come back and its connections to close:
/// draining leases (of stopped or crashed queries) need the query function's timeout first.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// How long to wait for the database's connections to drop to zero after a run.
pub const CONNECTIONS_SETTLE_LIMIT: Duration = Duration::from_secs(15);
/// How many histories are read at once.
const HISTORY_READERS: usize = 8;
/// The server counters a run compares before and after.
pub const COUNTERS: [&str; 3] = [
    "Connection_errors_max_connections",
    "Max_used_connections",
    "Aborted_connects",
];

/// How the connection workflow waits for a lease: its input's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `AcquireQueued`: waits in the pool's queue and is handed a released slot.
    Queued,
    /// `Acquire`: retries with backoff while the pool is full.
    Polling,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Queued => "queued",
            Mode::Polling => "polling",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `queued`, `polling` or `ungoverned` (in the hotspot scenario the run and the
    /// application, `shares-hot`): the progress line's and the harness's name.
    pub name: String,
    /// How the child takes leases; `None` when it takes none (ungoverned).
    pub mode: Option<Mode>,
    pub harness_machine: String,
    pub child_machine: String,
    pub input: Value,
    /// Stop the harness after this long and start the same load again at once.
    pub abort_after: Option<Duration>,
    /// Start the harness this long after the run's first one started (`None` or zero: right
    /// after it).
    pub start_after: Option<Duration>,
}

/// Everything measured in one run, before it is summed up.
#[derive(Debug)]
pub struct RunData {
    pub plan: Plan,
    pub harness_arn: String,
    /// The harness that was stopped part way (`Plan::abort_after`), whose children count too.
    pub aborted_harness_arn: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub summary: Value,
    pub facts: Vec<Facts>,
    pub series: Series,
    pub metrics: BTreeMap<String, Vec<(i64, f64)>>,
    /// The same metrics per application (dimension `Application`), when asked for.
    pub app_metrics: BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>>,
    pub counters_before: BTreeMap<String, i64>,
    pub counters_after: BTreeMap<String, i64>,
    pub stats_before: StackStats,
    pub stats_after: StackStats,
    pub settled: Settled,
}

impl Plan {
    /// Whether the child takes leases (the connection workflow).
    pub fn governed(&self) -> bool {
        self.mode.is_some()
    }
}

/// What was left once a run had settled (or the wait for it ended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// The pool record's `inUse`.
    pub leases: i64,
    /// Lease items in the table.
    pub lease_records: i64,
    /// The pool record's `waiting`.
    pub waiters: i64,
    /// Waiter items in the table.
    pub waiter_records: i64,
    /// Database connections (last sample).
    pub connections: i64,
    /// How long after the harness ended the wait took.
    pub ms: i64,
}

/// Counts of finished children, for the progress line.
#[derive(Default)]
struct Tally {
    seen: HashMap<String, Option<Outcome>>,
}

impl Tally {
    fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let (mut finished, mut served, mut fallback, mut failed) = (0, 0, 0, 0);
        for outcome in self.seen.values().flatten() {
            finished += 1;
            match outcome {
                Outcome::Served => served += 1,
                Outcome::FromCache | Outcome::Shed => fallback += 1,
                Outcome::Failed(_) => failed += 1,
                Outcome::Running => {}
            }
        }
        (self.seen.len(), finished, served, fallback, failed)
    }
}

struct Progress {
    tty: bool,
    last_plain: Instant,
}

impl Progress {
    fn new() -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last_plain: Instant::now(),
        }
    }

    /// On a terminal the line is redrawn about once a second; in a log, one line every 5 s.
    fn show(&mut self, line: &str, last: bool) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if last {
                let _ = writeln!(err);
            }
        } else if last || self.last_plain.elapsed() >= Duration::from_secs(5) {
            let _ = writeln!(err, "{line}");
            self.last_plain = Instant::now();
        }
        let _ = err.flush();
    }
}

/// Runs the harness once and gathers the figures.
pub async fn run(
    sources: &Arc<Sources>,
    admin: &Arc<Mutex<Conn>>,
    plan: Plan,
    executions: u32,
) -> Result<RunData, DemoError> {
    let name = plan.name.clone();
    let mut runs = run_together(sources, admin, &name, vec![plan], executions, None).await?;
    Ok(runs.remove(0))
}

/// Extra sampling for a run of several applications: the records per application, and the
/// applications whose CloudWatch metrics are read back.
#[derive(Debug, Clone, Default)]
pub struct AppSampling {
    pub apps: Vec<String>,
}

/// One harness of a run, while it goes on.
struct Harness {
    arn: String,
    aborted: Option<String>,
    ended: Option<(String, i64, Option<String>, Option<String>)>,
}

/// Runs several harnesses at once, started in the order given (each as soon as the one before
/// it has started), and gathers the figures: one [`RunData`] per plan, each with its own
/// children, all with the same samples, counters and settling, and the same start (the first
/// harness's), so that their times line up. `executions` is the total, for the progress line.
pub async fn run_together(
    sources: &Arc<Sources>,
    admin: &Arc<Mutex<Conn>>,
    name: &str,
    plans: Vec<Plan>,
    executions: u32,
    apps: Option<AppSampling>,
) -> Result<Vec<RunData>, DemoError> {
    // A clean start: the server's high-water marks and counters begin now.
    {
        let mut conn = admin.lock().await;
        flush_status(&mut conn).await?;
    }
    let counters_before = {
        let mut conn = admin.lock().await;
        global_status(&mut conn, &COUNTERS).await?
    };
    let stats_before = sources.stack_stats().await?;
    let sampler = match &apps {
        Some(_) => Sampler::start_with_apps(sources.clone(), admin.clone()),
        None => Sampler::start(sources.clone(), admin.clone()),
    };

    let mut harnesses = Vec::with_capacity(plans.len());
    let mut start_ms = None;
    let first_started = tokio::time::Instant::now();
    for plan in &plans {
        if let Some(after) = plan.start_after {
            tokio::time::sleep_until(first_started + after).await;
        }
        let (arn, started) = start_harness(sources, plan, "").await?;
        start_ms.get_or_insert(started);
        harnesses.push(Harness {
            arn,
            aborted: None,
            ended: None,
        });
    }
    let start_ms = start_ms.unwrap_or_else(now_ms);
    let mut child_machines: Vec<&str> = plans.iter().map(|p| p.child_machine.as_str()).collect();
    child_machines.sort_unstable();
    child_machines.dedup();

    // Live progress until every harness has ended.
    watch(
        sources,
        &sampler,
        &plans,
        &mut harnesses,
        &child_machines,
        start_ms,
        (name, executions),
    )
    .await?;
    for (plan, harness) in plans.iter().zip(&harnesses) {
        if let Some((status, _, _, error)) = &harness.ended
            && status != "SUCCEEDED"
        {
            let _ = sampler.finish().await;
            return Err(DemoError::Harness {
                run: plan.name.clone(),
                status: status.clone(),
                detail: error.clone().unwrap_or_else(|| "no error given".into()),
            });
        }
    }

    let settled = settle(sources, &sampler, &child_machines, start_ms).await?;
    let series = sampler.finish().await;
    let counters_after = {
        let mut conn = admin.lock().await;
        global_status(&mut conn, &COUNTERS).await?
    };
    let stats_after = wait_for_metrics(sources).await?;

    // The children of these harness executions, from their own histories.
    let mut children: Vec<String> = Vec::new();
    for machine in &child_machines {
        children.extend(
            sources
                .list_executions(machine)
                .await?
                .into_iter()
                .filter(|e| e.start_ms >= start_ms)
                .map(|e| e.arn),
        );
    }
    let all_facts = read_histories(sources, children).await?;

    let metrics = sources
        .pool_metrics(start_ms, now_ms(), None)
        .await
        .unwrap_or_default();
    let mut app_metrics = BTreeMap::new();
    for app in apps.iter().flat_map(|a| &a.apps) {
        let read = sources
            .pool_metrics(start_ms, now_ms(), Some(app))
            .await
            .unwrap_or_default();
        app_metrics.insert(app.clone(), read);
    }

    let mut runs = Vec::with_capacity(plans.len());
    for (plan, harness) in plans.into_iter().zip(harnesses) {
        let (_, end_ms, output, _) = harness.ended.unwrap_or_default();
        let mut facts: Vec<Facts> = all_facts
            .iter()
            .filter(|f| {
                f.started_by.as_deref() == Some(harness.arn.as_str())
                    || f.started_by.is_some() && f.started_by == harness.aborted
            })
            .cloned()
            .collect();
        facts.sort_by_key(|f| f.start_ms);
        let summary: Value = output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or(Value::Null);
        runs.push(RunData {
            plan,
            harness_arn: harness.arn,
            aborted_harness_arn: harness.aborted,
            start_ms,
            end_ms,
            summary,
            facts,
            series: series.clone(),
            metrics: metrics.clone(),
            app_metrics: app_metrics.clone(),
            counters_before: counters_before.clone(),
            counters_after: counters_after.clone(),
            stats_before: stats_before.clone(),
            stats_after: stats_after.clone(),
            settled,
        });
    }
    Ok(runs)
}

/// Shows live progress until every harness has ended, stopping and restarting a harness whose
/// plan asks for it.
async fn watch(
    sources: &Arc<Sources>,
    sampler: &Sampler,
    plans: &[Plan],
    harnesses: &mut [Harness],
    child_machines: &[&str],
    start_ms: i64,
    (name, executions): (&str, u32),
) -> Result<(), DemoError> {
    let mut tally = Tally::default();
    let mut progress = Progress::new();
    let clock = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for machine in child_machines {
            update_tally(sources, machine, start_ms, &mut tally).await?;
        }
        for (plan, harness) in plans.iter().zip(harnesses.iter_mut()) {
            if harness.ended.is_some() {
                continue;
            }
            let described = sources
                .sfn
                .describe_execution()
                .execution_arn(&harness.arn)
                .send()
                .await
                .map_err(|e| DemoError::service("describing the harness execution", e))?;
            let status = described.status().as_str().to_owned();
            if status == "RUNNING"
                && harness.aborted.is_none()
                && plan
                    .abort_after
                    .is_some_and(|after| clock.elapsed() >= after)
            {
                // What an operator does to a load gone wrong: stop it, then start again.
                stop_harness(sources, &harness.arn).await?;
                let (next, _) = start_harness(sources, plan, "-again").await?;
                harness.aborted = Some(std::mem::replace(&mut harness.arn, next));
                continue;
            }
            if status != "RUNNING" {
                harness.ended = Some((
                    status,
                    described.stop_date().map_or_else(now_ms, millis),
                    described.output().map(str::to_owned),
                    described.error().map(str::to_owned),
                ));
            }
        }
        let done = harnesses.iter().all(|h| h.ended.is_some());
        let (started, finished, served, fallback, failed) = tally.counts();
        let mut line = format!(
            "{:<10} {:>5.0} s  started {started:>4}/{executions}  finished {finished:>4}  served {served:>4}  fallback {fallback:>4}  failed {failed:>4}  |  db connections {:>3}  leases {:>3}  waiting {:>3}",
            name,
            clock.elapsed().as_secs_f64(),
            sampler.latest.connections.load(Ordering::Relaxed),
            sampler.latest.leases_in_use.load(Ordering::Relaxed),
            sampler.latest.waiting.load(Ordering::Relaxed),
        );
        let per_app = sampler
            .latest
            .apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !per_app.is_empty() {
            line.push_str("  |  ");
            line.push_str(&per_app);
        }
        progress.show(&line, done);
        if done {
            break;
        }
    }
    Ok(())
}

/// Waits for the run to settle: the cleanup path releases the leases of failed children and
/// withdraws their waiters, the reclaim frees drained leases and removes waiters past their
/// deadline, connections of killed containers close when their query ends. Bounded: what
/// remains is reported.
async fn settle(
    sources: &Sources,
    sampler: &Sampler,
    child_machines: &[&str],
    start_ms: i64,
) -> Result<Settled, DemoError> {
    let settle_start = Instant::now();
    loop {
        let (_, leases, waiters) = sources.pool_record().await?;
        let lease_records = sources.lease_records().await?;
        let waiter_records = sources.waiter_records().await?;
        let connections = sampler.latest.connections.load(Ordering::Relaxed);
        let mut running = false;
        for machine in child_machines {
            running |= sources
                .list_executions(machine)
                .await?
                .iter()
                .any(|e| e.start_ms >= start_ms && e.status == "RUNNING");
        }
        let now = Settled {
            leases,
            lease_records,
            waiters,
            waiter_records,
            connections,
            ms: settle_start.elapsed().as_millis() as i64,
        };
        // Other clients of a shared database may keep connections open: wait for those of
        // the run to close only for a while.
        let quiet = connections == 0 || settle_start.elapsed() >= CONNECTIONS_SETTLE_LIMIT;
        let settled = leases == 0
            && lease_records == 0
            && waiters == 0
            && waiter_records == 0
            && !running
            && quiet;
        if settled || settle_start.elapsed() >= SETTLE_LIMIT {
            return Ok(now);
        }
        if (lease_records > 0 || waiter_records > 0) && !running {
            // Draining leases and abandoned waiters go only through reclaim: ask for it, as
            // the schedule would (it runs every few minutes, longer than a demo waits).
            // Reclaim is idempotent, and the release function's containers may be killed in
            // a kill run: a failed call is simply made again on the next pass.
            if let Err(error) = sources.reclaim().await {
                eprintln!("leasehold-demo: reclaim failed, asking again: {error}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts the run's harness; its name ends in `suffix`. Returns its ARN and start (epoch ms).
async fn start_harness(
    sources: &Sources,
    plan: &Plan,
    suffix: &str,
) -> Result<(String, i64), DemoError> {
    let name = format!("demo-{}-{}{suffix}", plan.name, now_ms());
    let started = sources
        .sfn
        .start_execution()
        .state_machine_arn(&plan.harness_machine)
        .name(&name)
        .input(plan.input.to_string())
        .send()
        .await
        .map_err(|e| DemoError::service(format!("starting the {} harness", plan.name), e))?;
    Ok((
        started.execution_arn().to_owned(),
        millis(started.start_date()),
    ))
}

/// Stops a harness (and so its running children) and waits until it has ended (bounded).
async fn stop_harness(sources: &Sources, arn: &str) -> Result<(), DemoError> {
    sources
        .sfn
        .stop_execution()
        .execution_arn(arn)
        .cause("leasehold-demo: --abort-harness-after")
        .send()
        .await
        .map_err(|e| DemoError::service("stopping the harness", e))?;
    for _ in 0..100 {
        let described = sources
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| DemoError::service("describing the stopped harness", e))?;
        if described.status().as_str() != "RUNNING" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(DemoError::Setup(format!(
        "the harness {arn} did not stop within 10 s"
    )))
}

/// Lists the run's children and looks at each once it has finished.
async fn update_tally(
    sources: &Sources,
    machine: &str,
    start_ms: i64,
    tally: &mut Tally,
) -> Result<(), DemoError> {
    for child in sources.list_executions(machine).await? {
        if child.start_ms < start_ms {
            continue;
        }
        let known = tally.seen.entry(child.arn.clone()).or_insert(None);
        if known.is_some() || child.status == "RUNNING" {
            continue;
        }
        *known = Some(if child.status == "SUCCEEDED" {
            let described = sources
                .sfn
                .describe_execution()
                .execution_arn(&child.arn)
                .send()
                .await
                .map_err(|e| DemoError::service("describing a child execution", e))?;
            let output: Value = described
                .output()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(json!({}));
            outcome_of_output(&output)
        } else {
            Outcome::Failed(child.status.clone())
        });
    }
    Ok(())
}

/// How often the forwarded metric count is compared: longer than the stack's metrics
/// forwarder gathers a batch (500 ms), so that an unchanged count means nothing is pending.
const METRICS_SETTLE_EVERY: Duration = Duration::from_secs(1);

/// The stack turns log lines into metrics as they come, in batches; waits until the count
/// stops growing (at most 10 s) and returns the last `/stats`.
async fn wait_for_metrics(sources: &Sources) -> Result<StackStats, DemoError> {
    let mut last = sources.stack_stats().await?;
    for _ in 0..10 {
        tokio::time::sleep(METRICS_SETTLE_EVERY).await;
        let now = sources.stack_stats().await?;
        let same = now.metrics_published == last.metrics_published;
        last = now;
        if same {
            break;
        }
    }
    Ok(last)
}

async fn read_histories(
    sources: &Arc<Sources>,
    arns: Vec<String>,
) -> Result<Vec<Facts>, DemoError> {
    let queue = Arc::new(std::sync::Mutex::new(arns));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..HISTORY_READERS {
        let (sources, queue) = (sources.clone(), queue.clone());
        readers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(arn) = next else { return Ok(out) };
                out.push(analyze(&sources.history(&arn).await?));
            }
        });
    }
    let mut facts = Vec::new();
    while let Some(result) = readers.join_next().await {
        let part: Result<Vec<Facts>, DemoError> =
            result.map_err(|e| DemoError::service("reading histories", e))?;
        facts.extend(part?);
    }
    Ok(facts)
}
