//! The report: the JSON document (its schema is in docs/report.md; names are a contract:
//! extend, never rename) and its plain-text rendering for the terminal.

use super::fifo::FifoIdeal;
use super::history::{ACQUIRE_STATE, Outcome, QUEUED_ACQUIRE_STATE};
use super::run::{Mode, RunData};
use super::sampler::OWN_CONNECTIONS;
use super::sources::StackStats;
use super::stats::{Spread, mean, round1, round2};
use leasehold_local::lambda::FunctionStats;
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: String,
    /// The pool's budget, read from its record in the lease table.
    pub budget: i64,
    /// MariaDB's `max_connections` during the runs.
    pub max_connections: i64,
    /// Connections kept out of the budget for administrators.
    pub admin_reserve: i64,
    pub load: Load,
    pub runs: Runs,
    /// What a perfect FIFO queue over the budget would give for this load.
    pub fifo_ideal: FifoIdeal,
    pub checks: Checks,
}

impl Report {
    /// Containers were killed or harnesses stopped on purpose: throughput and latency say
    /// little then, so only the safety checks decide the demo's exit status.
    pub fn faults_injected(&self) -> bool {
        self.load.kill_probability > 0.0 || self.load.abort_harness_after_seconds.is_some()
    }

    /// Whether the demo kept what it promises (its exit status).
    pub fn passed(&self) -> bool {
        self.checks.passed(self.faults_injected())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    pub executions: u32,
    pub concurrency: u32,
    pub hold_ms: u64,
    pub pool: String,
    pub query: String,
    pub kill_probability: f64,
    pub seed: u64,
    /// `--abort-harness-after`: each run's harness was stopped after this many seconds and
    /// the same load started again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_harness_after_seconds: Option<u64>,
}

/// The three runs. `governed` is the polling run: the name comes from the time it was the only
/// governed run, and stays (docs/report.md).
#[derive(Debug, Clone, Serialize)]
pub struct Runs {
    pub governed: RunReport,
    pub ungoverned: RunReport,
    pub queued: RunReport,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// `[ms since the run's start, value]` pairs.
    pub connections: Vec<(i64, i64)>,
    pub leases_in_use: Vec<(i64, i64)>,
    pub remaining_connections: Vec<(i64, f64)>,
    pub no_connections_left_error: Vec<(i64, f64)>,
    /// `DatabaseBusy` failures per second, from the histories: `[second's start, count]`.
    pub database_busy_errors: Vec<(i64, u64)>,
    /// Requests in the pool's queue: the pool record's `waiting`, sampled with `inUse`.
    pub waiting: Vec<(i64, i64)>,
    /// CloudWatch `WaitingRequests`, maximum per second.
    pub waiting_requests: Vec<(i64, f64)>,
    /// CloudWatch `WaitTime` (ms, one per request served after waiting), average per second.
    pub wait_time: Vec<(i64, f64)>,
    /// CloudWatch `WaitTime`, maximum per second.
    pub wait_time_maximum: Vec<(i64, f64)>,
}

/// The upper ends of the wait histogram's buckets (ms); the last bucket has no upper end.
/// The same for every run, so that their histograms can be compared bar by bar.
pub const WAIT_BUCKETS_MS: [i64; 15] = [
    100, 250, 500, 1000, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000,
    90_000,
];

/// One bar of a histogram: `fromMs` ≤ wait < `toMs` (`toMs` null: no upper end).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub count: usize,
}

/// Counts waits into [`WAIT_BUCKETS_MS`].
pub fn histogram(waits: &[i64]) -> Vec<Bucket> {
    let mut from = 0;
    let mut out = Vec::with_capacity(WAIT_BUCKETS_MS.len() + 1);
    for to in WAIT_BUCKETS_MS.into_iter().map(Some).chain([None]) {
        let count = waits
            .iter()
            .filter(|&&w| w >= from && to.is_none_or(|to| w < to))
            .count();
        out.push(Bucket {
            from_ms: from,
            to_ms: to,
            count,
        });
        from = to.unwrap_or(from);
    }
    out
}

/// How long the children of a governed run stayed in their acquire state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitDistribution {
    /// `AcquireQueued` (queued run) or `Acquire` (polling run).
    pub state: &'static str,
    /// `count`, `p50Ms`, `p95Ms`, `p99Ms`, `maxMs`, `meanMs` of every child that left the
    /// state, with a lease or without.
    #[serde(flatten)]
    pub spread: Spread,
    /// Of those, the ones that left it with a lease.
    pub granted: usize,
    pub histogram: Vec<Bucket>,
}

/// A run against the FIFO ideal ([`FifoIdeal`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatioToIdeal {
    /// `servedPerSecond` ÷ the ideal's: 1 is as fast as a perfect queue, lower is slower.
    pub served_per_second: Option<f64>,
    /// `p99Ms` ÷ the ideal's `latencyP99Ms`: 1 is as quick as a perfect queue, 3 three times
    /// as long.
    pub p99_latency: Option<f64>,
    /// `leaseWait.p99Ms` ÷ the ideal's `waitP99Ms`; null without leases or when the ideal
    /// never waits.
    pub p99_wait: Option<f64>,
}

/// Compares a run with the ideal; quotients with a zero or missing side are null.
pub fn ratio_to_ideal(run: &RunReport, ideal: &FifoIdeal) -> RatioToIdeal {
    let quotient = |a: Option<f64>, b: f64| a.filter(|_| b > 0.0).map(|a| round2(a / b));
    RatioToIdeal {
        served_per_second: quotient(Some(run.served_per_second), ideal.served_per_second),
        p99_latency: quotient(run.p99_ms.map(|p| p as f64), ideal.latency_p99_ms),
        p99_wait: quotient(
            run.lease_wait
                .as_ref()
                .and_then(|w| w.spread.p99_ms)
                .map(|p| p as f64),
            ideal.wait_p99_ms,
        ),
    }
}

