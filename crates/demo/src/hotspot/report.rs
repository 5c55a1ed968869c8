//! The hotspot scenario's report: the JSON document (fields described in docs/report.md, under
//! "The hotspot scenario"), each run summed up per application, and the checks.

use super::Measured;
use crate::args::{HOT, Options, STEADY};
use crate::history::{Facts, Outcome};
use crate::report::{SCHEMA_VERSION, per_second};
use crate::run::RunData;
use crate::sampler::AppCounts;
use crate::sources::POOL;
use crate::stats::{Spread, round2};
use leasehold_broker::AppShare;
use leasehold_local::lambda::FunctionStats;
use serde::Serialize;
use std::collections::BTreeMap;

/// How much longer than alone the steady application's p99 wait may be with shares (a goal).
pub const STEADY_P99_FACTOR: f64 = 1.5;
/// The share of the budget in use while both applications want more than their reservation
/// (a goal: the hot one borrows what the steady one leaves idle).
pub const CONTENTION_BUDGET_USE: f64 = 0.9;

/// The pool's division in the runs that divide it.
#[derive(Debug, Clone)]
pub struct Shares {
    pub steady: AppShare,
    pub hot: AppShare,
}

impl Shares {
    fn of(&self, app: &str) -> Option<&AppShare> {
        [&self.steady, &self.hot]
            .into_iter()
            .find(|s| s.name.as_str() == app)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HotspotReport {
    pub schema_version: u32,
    /// `hotspot`.
    pub scenario: &'static str,
    pub generated_at: String,
    /// The pool's budget, read from its record in the lease table.
    pub budget: i64,
    /// MariaDB's `max_connections` during the runs.
    pub max_connections: i64,
    /// Connections kept out of the budget for administrators.
    pub admin_reserve: i64,
    pub hotspot: Hotspot,
}

impl HotspotReport {
    /// Whether the demo kept what it promises (its exit status); the goals are shown only.
    pub fn passed(&self) -> bool {
        self.hotspot.checks.passed()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hotspot {
    pub load: Load,
    pub runs: Runs,
    pub checks: Checks,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    pub hold_ms: u64,
    /// How long after the steady application's harness the hot one's started, in the runs of
    /// both (ungoverned, sharedPool, shares); 0: together.
    pub hot_start_ms: u64,
    pub pool: String,
    pub query: String,
    pub seed: u64,
    /// How every governed child waits for a lease: `queued`.
    pub acquire_mode: &'static str,
    /// The steady application, then the hot one.
    pub applications: Vec<AppLoad>,
}

/// One application's load and its share of the divided pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppLoad {
    pub name: String,
    pub executions: u32,
    pub concurrency: u32,
    pub reserved: u32,
    pub max: u32,
    pub weight: u32,
}

/// The four runs, in the order they ran.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runs {
    pub steady_alone: Run,
    pub ungoverned: Run,
    pub shared_pool: Run,
    pub shares: Run,
}

impl Runs {
    /// (key in the JSON, run), in the order they ran and are shown.
    pub fn all(&self) -> [(&'static str, &Run); 4] {
        [
            ("steadyAlone", &self.steady_alone),
            ("ungoverned", &self.ungoverned),
            ("sharedPool", &self.shared_pool),
            ("shares", &self.shares),
        ]
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `queued`, or null when the children take no lease (ungoverned).
    pub acquire_mode: Option<&'static str>,
    /// Whether the pool was divided between the applications during the run.
    pub divided: bool,
    pub started_at: String,
    /// From the first harness's start to the last one's end.
    pub duration_ms: i64,
    pub executions: u64,
    pub served: u64,
    pub fallback: u64,
    pub failed: u64,
    pub database_busy_errors: u64,
    /// The most connections open at once, the sampler's own left out.
    pub peak_connections: i64,
    pub peak_connections_above_budget: i64,
    /// The pool record's `inUse`, sampled.
    pub peak_leases_in_use: i64,
    /// Lease records, sampled with the waiter records (all applications together).
    pub peak_lease_records: i64,
    /// The pool record's `waiting`, sampled.
    pub peak_waiting: i64,
    pub leases_held_at_end: i64,
    pub lease_records_at_end: i64,
    pub waiters_at_end: i64,
    pub waiter_records_at_end: i64,
    /// The budget's use while every application wants more than its reservation; null
    /// ungoverned and with one application.
    pub contention: Option<Contention>,
    /// Per application (`steady`, `hot`).
    pub applications: BTreeMap<String, AppRun>,
    /// Containers killed during the run (none are, unless the stack was started so).
    pub container_kills: u64,
    /// The stack's counters per function during the run (as the queue scenario's).
    #[serde(serialize_with = "crate::report::counters_only")]
    pub functions: BTreeMap<String, FunctionStats>,
    pub series: Series,
}

impl Run {
    /// The run's figures of one application.
    pub fn app(&self, name: &str) -> Option<&AppRun> {
        self.applications.get(name)
    }

    /// The p99 lease wait of one application, when it waited at all.
    pub fn p99_wait(&self, name: &str) -> Option<i64> {
        self.app(name)?.lease_wait.as_ref()?.p99_ms
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRun {
    pub harness_execution_arn: String,
    /// When its first child started, in ms after the run's start; null without children.
    pub first_start_ms: Option<i64>,
    /// Its share during the run; null when the pool was not divided (or ungoverned).
    pub reserved: Option<u32>,
    pub max: Option<u32>,
    pub executions: u64,
    pub served: u64,
    pub fallback: u64,
    pub from_cache: u64,
    pub shed: u64,
    pub failed: u64,
    pub failed_by_error: BTreeMap<String, u64>,
    pub database_busy_errors: u64,
    /// Served children per second of its harness's run.
    pub served_per_second: f64,
    /// End to end, start → end of every child.
    pub latency: Spread,
    /// Time in `AcquireQueued` of every child that left it, lease or not (as the queue
    /// scenario's `leaseWait`); null ungoverned.
    pub lease_wait: Option<Spread>,
    /// Its lease records, sampled; null ungoverned.
    pub peak_in_use: Option<i64>,
    /// Its waiter records, sampled; null ungoverned.
    pub peak_waiting: Option<i64>,
    /// How far `peakInUse` went above `max` (0 when it never did); null without a `max`.
    pub peak_above_max: Option<i64>,
}

/// The samples in which every application wanted more than its reservation (its lease and
/// waiter records together above it), and how much of the budget was in use in them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contention {
    /// Samples that qualify ...
    pub samples: usize,
    /// ... of all samples of the run.
    pub of_samples: usize,
    /// Mean lease records (all applications) over those samples.
    pub mean_leases_in_use: Option<f64>,
    /// `meanLeasesInUse` ÷ the budget.
    pub budget_use: Option<f64>,
}

/// The contention window of a run: the samples in which every application of `reserved`
/// (name → reservation) has more records (leases + waiters) than its reservation; in them, the
/// mean of all lease records against the budget.
pub fn contention(
    samples: &[(i64, AppCounts)],
    reserved: &[(&str, u32)],
    budget: i64,
) -> Contention {
    let in_use: Vec<i64> = samples
        .iter()
        .filter(|(_, counts)| {
            reserved.iter().all(|(app, reserved)| {
                counts
                    .get(*app)
                    .is_some_and(|c| c.in_use + c.waiting > i64::from(*reserved))
            })
        })
        .map(|(_, counts)| counts.values().map(|c| c.in_use).sum())
        .collect();
    let mean = crate::stats::mean(&in_use);
    Contention {
        samples: in_use.len(),
        of_samples: samples.len(),
        mean_leases_in_use: mean.map(round2),
        budget_use: mean
            .filter(|_| budget > 0)
            .map(|m| round2(m / budget as f64)),
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// `[ms since the run's start, value]` pairs, as in the queue scenario.
    pub connections: Vec<(i64, i64)>,
    pub leases_in_use: Vec<(i64, i64)>,
    pub waiting: Vec<(i64, i64)>,
    /// `DatabaseBusy` failures per second (both applications), from the histories.
    pub database_busy_errors: Vec<(i64, u64)>,
    pub applications: BTreeMap<String, AppSeries>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSeries {
    /// Its lease records, sampled.
    pub in_use: Vec<(i64, i64)>,
    /// Its waiter records, sampled.
    pub waiting: Vec<(i64, i64)>,
    /// Per second, the longest lease wait of its children whose wait ended in that second
    /// (start of the child + its wait: about when it got its lease or gave up).
    pub lease_wait: Vec<(i64, i64)>,
    /// CloudWatch `WaitTime` with `Application` = it, average per second (divided pool only).
    pub wait_time: Vec<(i64, f64)>,
}

/// Per second in which their wait ended (the child's start + its wait, relative to the run's
/// start), the longest lease wait of the children.
pub fn wait_by_end(facts: &[Facts], start_ms: i64) -> Vec<(i64, i64)> {
    let mut longest: BTreeMap<i64, i64> = BTreeMap::new();
    for f in facts {
        if let Some(wait) = f.lease_wait_ms {
            let second = (f.start_ms + wait - start_ms).div_euclid(1000) * 1000;
            let slot = longest.entry(second).or_insert(wait);
            *slot = (*slot).max(wait);
        }
    }
    longest.into_iter().collect()
}

/// One application's figures in one run; `samples` are the run's records per application.
pub fn app_run(data: &RunData, samples: &[(i64, AppCounts)], share: Option<&AppShare>) -> AppRun {
    let facts = &data.facts;
    let count = |f: &dyn Fn(&Outcome) -> bool| facts.iter().filter(|x| f(&x.outcome)).count();
    let served = count(&|o| *o == Outcome::Served) as u64;
    let from_cache = count(&|o| *o == Outcome::FromCache) as u64;
    let shed = count(&|o| *o == Outcome::Shed) as u64;
    let failed = count(&|o| matches!(o, Outcome::Failed(_))) as u64;
    let mut failed_by_error = BTreeMap::new();
    for f in facts {
        if let Outcome::Failed(error) = &f.outcome {
            *failed_by_error.entry(error.clone()).or_insert(0) += 1;
        }
    }
    let durations: Vec<i64> = facts.iter().filter_map(Facts::duration_ms).collect();
    let waits: Vec<i64> = facts.iter().filter_map(|f| f.lease_wait_ms).collect();
    let governed = data.plan.governed();
    let app = data.plan.input["app"].as_str().unwrap_or_default();
    let peak = |pick: fn(&crate::sampler::AppCount) -> i64| {
        governed.then(|| {
            samples
                .iter()
                .filter_map(|(_, counts)| counts.get(app).map(pick))
                .max()
                .unwrap_or(0)
        })
    };
    let peak_in_use = peak(|c| c.in_use);
    let max = share.and_then(|s| s.max);
    let seconds = ((data.end_ms - data.start_ms).max(1)) as f64 / 1000.0;
    AppRun {
        harness_execution_arn: data.harness_arn.clone(),
        first_start_ms: facts.iter().map(|f| f.start_ms - data.start_ms).min(),
        reserved: share.map(|s| s.reserved),
        max,
        executions: facts.len() as u64,
        served,
        fallback: from_cache + shed,
        from_cache,
        shed,
        failed,
        failed_by_error,
        database_busy_errors: facts.iter().map(|f| u64::from(f.busy_failures)).sum(),
        served_per_second: round2(served as f64 / seconds),
        latency: Spread::of(&durations),
        lease_wait: governed.then(|| Spread::of(&waits)),
        peak_in_use,
        peak_waiting: peak(|c| c.waiting),
        peak_above_max: peak_in_use
            .zip(max)
            .map(|(peak, max)| (peak - i64::from(max)).max(0)),
    }
}

/// One run of one or two applications (`apps`, steady first), all measured together.
pub fn run(apps: &[RunData], shares: Option<&Shares>, budget: i64) -> Run {
    let first = &apps[0];
    let relative = |points: &[(i64, i64)]| -> Vec<(i64, i64)> {
        points
            .iter()
            .map(|&(t, v)| (t - first.start_ms, v))
            .collect()
    };
    let governed = first.plan.governed();
    let max_of = |points: &[(i64, i64)]| points.iter().map(|p| p.1).max().unwrap_or(0);
    let series = &first.series;
    let lease_records: Vec<(i64, i64)> = series
        .apps
        .iter()
        .map(|(t, counts)| (*t, counts.values().map(|c| c.in_use).sum()))
        .collect();
    // The pool-wide figures of the queue scenario's report, from the same measurements.
    let pool = crate::report::run_report(first, budget, budget);
    let mut applications = BTreeMap::new();
    let mut series_by_app = BTreeMap::new();
    for data in apps {
        let name = data.plan.input["app"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let share = shares.and_then(|s| s.of(&name));
        applications.insert(name.clone(), app_run(data, &series.apps, share));
        let per_app = |pick: fn(&crate::sampler::AppCount) -> i64| {
            series
                .apps
                .iter()
                .map(|(t, counts)| (t - first.start_ms, counts.get(&name).map_or(0, pick)))
                .collect()
        };
        series_by_app.insert(
            name.clone(),
            AppSeries {
                in_use: if governed {
                    per_app(|c| c.in_use)
                } else {
                    vec![]
                },
                waiting: if governed {
                    per_app(|c| c.waiting)
                } else {
                    vec![]
                },
                lease_wait: wait_by_end(&data.facts, first.start_ms),
                wait_time: first
                    .app_metrics
                    .get(&name)
                    .and_then(|m| m.get("waitTime"))
                    .map(|points| {
                        points
                            .iter()
                            .map(|&(t, v)| (t - first.start_ms, v))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        );
    }
    let all_facts: Vec<&Facts> = apps.iter().flat_map(|d| &d.facts).collect();
    let count =
        |f: &dyn Fn(&Outcome) -> bool| all_facts.iter().filter(|x| f(&x.outcome)).count() as u64;
    let reserved: Vec<(&str, u32)> = shares
        .map(|s| {
            [&s.steady, &s.hot]
                .into_iter()
                .filter(|s| applications.contains_key(s.name.as_str()))
                .map(|s| (s.name.as_str(), s.reserved))
                .collect()
        })
        .unwrap_or_default();
    let end_ms = apps.iter().map(|d| d.end_ms).max().unwrap_or(first.end_ms);
    Run {
        acquire_mode: pool.acquire_mode,
        divided: false,
        started_at: pool.started_at.clone(),
        duration_ms: (end_ms - first.start_ms).max(1),
        executions: all_facts.len() as u64,
        served: count(&|o| *o == Outcome::Served),
        fallback: count(&|o| matches!(o, Outcome::FromCache | Outcome::Shed)),
        failed: count(&|o| matches!(o, Outcome::Failed(_))),
        database_busy_errors: all_facts.iter().map(|f| u64::from(f.busy_failures)).sum(),
        peak_connections: pool.peak_connections,
        peak_connections_above_budget: pool.peak_connections_above_budget,
        peak_leases_in_use: pool.peak_leases_in_use,
        peak_lease_records: max_of(&lease_records),
        peak_waiting: pool.peak_waiting,
        leases_held_at_end: pool.leases_held_at_end,
        lease_records_at_end: pool.lease_records_at_end,
        waiters_at_end: pool.waiters_at_end,
        waiter_records_at_end: pool.waiter_records_at_end,
        contention: (governed && reserved.len() > 1)
            .then(|| contention(&series.apps, &reserved, budget)),
        applications,
        container_kills: pool.container_kills,
        functions: pool.functions.clone(),
        series: Series {
            connections: relative(&series.connections),
            leases_in_use: relative(&series.leases_in_use),
            waiting: relative(&series.waiting),
            database_busy_errors: per_second(
                all_facts
                    .iter()
                    .flat_map(|f| f.busy_at_ms.iter().map(|&t| t - first.start_ms)),
            ),
            applications: series_by_app,
        },
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// No `DatabaseBusy` in the governed runs (steadyAlone, sharedPool, shares).
    pub governed_no_database_busy: bool,
    /// In the governed runs, leases in use (pool record and records) never above the budget,
    /// and connections never above it.
    pub budget_never_exceeded: bool,
    /// In the runs on the divided pool, no application's lease records above its `max`.
    pub no_application_above_max: bool,
    /// After each governed run, no lease and no waiter left (counters and records).
    pub no_leases_or_waiters_left: bool,
    /// The ungoverned run met `DatabaseBusy` (shown: the load was heavy enough).
    pub ungoverned_shows_database_busy: bool,
    /// On one shared pool the steady application waited more than 1.5 × alone at p99 (shown:
    /// the hot spot the shares are for).
    pub shared_pool_shows_hot_spot: bool,
    /// A goal: with shares, the steady application's p99 wait ≤ 1.5 × its p99 alone.
    pub shares_steady_p99_within_one_and_a_half_of_alone: bool,
    /// A goal: with shares, the budget's use while both want more than their reservation ≥ 0.9.
    pub shares_budget_use_at_least_90_percent: bool,
}

impl Checks {
    /// The promises: they decide the exit status.
    pub fn passed(&self) -> bool {
        self.governed_no_database_busy
            && self.budget_never_exceeded
            && self.no_application_above_max
            && self.no_leases_or_waiters_left
    }

    pub fn goals_met(&self) -> bool {
        self.shares_steady_p99_within_one_and_a_half_of_alone
            && self.shares_budget_use_at_least_90_percent
    }
}

/// `a ≤ factor × b`, false when either is missing.
pub fn within(a: Option<i64>, factor: f64, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a as f64 <= factor * b as f64,
        _ => false,
    }
}

pub fn checks(runs: &Runs, budget: i64) -> Checks {
    let governed = [&runs.steady_alone, &runs.shared_pool, &runs.shares];
    let alone = runs.steady_alone.p99_wait(STEADY);
    Checks {
        governed_no_database_busy: governed.iter().all(|r| r.database_busy_errors == 0),
        budget_never_exceeded: governed.iter().all(|r| {
            r.peak_leases_in_use <= budget
                && r.peak_lease_records <= budget
                && r.peak_connections_above_budget == 0
        }),
        no_application_above_max: [&runs.steady_alone, &runs.shares].iter().all(|r| {
            r.applications
                .values()
                .all(|a| a.peak_above_max.unwrap_or(0) == 0)
        }),
        no_leases_or_waiters_left: governed.iter().all(|r| {
            r.leases_held_at_end == 0
                && r.lease_records_at_end == 0
                && r.waiters_at_end == 0
                && r.waiter_records_at_end == 0
        }),
        ungoverned_shows_database_busy: runs.ungoverned.database_busy_errors > 0,
        shared_pool_shows_hot_spot: !within(
            runs.shared_pool.p99_wait(STEADY),
            STEADY_P99_FACTOR,
            alone,
        ) && alone.is_some(),
        shares_steady_p99_within_one_and_a_half_of_alone: within(
            runs.shares.p99_wait(STEADY),
            STEADY_P99_FACTOR,
            alone,
        ),
        shares_budget_use_at_least_90_percent: runs
            .shares
            .contention
            .as_ref()
            .and_then(|c| c.budget_use)
            .is_some_and(|u| u >= CONTENTION_BUDGET_USE),
    }
}

/// The whole report from the four runs' measurements.
pub fn build(
    options: &Options,
    shares: &Shares,
    budget: i64,
    max_connections: i64,
    measured: &Measured,
    generated_at: String,
) -> HotspotReport {
    let mut steady_alone = run(&measured.steady_alone, Some(shares), budget);
    steady_alone.divided = true;
    let ungoverned = run(&measured.ungoverned, None, budget);
    // The contention window of the shared pool is measured against the same reservations as
    // the shares run, so that the two compare; its applications have no share in force.
    let mut shared_pool = run(&measured.shared_pool, Some(shares), budget);
    for app in shared_pool.applications.values_mut() {
        (app.reserved, app.max, app.peak_above_max) = (None, None, None);
    }
    let mut shares_run = run(&measured.shares, Some(shares), budget);
    shares_run.divided = true;
    let runs = Runs {
        steady_alone,
        ungoverned,
        shared_pool,
        shares: shares_run,
    };
    let checks = checks(&runs, budget);
    let app_load = |share: &AppShare, load: &crate::args::AppLoad| AppLoad {
        name: share.name.as_str().to_owned(),
        executions: load.executions,
        concurrency: load.concurrency,
        reserved: share.reserved,
        max: share.max.unwrap_or(budget as u32),
        weight: share.weight,
    };
    HotspotReport {
        schema_version: SCHEMA_VERSION,
        scenario: "hotspot",
        generated_at,
        budget,
        max_connections,
        admin_reserve: i64::from(options.reserve),
        hotspot: Hotspot {
            load: Load {
                hold_ms: options.hold_ms,
                hot_start_ms: options.hotspot.hot_start_ms(options.hold_ms),
                pool: POOL.to_owned(),
                query: crate::QUERY.to_owned(),
                seed: options.seed,
                acquire_mode: "queued",
                applications: vec![
                    app_load(&shares.steady, &options.hotspot.steady),
                    app_load(&shares.hot, &options.hotspot.hot),
                ],
            },
            runs,
            checks,
        },
    }
}

/// The applications in the order they are shown: steady, then hot.
pub const APPS: [&str; 2] = [STEADY, HOT];

#[cfg(test)]
pub(crate) mod sample;
#[cfg(test)]
mod tests;
