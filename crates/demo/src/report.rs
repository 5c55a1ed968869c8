//! The report: the JSON document (its schema is in docs/report.md; names are a contract:
//! extend, never rename) and its plain-text rendering for the terminal.

use super::history::Outcome;
use super::run::RunData;
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
    pub checks: Checks,
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

#[derive(Debug, Clone, Serialize)]
pub struct Runs {
    pub governed: RunReport,
    pub ungoverned: RunReport,
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
    pub lease_settle_ms: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub latency: Spread,
    pub served_latency: Spread,
    pub acquire_wait: Option<Spread>,
    pub connections_exhausted_retries: u64,
    pub connections_exhausted_errors: u64,
    pub crashed_tasks: u64,
    pub mean_hold_ms: Option<f64>,
    pub connection_limit: i64,
    pub served_per_second: f64,
    pub physical_limit_per_second: Option<f64>,
    pub ratio_to_physical_limit: Option<f64>,
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
}

impl Checks {
    /// What leasehold promises for the governed run.
    pub fn governed_ok(&self) -> bool {
        self.governed_no_database_busy
            && self.governed_peak_within_budget_plus_reserve
            && self.governed_no_connections_above_budget
            && self.governed_no_leases_held_at_end
            && self.governed_leases_never_above_budget
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
    let governed = data.plan.governed;
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
    RunReport {
        harness_execution_arn: data.harness_arn.clone(),
        aborted_harness_execution_arn: data.aborted_harness_arn.clone(),
        child_state_machine_arn: data.plan.child_machine.clone(),
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
        connections_at_end: data.connections_at_end,
        peak_leases_in_use: data
            .series
            .leases_in_use
            .iter()
            .map(|p| p.1)
            .max()
            .unwrap_or(0),
        leases_held_at_end: data.leases_at_end,
        lease_records_at_end: data.lease_records_at_end,
        lease_settle_ms: data.settle_ms,
        p50_ms: latency.p50_ms,
        p95_ms: latency.p95_ms,
        p99_ms: latency.p99_ms,
        latency,
        served_latency: Spread::of(&served_durations),
        acquire_wait: governed.then(|| Spread::of(&waits)),
        connections_exhausted_retries: facts.iter().map(|f| u64::from(f.exhausted_retries)).sum(),
        connections_exhausted_errors: facts.iter().map(|f| u64::from(f.exhausted_failures)).sum(),
        crashed_tasks: facts.iter().map(|f| u64::from(f.crashed_tasks)).sum(),
        mean_hold_ms: mean_hold_ms.map(round1),
        connection_limit,
        served_per_second: round2(served_per_second),
        physical_limit_per_second: physical.map(round2),
        ratio_to_physical_limit: physical.map(|p| round2(served_per_second / p)),
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
            remaining_connections: data
                .metrics
                .get("remainingConnections")
                .map(|s| s.iter().map(|&(t, v)| (relative(t), v)).collect())
                .unwrap_or_default(),
            no_connections_left_error: data
                .metrics
                .get("noConnectionsLeftError")
                .map(|s| s.iter().map(|&(t, v)| (relative(t), v)).collect())
                .unwrap_or_default(),
            database_busy_errors: per_second(
                facts
                    .iter()
                    .flat_map(|f| f.busy_at_ms.iter().map(|&t| relative(t))),
            ),
        },
    }
}