/// Counts instants (ms since the run's start) per whole second.
pub fn per_second(instants: impl IntoIterator<Item = i64>) -> Vec<(i64, u64)> {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for t in instants {
        *counts.entry(t.div_euclid(1000) * 1000).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub harness_execution_arn: String,
    /// The harness stopped part way by `--abort-harness-after` (its children are counted too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted_harness_execution_arn: Option<String>,
    pub child_state_machine_arn: String,
    /// The children's input `mode`: `queued`, `polling`, or null (no leases).
    pub acquire_mode: Option<&'static str>,
    pub started_at: String,
    pub duration_ms: i64,
    pub executions: u64,
    pub served: u64,
    pub fallback: u64,
    pub from_cache: u64,
    pub shed: u64,
    pub failed: u64,
    pub failed_by_error: BTreeMap<String, u64>,
    /// The harness's own summary, as it returned it.
    pub harness_summary: Value,
    /// Query attempts that failed with `DatabaseBusy` (MySQL error 1040, too many
    /// connections), counted in the children's histories.
    pub database_busy_errors: u64,
    /// The server's view: failed connection attempts (`Aborted_connects`, which also counts
    /// connections of killed containers that died while connecting) ...
    pub refused_connections: i64,
    /// ... and the part of them refused before authentication
    /// (`Connection_errors_max_connections`; MariaDB refuses most 1040s after it, uncounted).
    pub connection_errors_max_connections: i64,
    /// The most connections open at once, the sampler's own left out.
    pub peak_connections: i64,
    /// How far `peak_connections` went above the pool's budget (0 when it never did): a
    /// governed run must keep this at 0, whatever is killed or stopped.
    pub peak_connections_above_budget: i64,
    pub peak_sampled_connections: i64,
    /// `Max_used_connections` as the server reports it (includes the sampler's connection).
    pub max_used_connections: i64,
    pub sampler_connections: i64,
    pub connections_at_end: i64,
    pub peak_leases_in_use: i64,
    pub leases_held_at_end: i64,
    pub lease_records_at_end: i64,
    /// The pool record's `waiting` once the run had settled.
    pub waiters_at_end: i64,
    /// Waiter items left in the lease table.
    pub waiter_records_at_end: i64,
    /// The most requests waiting in the pool's queue at once (sampled).
    pub peak_waiting: i64,
    pub lease_settle_ms: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub latency: Spread,
    pub served_latency: Spread,
    pub acquire_wait: Option<Spread>,
    /// Time in the acquire state, granted or not, with its histogram; null ungoverned.
    pub lease_wait: Option<WaitDistribution>,
    /// The broker's `waitedMs` of the served children (enqueue → hand-over); queued only.
    pub queue_wait: Option<Spread>,
    /// Per served queued child, its lease wait minus the broker's `waitedMs`: the acquire
    /// call before the request queued, and the hand-over's way back to the waiting task
    /// (`SendTaskSuccess` → `TaskSucceeded`); queued only.
    pub queue_overhead: Option<Spread>,
    /// `AcquireQueued` attempts that timed out without a slot.
    pub queue_timeouts: u64,
    pub connections_exhausted_retries: u64,
    pub connections_exhausted_errors: u64,
    pub crashed_tasks: u64,
    pub mean_hold_ms: Option<f64>,
    /// Mean of the acquire state's `TaskSucceeded` → Release `TaskSucceeded` of served
    /// children: a slot's time under one lease; beyond `meanHoldMs` it held no connection.
    pub mean_lease_held_ms: Option<f64>,
    pub connection_limit: i64,
    pub served_per_second: f64,
    pub physical_limit_per_second: Option<f64>,
    pub ratio_to_physical_limit: Option<f64>,
    /// Against `fifoIdeal`; filled in once every run is known.
    pub ratio_to_fifo_ideal: Option<RatioToIdeal>,
    pub container_kills: u64,
    /// The stack's own counters per function, without its gauges (`counters_only`).
    #[serde(serialize_with = "counters_only")]
    pub functions: BTreeMap<String, FunctionStats>,
    pub samples: Samples,
    pub series: Series,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Samples {
    pub connections: usize,
    pub leases: usize,
    pub missed: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    pub governed_no_database_busy: bool,
    pub governed_peak_within_budget_plus_reserve: bool,
    pub governed_no_connections_above_budget: bool,
    pub governed_leases_never_above_budget: bool,
    pub governed_no_leases_held_at_end: bool,
    pub ungoverned_shows_database_busy: bool,
    pub queued_no_database_busy: bool,
    pub queued_no_connections_above_budget: bool,
    /// No lease and no waiter left: counters and records.
    pub queued_leases_returned: bool,
    /// `servedPerSecond` ≥ 0.9 × `physicalLimitPerSecond` (a goal, see [`Checks::passed`]).
    pub queued_served_near_physical_limit: bool,
    /// The queued run's `p99Ms` ≤ a third of the polling run's (a goal).
    pub queued_p99_at_most_a_third_of_polling: bool,
}

/// The share of the physical limit the queued run must serve.
pub const NEAR_PHYSICAL_LIMIT: f64 = 0.9;

impl Checks {
    /// What leasehold promises for the governed (polling) run.
    pub fn governed_ok(&self) -> bool {
        self.governed_no_database_busy
            && self.governed_peak_within_budget_plus_reserve
            && self.governed_no_connections_above_budget
            && self.governed_no_leases_held_at_end
            && self.governed_leases_never_above_budget
    }

    /// What leasehold promises for the queued run, whatever is killed or stopped.
    pub fn queued_safe(&self) -> bool {
        self.queued_no_database_busy
            && self.queued_no_connections_above_budget
            && self.queued_leases_returned
    }

    /// What the queue is for: throughput near the physical limit, a short tail.
    pub fn queued_goals_met(&self) -> bool {
        self.queued_served_near_physical_limit && self.queued_p99_at_most_a_third_of_polling
    }

    /// The demo's verdict: the promises always; the goals only when no fault was injected,
    /// since killed containers and stopped harnesses cost time by design.
    pub fn passed(&self, faults_injected: bool) -> bool {
        self.governed_ok() && self.queued_safe() && (faults_injected || self.queued_goals_met())
    }
}

fn counter(map: &BTreeMap<String, i64>, name: &str) -> i64 {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or(0, |(_, v)| *v)
}

/// The stack's gauges (containers live now, their peak since it started): they say nothing
/// about one run, so the report has the counters only.
const GAUGES: [&str; 2] = ["containersLive", "peakContainers"];

fn counters_only<S: Serializer>(
    functions: &BTreeMap<String, FunctionStats>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(functions.len()))?;
    for (name, stats) in functions {
        let mut counters = serde_json::to_value(stats).map_err(S::Error::custom)?;
        if let Some(fields) = counters.as_object_mut() {
            for gauge in GAUGES {
                fields.shift_remove(gauge);
            }
        }
        map.serialize_entry(name, &counters)?;
    }
    map.end()
}

/// Per-function counters of `/stats`, after minus before, for functions that ran.
pub fn function_deltas(before: &StackStats, after: &StackStats) -> BTreeMap<String, FunctionStats> {
    let mut out = BTreeMap::new();
    for (name, now) in &after.functions {
        let then = before.functions.get(name).cloned().unwrap_or_default();
        let counts = FunctionStats {
            invocations: now.invocations.saturating_sub(then.invocations),
            cold_starts: now.cold_starts.saturating_sub(then.cold_starts),
            errors: now.errors.saturating_sub(then.errors),
            throttles: now.throttles.saturating_sub(then.throttles),
            timeouts: now.timeouts.saturating_sub(then.timeouts),
            kills: now.kills.saturating_sub(then.kills),
            crashes: now.crashes.saturating_sub(then.crashes),
            ..FunctionStats::default()
        };
        if counts != FunctionStats::default() {
            // `leasehold-demo-QueryFunction` → `QueryFunction`: the template's logical id.
            let short = name.rsplit('-').next().unwrap_or(name).to_owned();
            out.insert(short, counts);
        }
    }
    out
}

/// Sums up one run. `connection_limit` is what the run may use: the budget when governed,
/// `max_connections` when not.
pub fn run_report(data: &RunData, connection_limit: i64, budget: i64) -> RunReport {
    let facts = &data.facts;
    let count =
        |f: &dyn Fn(&Outcome) -> bool| facts.iter().filter(|x| f(&x.outcome)).count() as u64;
    let served = count(&|o| *o == Outcome::Served);
    let from_cache = count(&|o| *o == Outcome::FromCache);
    let shed = count(&|o| *o == Outcome::Shed);
    let failed = count(&|o| matches!(o, Outcome::Failed(_)));
    let mut failed_by_error = BTreeMap::new();
    for f in facts {
        if let Outcome::Failed(error) = &f.outcome {
            *failed_by_error.entry(error.clone()).or_insert(0) += 1;
        }
    }
    let durations: Vec<i64> = facts.iter().filter_map(|f| f.duration_ms()).collect();
    let served_durations: Vec<i64> = facts
        .iter()
        .filter(|f| f.outcome == Outcome::Served)
        .filter_map(|f| f.duration_ms())
        .collect();
    let waits: Vec<i64> = facts.iter().filter_map(|f| f.acquire_wait_ms).collect();
    let mode = data.plan.mode;
    let governed = mode.is_some();
    let lease_waits: Vec<i64> = facts.iter().filter_map(|f| f.lease_wait_ms).collect();
    let queue_waits: Vec<i64> = facts.iter().filter_map(|f| f.queue_waited_ms).collect();
    let lease_held: Vec<i64> = facts.iter().filter_map(|f| f.lease_held_ms).collect();
    let holds: Vec<i64> = facts
        .iter()
        .flat_map(|f| f.query_hold_ms.iter().copied())
        .collect();
    let mean_hold_ms = mean(&holds);
    let duration_ms = (data.end_ms - data.start_ms).max(1);
    let served_per_second = served as f64 / (duration_ms as f64 / 1000.0);
    let physical = mean_hold_ms
        .filter(|h| *h > 0.0)
        .map(|h| connection_limit as f64 / (h / 1000.0));
    let latency = Spread::of(&durations);
    let max_used = counter(&data.counters_after, "Max_used_connections");
    let peak_sampled = data
        .series
        .connections
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(0);
    let functions = function_deltas(&data.stats_before, &data.stats_after);
    let relative = |t: i64| t - data.start_ms;
    let delta =
        |name: &str| counter(&data.counters_after, name) - counter(&data.counters_before, name);
    let peak_connections = (max_used - OWN_CONNECTIONS).max(peak_sampled);
    let metric = |name: &str| -> Vec<(i64, f64)> {
        data.metrics
            .get(name)
            .map(|s| s.iter().map(|&(t, v)| (relative(t), v)).collect())
            .unwrap_or_default()
    };
    RunReport {
        harness_execution_arn: data.harness_arn.clone(),
        aborted_harness_execution_arn: data.aborted_harness_arn.clone(),
        child_state_machine_arn: data.plan.child_machine.clone(),
        acquire_mode: mode.map(Mode::as_str),
        started_at: leasehold_asl::values::iso_millis(data.start_ms),
        duration_ms,
        executions: facts.len() as u64,
        served,
        fallback: from_cache + shed,
        from_cache,
        shed,
        failed,
        failed_by_error,
        harness_summary: data.summary.clone(),
        database_busy_errors: facts.iter().map(|f| u64::from(f.busy_failures)).sum(),
        refused_connections: delta("Aborted_connects"),
        connection_errors_max_connections: delta("Connection_errors_max_connections"),
        peak_connections,
        peak_connections_above_budget: (peak_connections - budget).max(0),
        peak_sampled_connections: peak_sampled,
        max_used_connections: max_used,
        sampler_connections: OWN_CONNECTIONS,
        connections_at_end: data.settled.connections,
        peak_leases_in_use: data
            .series
            .leases_in_use
            .iter()
            .map(|p| p.1)
            .max()
            .unwrap_or(0),
        leases_held_at_end: data.settled.leases,
        lease_records_at_end: data.settled.lease_records,
        waiters_at_end: data.settled.waiters,
        waiter_records_at_end: data.settled.waiter_records,
        peak_waiting: data.series.waiting.iter().map(|p| p.1).max().unwrap_or(0),
        lease_settle_ms: data.settled.ms,
        p50_ms: latency.p50_ms,
        p95_ms: latency.p95_ms,
        p99_ms: latency.p99_ms,
        latency,
        served_latency: Spread::of(&served_durations),
        acquire_wait: governed.then(|| Spread::of(&waits)),
        lease_wait: mode.map(|mode| WaitDistribution {
            state: match mode {
                Mode::Queued => QUEUED_ACQUIRE_STATE,
                Mode::Polling => ACQUIRE_STATE,
            },
            spread: Spread::of(&lease_waits),
            granted: waits.len(),
            histogram: histogram(&lease_waits),
        }),
        queue_wait: (mode == Some(Mode::Queued)).then(|| Spread::of(&queue_waits)),
        queue_overhead: (mode == Some(Mode::Queued)).then(|| {
            let overheads: Vec<i64> = facts
                .iter()
                .filter_map(|f| Some(f.acquire_wait_ms? - f.queue_waited_ms?))
                .collect();
            Spread::of(&overheads)
        }),
        queue_timeouts: facts.iter().map(|f| u64::from(f.queue_timeouts)).sum(),
        connections_exhausted_retries: facts.iter().map(|f| u64::from(f.exhausted_retries)).sum(),
        connections_exhausted_errors: facts.iter().map(|f| u64::from(f.exhausted_failures)).sum(),
        crashed_tasks: facts.iter().map(|f| u64::from(f.crashed_tasks)).sum(),
        mean_hold_ms: mean_hold_ms.map(round1),
        mean_lease_held_ms: mean(&lease_held).map(round1),
        connection_limit,
        served_per_second: round2(served_per_second),
        physical_limit_per_second: physical.map(round2),
        ratio_to_physical_limit: physical.map(|p| round2(served_per_second / p)),
        ratio_to_fifo_ideal: None,
        container_kills: functions.values().map(|f| f.kills).sum(),
        functions,
        samples: Samples {
            connections: data.series.connections.len(),
            leases: data.series.leases_in_use.len(),
            missed: data.series.missed,
        },
        series: Series {
            connections: data
                .series
                .connections
                .iter()
                .map(|&(t, v)| (relative(t), v))
                .collect(),
            leases_in_use: data
                .series
                .leases_in_use
                .iter()
                .map(|&(t, v)| (relative(t), v))
                .collect(),
            remaining_connections: metric("remainingConnections"),
            no_connections_left_error: metric("noConnectionsLeftError"),
            database_busy_errors: per_second(
                facts
                    .iter()
                    .flat_map(|f| f.busy_at_ms.iter().map(|&t| relative(t))),
            ),
            waiting: data
                .series
                .waiting
                .iter()
                .map(|&(t, v)| (relative(t), v))
                .collect(),
            waiting_requests: metric("waitingRequests"),
            wait_time: metric("waitTime"),
            wait_time_maximum: metric("waitTimeMaximum"),
        },
    }
}

pub fn checks(
    budget: i64,
    reserve: i64,
    governed: &RunReport,
    ungoverned: &RunReport,
    queued: &RunReport,
) -> Checks {
    Checks {
        governed_no_database_busy: governed.database_busy_errors == 0
            && governed.connection_errors_max_connections == 0,
        governed_peak_within_budget_plus_reserve: governed.peak_connections <= budget + reserve,
        governed_no_connections_above_budget: governed.peak_connections_above_budget == 0,
        governed_leases_never_above_budget: governed.peak_leases_in_use <= budget,
        governed_no_leases_held_at_end: governed.leases_held_at_end == 0
            && governed.lease_records_at_end == 0,
        ungoverned_shows_database_busy: ungoverned.database_busy_errors > 0,
        queued_no_database_busy: queued.database_busy_errors == 0
            && queued.connection_errors_max_connections == 0,
        queued_no_connections_above_budget: queued.peak_connections_above_budget == 0,
        queued_leases_returned: queued.leases_held_at_end == 0
            && queued.lease_records_at_end == 0
            && queued.waiters_at_end == 0
            && queued.waiter_records_at_end == 0,
        queued_served_near_physical_limit: queued
            .physical_limit_per_second
            .is_some_and(|limit| queued.served_per_second >= NEAR_PHYSICAL_LIMIT * limit),
        queued_p99_at_most_a_third_of_polling: match (queued.p99_ms, governed.p99_ms) {
            (Some(queued), Some(polling)) => 3 * queued <= polling,
            _ => false,
        },
    }
}

/// Where a rendering goes: the terminal writes plain ASCII where the page writes typography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Terminal,
    Page,
}

