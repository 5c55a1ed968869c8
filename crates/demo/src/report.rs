//! The report: the JSON document (its schema is in docs/report.md; names are a contract:
//! extend, never rename) and its plain-text rendering for the terminal.
//!
//! Here the document, each run summed up from its measurements ([`run_report`]) and the checks;
//! in `text` the figures and checks as people read them; `sample` and `tests` for the tests.

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
    /// `queue`: this report's runs (`hotspot` writes a report of its own shape).
    pub scenario: &'static str,
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
    /// little then (the text says so beside the goals).
    pub fn faults_injected(&self) -> bool {
        self.load.kill_probability > 0.0 || self.load.abort_harness_after_seconds.is_some()
    }

    /// Whether the demo kept what it promises (its exit status). The goals (throughput and
    /// tail against the polling run) are measured and shown, never part of the exit status:
    /// timing depends on the machine, a broken budget does not.
    pub fn passed(&self) -> bool {
        self.checks.passed()
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

    /// The demo's verdict: the promises, whatever was injected.
    pub fn passed(&self) -> bool {
        self.governed_ok() && self.queued_safe()
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

pub(crate) fn counters_only<S: Serializer>(
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
    let delta =
        |name: &str| counter(&data.counters_after, name) - counter(&data.counters_before, name);
    let peak_connections = (max_used - OWN_CONNECTIONS).max(peak_sampled);
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
        series: series_of(data),
    }
}

/// The run's time series, in ms since its harness started.
fn series_of(data: &RunData) -> Series {
    let relative = |t: i64| t - data.start_ms;
    let metric = |name: &str| -> Vec<(i64, f64)> {
        data.metrics
            .get(name)
            .map(|s| s.iter().map(|&(t, v)| (relative(t), v)).collect())
            .unwrap_or_default()
    };
    let facts = &data.facts;
    Series {
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

mod text;
pub use text::{CheckKind, CheckLine, Medium, Row, check_lines, columns, figures, text};

#[cfg(test)]
pub(crate) mod sample;
#[cfg(test)]
mod tests;