pub fn checks(budget: i64, reserve: i64, governed: &RunReport, ungoverned: &RunReport) -> Checks {
    Checks {
        governed_no_database_busy: governed.database_busy_errors == 0
            && governed.connection_errors_max_connections == 0,
        governed_peak_within_budget_plus_reserve: governed.peak_connections <= budget + reserve,
        governed_no_connections_above_budget: governed.peak_connections_above_budget == 0,
        governed_leases_never_above_budget: governed.peak_leases_in_use <= budget,
        governed_no_leases_held_at_end: governed.leases_held_at_end == 0
            && governed.lease_records_at_end == 0,
        ungoverned_shows_database_busy: ungoverned.database_busy_errors > 0,
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

/// The figures of both runs side by side: (label, governed, ungoverned).
pub fn figures(report: &Report, medium: Medium) -> Vec<(&'static str, String, String)> {
    let (g, u) = (&report.runs.governed, &report.runs.ungoverned);
    let dash = medium.dash();
    let o = |v: Option<i64>| v.map_or_else(|| dash.to_owned(), |v| v.to_string());
    let of = |v: Option<f64>| v.map_or_else(|| dash.to_owned(), |v| format!("{v}"));
    let spread = |p50, p95, p99| format!("{} / {} / {}", o(p50), o(p95), o(p99));
    let wait = |r: &RunReport| {
        r.acquire_wait
            .as_ref()
            .map_or_else(|| dash.to_owned(), |w| spread(w.p50_ms, w.p95_ms, w.p99_ms))
    };
    let limit = |r: &RunReport| {
        let per_second = of(r.physical_limit_per_second);
        match medium {
            Medium::Terminal => format!("{per_second} ({} conn.)", r.connection_limit),
            Medium::Page => format!("{per_second} ({})", r.connection_limit),
        }
    };
    let both = |f: &dyn Fn(&RunReport) -> String| (f(g), f(u));
    let rows: [(&'static str, (String, String)); 20] = [
        ("executions", both(&|r| r.executions.to_string())),
        ("served", both(&|r| r.served.to_string())),
        (
            "fallback (from cache / shed)",
            both(&|r| format!("{} ({} / {})", r.fallback, r.from_cache, r.shed)),
        ),
        ("failed", both(&|r| r.failed.to_string())),
        (
            "DatabaseBusy errors (MySQL 1040)",
            both(&|r| r.database_busy_errors.to_string()),
        ),
        (
            medium.pick(
                "connections refused (server count)",
                "connections refused (server: Aborted_connects)",
            ),
            both(&|r| r.refused_connections.to_string()),
        ),
        (
            medium.pick(
                "peak DB connections (sampled)",
                "peak connections (sampled)",
            ),
            both(&|r| format!("{} ({})", r.peak_connections, r.peak_sampled_connections)),
        ),
        (
            "connections above the budget",
            both(&|r| r.peak_connections_above_budget.to_string()),
        ),
        (
            medium.pick(
                "Max_used_connections (with sampler)",
                "Max_used_connections (incl. sampler)",
            ),
            both(&|r| r.max_used_connections.to_string()),
        ),
        (
            "peak leases in use",
            (g.peak_leases_in_use.to_string(), dash.to_owned()),
        ),
        (
            medium.pick("leases held at end", "leases held at the end"),
            both(&|r| r.leases_held_at_end.to_string()),
        ),
        (
            medium.pick(
                "latency p50 / p95 / p99 ms",
                "end-to-end p50 / p95 / p99 ms",
            ),
            both(&|r| spread(r.p50_ms, r.p95_ms, r.p99_ms)),
        ),
        ("acquire wait p50 / p95 / p99 ms", both(&wait)),
        (
            "ConnectionsExhausted retries",
            (g.connections_exhausted_retries.to_string(), dash.to_owned()),
        ),
        ("mean connection hold ms", both(&|r| of(r.mean_hold_ms))),
        (
            "served per second",
            both(&|r| r.served_per_second.to_string()),
        ),
        (
            medium.pick(
                "physical limit per second",
                "physical limit per second (connections)",
            ),
            both(&limit),
        ),
        (
            "ratio to the physical limit",
            both(&|r| of(r.ratio_to_physical_limit)),
        ),
        ("container kills", both(&|r| r.container_kills.to_string())),
        (
            "duration s",
            both(&|r| format!("{:.1}", r.duration_ms as f64 / 1000.0)),
        ),
    ];
    rows.into_iter()
        .map(|(label, (a, b))| (label, a, b))
        .collect()
}

/// The checks as sentences, in order: (passed, sentence). The last one, the ungoverned run
/// showing the problem, is what the load showed rather than a promise.
pub fn check_lines(report: &Report, medium: Medium) -> [(bool, String); 6] {
    let c = &report.checks;
    let (g, u) = (&report.runs.governed, &report.runs.ungoverned);
    [
        (
            c.governed_no_database_busy,
            format!(
                "governed: no DatabaseBusy error ({})",
                g.database_busy_errors
            ),
        ),
        (
            c.governed_peak_within_budget_plus_reserve,
            format!(
                "governed: peak connections {} {} budget {} + admin reserve {}",
                g.peak_connections,
                medium.pick("<=", "≤"),
                report.budget,
                report.admin_reserve
            ),
        ),
        (
            c.governed_no_connections_above_budget,
            format!(
                "governed: connections never above the budget {} (peak {} above)",
                report.budget, g.peak_connections_above_budget
            ),
        ),
        (
            c.governed_leases_never_above_budget,
            format!(
                "governed: leases in use never above the budget (peak {})",
                g.peak_leases_in_use
            ),
        ),
        (
            c.governed_no_leases_held_at_end,
            format!(
                "governed: no lease held at the end ({} in use, {} records)",
                g.leases_held_at_end, g.lease_records_at_end
            ),
        ),
        (
            c.ungoverned_shows_database_busy,
            format!(
                "ungoverned: {} DatabaseBusy errors (MySQL 1040); {} executions failed",
                u.database_busy_errors, u.failed
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
    out.push_str(&format!(
        "{:width$}  {:>22}  {:>22}\n",
        "", "governed", "ungoverned"
    ));
    for (label, a, b) in &rows {
        out.push_str(&format!("{label:width$}  {a:>22}  {b:>22}\n"));
    }
    out.push('\n');
    let [promises @ .., (shows_busy, shown)] = check_lines(report, Medium::Terminal);
    for (ok, line) in promises {
        out.push_str(&format!("{} {line}\n", if ok { "ok  " } else { "FAIL" }));
    }
    out.push_str(&format!(
        "{} {shown}\n",
        if shows_busy { "seen" } else { "none" }
    ));
    if !shows_busy {
        out.push_str(&format!(
            "     (the load never needed more than max_connections: raise --concurrency above {} or --hold-ms)\n",
            report.max_connections
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