impl Medium {
    fn pick(self, terminal: &'static str, page: &'static str) -> &'static str {
        match self {
            Medium::Terminal => terminal,
            Medium::Page => page,
        }
    }

    /// What stands for a missing figure.
    fn dash(self) -> &'static str {
        self.pick("-", "–")
    }
}

/// The runs in the order they ran and are shown: (column heading, run).
pub fn columns(report: &Report) -> [(&'static str, &RunReport); 3] {
    let r = &report.runs;
    [
        ("queued", &r.queued),
        ("polling", &r.governed),
        ("ungoverned", &r.ungoverned),
    ]
}

/// One row of the side-by-side table: a label and one cell per run (queued, polling,
/// ungoverned).
pub type Row = (&'static str, [String; 3]);

/// The figures of the three runs side by side.
pub fn figures(report: &Report, medium: Medium) -> Vec<Row> {
    let runs = columns(report).map(|(_, run)| run);
    let dash = medium.dash();
    let o = |v: Option<i64>| v.map_or_else(|| dash.to_owned(), |v| v.to_string());
    let of = |v: Option<f64>| v.map_or_else(|| dash.to_owned(), |v| format!("{v}"));
    let spread = |p50, p95, p99| format!("{} / {} / {}", o(p50), o(p95), o(p99));
    let wait = |r: &RunReport| {
        r.acquire_wait
            .as_ref()
            .map_or_else(|| dash.to_owned(), |w| spread(w.p50_ms, w.p95_ms, w.p99_ms))
    };
    let lease_wait = |r: &RunReport| {
        r.lease_wait.as_ref().map_or_else(
            || dash.to_owned(),
            |w| {
                let s = &w.spread;
                format!("{} / {}", spread(s.p50_ms, s.p95_ms, s.p99_ms), o(s.max_ms))
            },
        )
    };
    let limit = |r: &RunReport| {
        let per_second = of(r.physical_limit_per_second);
        match medium {
            Medium::Terminal => format!("{per_second} ({} conn.)", r.connection_limit),
            Medium::Page => format!("{per_second} ({})", r.connection_limit),
        }
    };
    let ratio = |f: fn(&RatioToIdeal) -> Option<f64>| {
        move |r: &RunReport| of(r.ratio_to_fifo_ideal.as_ref().and_then(f))
    };
    // A figure of the lease pool: a dash for the run that takes no leases.
    let leased = |f: &dyn Fn(&RunReport) -> String| {
        runs.map(|r| {
            if r.acquire_mode.is_some() {
                f(r)
            } else {
                dash.to_owned()
            }
        })
    };
    let all = |f: &dyn Fn(&RunReport) -> String| runs.map(f);
    vec![
        ("executions", all(&|r| r.executions.to_string())),
        ("served", all(&|r| r.served.to_string())),
        (
            "fallback (from cache / shed)",
            all(&|r| format!("{} ({} / {})", r.fallback, r.from_cache, r.shed)),
        ),
        ("failed", all(&|r| r.failed.to_string())),
        (
            "DatabaseBusy errors (MySQL 1040)",
            all(&|r| r.database_busy_errors.to_string()),
        ),
        (
            medium.pick(
                "connections refused (server count)",
                "connections refused (server: Aborted_connects)",
            ),
            all(&|r| r.refused_connections.to_string()),
        ),
        (
            medium.pick(
                "peak DB connections (sampled)",
                "peak connections (sampled)",
            ),
            all(&|r| format!("{} ({})", r.peak_connections, r.peak_sampled_connections)),
        ),
        (
            "connections above the budget",
            all(&|r| r.peak_connections_above_budget.to_string()),
        ),
        (
            medium.pick(
                "Max_used_connections (with sampler)",
                "Max_used_connections (incl. sampler)",
            ),
            all(&|r| r.max_used_connections.to_string()),
        ),
        (
            "peak leases in use",
            leased(&|r| r.peak_leases_in_use.to_string()),
        ),
        (
            "peak requests waiting",
            leased(&|r| r.peak_waiting.to_string()),
        ),
        (
            medium.pick("leases held at end", "leases held at the end"),
            all(&|r| r.leases_held_at_end.to_string()),
        ),
        (
            medium.pick("waiters left at end", "waiters left at the end"),
            leased(&|r| r.waiters_at_end.max(r.waiter_records_at_end).to_string()),
        ),
        (
            medium.pick(
                "latency p50 / p95 / p99 ms",
                "end-to-end p50 / p95 / p99 ms",
            ),
            all(&|r| spread(r.p50_ms, r.p95_ms, r.p99_ms)),
        ),
        (
            medium.pick(
                "wait p50 / p95 / p99 / max ms",
                "lease wait p50 / p95 / p99 / max ms",
            ),
            all(&lease_wait),
        ),
        ("acquire wait p50 / p95 / p99 ms", all(&wait)),
        (
            "ConnectionsExhausted retries",
            leased(&|r| r.connections_exhausted_retries.to_string()),
        ),
        (
            medium.pick("queue timeouts", "queue timeouts (no slot in time)"),
            leased(&|r| r.queue_timeouts.to_string()),
        ),
        ("mean connection hold ms", all(&|r| of(r.mean_hold_ms))),
        ("mean lease held ms", leased(&|r| of(r.mean_lease_held_ms))),
        (
            medium.pick(
                "queue overhead p50 / p99 ms",
                "queue overhead p50 / p99 ms (wait − waitedMs)",
            ),
            leased(&|r| {
                r.queue_overhead.as_ref().map_or_else(
                    || dash.to_owned(),
                    |s| format!("{} / {}", o(s.p50_ms), o(s.p99_ms)),
                )
            }),
        ),
        (
            "served per second",
            all(&|r| r.served_per_second.to_string()),
        ),
        (
            medium.pick(
                "physical limit per second",
                "physical limit per second (connections)",
            ),
            all(&limit),
        ),
        (
            "ratio to the physical limit",
            all(&|r| of(r.ratio_to_physical_limit)),
        ),
        (
            medium.pick("served/s vs FIFO ideal", "served per second ÷ FIFO ideal"),
            all(&ratio(|r| r.served_per_second)),
        ),
        (
            medium.pick("p99 latency vs FIFO ideal", "p99 latency ÷ FIFO ideal"),
            all(&ratio(|r| r.p99_latency)),
        ),
        ("container kills", all(&|r| r.container_kills.to_string())),
        (
            "duration s",
            all(&|r| format!("{:.1}", r.duration_ms as f64 / 1000.0)),
        ),
    ]
}

/// What a check stands for, which decides how a failure is shown and whether it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A promise: a failure fails the demo.
    Promise,
    /// A goal of the queue: fails the demo only when no fault was injected.
    Goal,
    /// What the ungoverned load showed; never fails the demo.
    Shown,
}

/// One check as a sentence, in the order of the JSON's `checks`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckLine {
    pub ok: bool,
    pub kind: CheckKind,
    pub text: String,
}

impl CheckLine {
    /// Whether this line's failure fails the demo.
    pub fn counts(&self, faults_injected: bool) -> bool {
        match self.kind {
            CheckKind::Promise => true,
            CheckKind::Goal => !faults_injected,
            CheckKind::Shown => false,
        }
    }
}

/// The checks as sentences, in the order of the JSON's `checks`.
pub fn check_lines(report: &Report, medium: Medium) -> Vec<CheckLine> {
    let c = &report.checks;
    let (q, g, u) = (
        &report.runs.queued,
        &report.runs.governed,
        &report.runs.ungoverned,
    );
    let le = medium.pick("<=", "≤");
    let ms = |v: Option<i64>| v.map_or_else(|| medium.dash().to_owned(), |v| format!("{v} ms"));
    let line = |ok, kind, text: String| CheckLine { ok, kind, text };
    use CheckKind::{Goal, Promise, Shown};
    vec![
        line(
            c.governed_no_database_busy,
            Promise,
            format!(
                "polling: no DatabaseBusy error ({})",
                g.database_busy_errors
            ),
        ),
        line(
            c.governed_peak_within_budget_plus_reserve,
            Promise,
            format!(
                "polling: peak connections {} {le} budget {} + admin reserve {}",
                g.peak_connections, report.budget, report.admin_reserve
            ),
        ),
        line(
            c.governed_no_connections_above_budget,
            Promise,
            format!(
                "polling: connections never above the budget {} (peak {} above)",
                report.budget, g.peak_connections_above_budget
            ),
        ),
        line(
            c.governed_leases_never_above_budget,
            Promise,
            format!(
                "polling: leases in use never above the budget (peak {})",
                g.peak_leases_in_use
            ),
        ),
        line(
            c.governed_no_leases_held_at_end,
            Promise,
            format!(
                "polling: no lease held at the end ({} in use, {} records)",
                g.leases_held_at_end, g.lease_records_at_end
            ),
        ),
        line(
            c.ungoverned_shows_database_busy,
            Shown,
            format!(
                "ungoverned: {} DatabaseBusy errors (MySQL 1040); {} executions failed",
                u.database_busy_errors, u.failed
            ),
        ),
        line(
            c.queued_no_database_busy,
            Promise,
            format!("queued: no DatabaseBusy error ({})", q.database_busy_errors),
        ),
        line(
            c.queued_no_connections_above_budget,
            Promise,
            format!(
                "queued: connections never above the budget {} (peak {}, {} above)",
                report.budget, q.peak_connections, q.peak_connections_above_budget
            ),
        ),
        line(
            c.queued_leases_returned,
            Promise,
            format!(
                "queued: no lease and no waiter left at the end ({} leases in use, {} records; {} waiting, {} records)",
                q.leases_held_at_end,
                q.lease_records_at_end,
                q.waiters_at_end,
                q.waiter_records_at_end
            ),
        ),
        line(
            c.queued_served_near_physical_limit,
            Goal,
            format!(
                "queued: {} served per second {} {} {} physical limit {}",
                q.served_per_second,
                medium.pick(">=", "≥"),
                NEAR_PHYSICAL_LIMIT,
                medium.pick("x", "×"),
                q.physical_limit_per_second
                    .map_or_else(|| medium.dash().to_owned(), |l| l.to_string())
            ),
        ),
        line(
            c.queued_p99_at_most_a_third_of_polling,
            Goal,
            format!(
                "queued: end-to-end p99 {} {le} a third of polling's {}",
                ms(q.p99_ms),
                ms(g.p99_ms)
            ),
        ),
    ]
}

/// The side-by-side table printed at the end of a demo.
pub fn text(report: &Report) -> String {
    let rows = figures(report, Medium::Terminal);
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let l = &report.load;
    let mut out = format!(
        "leasehold demo: {} executions per run, concurrency {}, each query holds its connection {} ms\n\
         pool budget {} of max_connections {} (admin reserve {}), kill probability {}, seed {}\n\n",
        l.executions,
        l.concurrency,
        l.hold_ms,
        report.budget,
        report.max_connections,
        report.admin_reserve,
        l.kill_probability,
        l.seed
    );
    if let Some(after) = l.abort_harness_after_seconds {
        out.push_str(&format!(
            "each run's harness stopped after {after} s and the same load started again\n\n"
        ));
    }
    let [a, b, c] = columns(report).map(|(name, _)| name);
    out.push_str(&format!("{:width$}  {a:>24}  {b:>24}  {c:>24}\n", ""));
    for (label, [a, b, c]) in &rows {
        out.push_str(&format!("{label:width$}  {a:>24}  {b:>24}  {c:>24}\n"));
    }
    let f = &report.fifo_ideal;
    out.push_str(&format!(
        "\nFIFO ideal ({} clients, {} slots, {} ms each): {} served per second, wait p50 / p99 {} / {} ms, done in {:.1} s\n\n",
        f.concurrency,
        f.budget,
        f.service_ms,
        f.served_per_second,
        f.wait_p50_ms,
        f.wait_p99_ms,
        f.makespan_ms / 1000.0
    ));
    let faults = report.faults_injected();
    let mut shows_busy = true;
    for check in check_lines(report, Medium::Terminal) {
        let mark = match (check.kind, check.ok) {
            (CheckKind::Shown, ok) => {
                shows_busy = ok;
                if ok { "seen" } else { "none" }
            }
            (_, true) => "ok  ",
            (kind, false) if check.counts(faults) || kind == CheckKind::Promise => "FAIL",
            (_, false) => "miss",
        };
        out.push_str(&format!("{mark} {}\n", check.text));
    }
    if !shows_busy {
        out.push_str(&format!(
            "     (the load never needed more than max_connections: raise --concurrency above {} or --hold-ms)\n",
            report.max_connections
        ));
    }
    if faults && !report.checks.queued_goals_met() {
        out.push_str(
            "     (faults were injected: the queued run's goals are shown, not counted)\n",
        );
    }
    out
}

/// A small report of three made-up runs, for the tests of the report and of the page.
#[cfg(test)]
pub(crate) mod sample {
    use super::*;
    use crate::fifo::ServiceSource;
    use crate::history::Facts;
    use crate::run::{Plan, Settled};
    use crate::sampler;
    use serde_json::json;

    fn fact(outcome: Outcome, start: i64, lasted: i64, wait: Option<i64>, leased: bool) -> Facts {
        Facts {
            outcome,
            start_ms: start,
            end_ms: Some(start + lasted),
            started_by: Some("arn:harness".into()),
            acquire_wait_ms: wait.filter(|_| leased),
            lease_wait_ms: wait,
            queue_waited_ms: wait.filter(|_| leased).map(|w| w - 20),
            queue_timeouts: 0,
            lease_held_ms: leased.then_some(1100),
            exhausted_failures: 0,
            exhausted_retries: 0,
            busy_failures: 0,
            busy_at_ms: Vec::new(),
            crashed_tasks: 0,
            query_hold_ms: if leased { vec![1000] } else { Vec::new() },
        }
    }

    /// One run of 10 children starting at 1,000,000 ms; `waits` the lease waits of 5 of them
    /// (`None`: ungoverned), all served.
    pub fn data(mode: Option<Mode>, waits: Option<[i64; 5]>, lasted: i64) -> RunData {
        let start_ms = 1_000_000;
        let facts = (0..10)
            .map(|i| {
                let wait = waits.map(|w| w[i % 5]);
                fact(
                    Outcome::Served,
                    start_ms + i as i64 * 100,
                    lasted,
                    wait,
                    true,
                )
            })
            .collect();
        let mut metrics = BTreeMap::new();
        if mode.is_some() {
            metrics.insert("remainingConnections".into(), vec![(start_ms, 0.0)]);
            metrics.insert("waitingRequests".into(), vec![(start_ms + 1000, 7.0)]);
            metrics.insert("waitTime".into(), vec![(start_ms + 1000, 900.0)]);
        }
        RunData {
            plan: Plan {
                name: mode.map_or("ungoverned", Mode::as_str),
                mode,
                harness_machine: "arn:machine:harness".into(),
                child_machine: "arn:machine:child".into(),
                input: json!({}),
                abort_after: None,
            },
            harness_arn: "arn:harness".into(),
            aborted_harness_arn: None,
            start_ms,
            end_ms: start_ms + 2000,
            summary: json!({"served": 10}),
            facts,
            series: sampler::Series {
                connections: vec![(start_ms, 3)],
                leases_in_use: vec![(start_ms, 3)],
                waiting: vec![(start_ms, 0), (start_ms + 250, 7)],
                missed: 0,
            },
            metrics,
            counters_before: BTreeMap::new(),
            counters_after: BTreeMap::new(),
            stats_before: StackStats::default(),
            stats_after: StackStats::default(),
            settled: Settled::default(),
        }
    }

    /// Queued served 10 in 2 s with a short tail, polling and ungoverned likewise but with
    /// longer latencies; budget 5 of 20 connections.
    pub fn report() -> Report {
        let queued = run_report(
            &data(Some(Mode::Queued), Some([0, 800, 900, 1000, 1100]), 2000),
            5,
            5,
        );
        let governed = run_report(
            &data(
                Some(Mode::Polling),
                Some([0, 1500, 4000, 9000, 20_000]),
                7000,
            ),
            5,
            5,
        );
        let ungoverned = run_report(&data(None, None, 1500), 20, 5);
        let fifo_ideal = FifoIdeal::new(10, 8, 5, 1000.0, ServiceSource::QueuedMeanHold);
        let checks = checks(5, 5, &governed, &ungoverned, &queued);
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            generated_at: "2025-01-01T00:00:00.000Z".into(),
            budget: 5,
            max_connections: 20,
            admin_reserve: 5,
            load: Load {
                executions: 10,
                concurrency: 8,
                hold_ms: 1000,
                pool: "main".into(),
                query: "listEmployees".into(),
                kill_probability: 0.0,
                seed: 1,
                abort_harness_after_seconds: None,
            },
            runs: Runs {
                governed,
                ungoverned,
                queued,
            },
            fifo_ideal,
            checks,
        };
        let ideal = report.fifo_ideal.clone();
        for run in [
            &mut report.runs.queued,
            &mut report.runs.governed,
            &mut report.runs.ungoverned,
        ] {
            run.ratio_to_fifo_ideal = Some(ratio_to_ideal(run, &ideal));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The pinned names of docs/report.md, top level and per run.
    const PINNED_TOP: [&str; 3] = ["budget", "maxConnections", "runs"];
    const PINNED_RUN: [&str; 13] = [
        "executions",
        "served",
        "fallback",
        "failed",
        "databaseBusyErrors",
        "peakConnections",
        "leasesHeldAtEnd",
        "p50Ms",
        "p95Ms",
        "p99Ms",
        "servedPerSecond",
        "physicalLimitPerSecond",
        "peakConnectionsAboveBudget",
    ];

    #[test]
    fn the_report_keeps_every_old_name_and_adds_the_queued_run() {
        // GIVEN a report of three runs
        let json = serde_json::to_value(sample::report()).unwrap();
        // THEN the pinned names are all there, for the two old runs and the new one
        for key in PINNED_TOP {
            assert!(json.get(key).is_some(), "{key}");
        }
        for run in ["governed", "ungoverned", "queued"] {
            for key in PINNED_RUN {
                assert!(json["runs"][run].get(key).is_some(), "runs.{run}.{key}");
            }
        }
        // AND governed is the polling run, queued the queued one
        assert_eq!(json["runs"]["governed"]["acquireMode"], "polling");
        assert_eq!(json["runs"]["queued"]["acquireMode"], "queued");
        assert_eq!(json["runs"]["ungoverned"]["acquireMode"], Value::Null);
        // AND the old checks keep their names beside the new ones
        let checks: Vec<&str> = json["checks"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            checks,
            [
                "governedNoDatabaseBusy",
                "governedPeakWithinBudgetPlusReserve",
                "governedNoConnectionsAboveBudget",
                "governedLeasesNeverAboveBudget",
                "governedNoLeasesHeldAtEnd",
                "ungovernedShowsDatabaseBusy",
                "queuedNoDatabaseBusy",
                "queuedNoConnectionsAboveBudget",
                "queuedLeasesReturned",
                "queuedServedNearPhysicalLimit",
                "queuedP99AtMostAThirdOfPolling",
            ]
        );
    }

    #[test]
    fn each_governed_run_has_its_wait_distribution_series_and_ratios() {
        let json = serde_json::to_value(sample::report()).unwrap();
        let q = &json["runs"]["queued"];
        // The lease wait: its state, nearest-rank percentiles, and a histogram of all waits.
        let wait = &q["leaseWait"];
        assert_eq!(wait["state"], "AcquireQueued");
        assert_eq!(json["runs"]["governed"]["leaseWait"]["state"], "Acquire");
        assert_eq!(
            (wait["count"].as_u64(), wait["granted"].as_u64()),
            (Some(10), Some(10))
        );
        assert_eq!(wait["p50Ms"], 900);
        assert_eq!(wait["p99Ms"], 1100);
        assert_eq!(wait["maxMs"], 1100);
        let histogram = wait["histogram"].as_array().unwrap();
        assert_eq!(histogram.len(), WAIT_BUCKETS_MS.len() + 1);
        assert_eq!(histogram[0], json!({"fromMs": 0, "toMs": 100, "count": 2}));
        assert_eq!(
            histogram[3],
            json!({"fromMs": 500, "toMs": 1000, "count": 4})
        );
        assert_eq!(
            histogram[4],
            json!({"fromMs": 1000, "toMs": 2000, "count": 4})
        );
        assert_eq!(histogram.last().unwrap()["toMs"], Value::Null);
        let total: u64 = histogram.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(total, 10);
        assert_eq!(q["queueWait"]["p50Ms"], 880);
        assert_eq!(q["queueOverhead"]["p99Ms"], 20);
        assert_eq!(q["meanLeaseHeldMs"], 1100.0);
        assert_eq!(json["runs"]["governed"]["queueWait"], Value::Null);
        assert_eq!(json["runs"]["ungoverned"]["leaseWait"], Value::Null);
        // The queue's series beside remainingConnections, relative to the run's start.
        let series = &q["series"];
        assert_eq!(series["waitingRequests"], json!([[1000, 7.0]]));
        assert_eq!(series["waitTime"], json!([[1000, 900.0]]));
        assert_eq!(series["waiting"], json!([[0, 0], [250, 7]]));
        assert!(series.get("remainingConnections").is_some());
        assert_eq!(q["peakWaiting"], 7);
        // Ratios to the FIFO ideal, for every run.
        let ideal = &json["fifoIdeal"];
        assert_eq!(ideal["serviceMsSource"], "queuedMeanHold");
        for run in ["queued", "governed", "ungoverned"] {
            let ratio = &json["runs"][run]["ratioToFifoIdeal"];
            let expected = json["runs"][run]["servedPerSecond"].as_f64().unwrap()
                / ideal["servedPerSecond"].as_f64().unwrap();
            assert!(
                (ratio["servedPerSecond"].as_f64().unwrap() - expected).abs() < 0.01,
                "{run}: {ratio}"
            );
        }
        assert_eq!(
            json["runs"]["ungoverned"]["ratioToFifoIdeal"]["p99Wait"],
            Value::Null
        );
    }

    #[test]
    fn goals_fail_the_demo_only_without_faults_and_promises_always() {
        // GIVEN the sample: queued p99 2000 ms against polling's 7000, 5 served per second
        // against a physical limit of 5 / 1 s
        let mut report = sample::report();
        assert!(report.checks.queued_p99_at_most_a_third_of_polling);
        assert!(report.checks.queued_served_near_physical_limit);
        assert!(report.passed());
        // WHEN the queued tail is too long, the demo fails ...
        report.checks.queued_p99_at_most_a_third_of_polling = false;
        assert!(!report.passed());
        // ... unless containers were killed or harnesses stopped on purpose
        report.load.kill_probability = 0.1;
        assert!(report.passed());
        report.load.kill_probability = 0.0;
        report.load.abort_harness_after_seconds = Some(3);
        assert!(report.passed());
        // AND a waiter left at the end fails it whatever was injected
        report.runs.queued.waiter_records_at_end = 1;
        report.checks = checks(
            5,
            5,
            &report.runs.governed,
            &report.runs.ungoverned,
            &report.runs.queued,
        );
        assert!(!report.checks.queued_leases_returned);
        assert!(!report.passed());
    }

    #[test]
    fn the_terminal_text_has_three_columns_and_the_ideal() {
        let text = text(&sample::report());
        let header = text
            .lines()
            .find(|l| l.contains("queued") && l.contains("ungoverned"))
            .unwrap();
        let at = |name: &str| header.find(name).unwrap();
        assert!(at("queued") < at("polling") && at("polling") < at("ungoverned"));
        let served = text.lines().find(|l| l.starts_with("served ")).unwrap();
        assert_eq!(
            served.split_whitespace().collect::<Vec<_>>(),
            ["served", "10", "10", "10"]
        );
        assert!(
            text.contains("FIFO ideal (8 clients, 5 slots, 1000 ms each)"),
            "{text}"
        );
        assert!(
            text.contains("ok   queued: no lease and no waiter left at the end"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_cover_every_wait_once() {
        let h = histogram(&[0, 99, 100, 59_999, 60_000, 90_000, 1_000_000]);
        assert_eq!(h[0].count, 2);
        assert_eq!(h[1].count, 1);
        assert_eq!(h.iter().map(|b| b.count).sum::<usize>(), 7);
        assert_eq!(
            (h[14].from_ms, h[14].to_ms, h[14].count),
            (60_000, Some(90_000), 1)
        );
        assert_eq!((h[15].from_ms, h[15].to_ms, h[15].count), (90_000, None, 2));
    }

    #[test]
    fn instants_are_counted_per_second() {
        assert_eq!(
            per_second([10, 999, 1000, 3500, -20]),
            vec![(-1000, 1), (0, 2), (1000, 1), (3000, 1)]
        );
    }

    #[test]
    fn function_counters_are_differences_by_logical_id() {
        let before = json!({"functions": {"s-QueryFunction": {"invocations": 5, "kills": 1}}});
        let after = json!({"functions": {
            "s-QueryFunction": {"invocations": 25, "kills": 3, "coldStarts": 2},
            "s-SeedFunction": {"invocations": 1}
        }});
        let before_seed = json!({"functions": {"s-SeedFunction": {"invocations": 1}, "s-QueryFunction": {"invocations": 5, "kills": 1}}});
        let stats = |v: serde_json::Value| -> StackStats { serde_json::from_value(v).unwrap() };
        let (before, after, before_seed) = (stats(before), stats(after), stats(before_seed));
        let d = function_deltas(&before, &after);
        assert_eq!(d["QueryFunction"].invocations, 20);
        assert_eq!(d["QueryFunction"].kills, 2);
        assert_eq!(d["QueryFunction"].cold_starts, 2);
        // A function that did nothing in the run is left out.
        assert!(!function_deltas(&before_seed, &after).contains_key("SeedFunction"));
        // The report has the counters, not the gauges, in their order.
        let report = serde_json::to_value(RunFunctions { functions: d }).unwrap();
        let keys: Vec<&String> = report["functions"]["QueryFunction"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let expected = [
            "invocations",
            "coldStarts",
            "errors",
            "throttles",
            "timeouts",
            "kills",
            "crashes",
        ];
        assert_eq!(keys, expected);
    }

    #[derive(Serialize)]
    struct RunFunctions {
        #[serde(serialize_with = "counters_only")]
        functions: BTreeMap<String, FunctionStats>,
    }
}
