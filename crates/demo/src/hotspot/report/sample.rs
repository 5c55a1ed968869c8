//! A made-up hotspot report (budget 10, steady reserved 4 and hot reserved 2, hot max 6), for
//! the tests of the report, its text and its page.

use super::*;
use crate::args::{AppLoad as Asked, Hotspot as AskedHotspot};
use crate::history::Facts;
use crate::run::{Mode, Plan, RunData, Settled};
use crate::sampler::{AppCount, AppCounts, Series as Sampled};
use crate::sources::StackStats;
use leasehold_broker::AppName;
use serde_json::json;

pub const START: i64 = 2_000_000;

/// A child that started `at` ms into the run, waited `wait` ms for its lease (`None`:
/// ungoverned) and lasted `wait + 1000` ms; `busy` DatabaseBusy failures on the way.
pub fn child(at: i64, wait: Option<i64>, outcome: Outcome, busy: u32) -> Facts {
    Facts {
        outcome,
        start_ms: START + at,
        end_ms: Some(START + at + wait.unwrap_or(0) + 1000),
        started_by: Some("arn:harness".into()),
        acquire_wait_ms: wait,
        lease_wait_ms: wait,
        queue_waited_ms: None,
        queue_timeouts: 0,
        lease_held_ms: wait.map(|_| 1000),
        exhausted_failures: 0,
        exhausted_retries: 0,
        busy_failures: busy,
        busy_at_ms: (0..busy).map(|i| START + at + i64::from(i) * 10).collect(),
        crashed_tasks: 0,
        query_hold_ms: vec![1000],
    }
}

/// `[(steady in use, steady waiting, hot in use, hot waiting)]`, one sample each 300 ms.
pub fn samples(points: &[(i64, i64, i64, i64)]) -> Vec<(i64, AppCounts)> {
    points
        .iter()
        .enumerate()
        .map(|(i, &(si, sw, hi, hw))| {
            let mut counts = AppCounts::new();
            counts.insert(
                "steady".into(),
                AppCount {
                    in_use: si,
                    waiting: sw,
                },
            );
            if hi + hw > 0 {
                counts.insert(
                    "hot".into(),
                    AppCount {
                        in_use: hi,
                        waiting: hw,
                    },
                );
            }
            (START + i as i64 * 300, counts)
        })
        .collect()
}

/// One application's data in a run with these children and samples.
pub fn data(
    app: &str,
    governed: bool,
    facts: Vec<Facts>,
    apps: Vec<(i64, AppCounts)>,
    peak_connections: i64,
) -> RunData {
    let mode = governed.then_some(Mode::Queued);
    let leases: Vec<(i64, i64)> = apps
        .iter()
        .map(|(t, c)| (*t, c.values().map(|c| c.in_use).sum()))
        .collect();
    RunData {
        plan: Plan {
            name: format!("run-{app}"),
            mode,
            harness_machine: "arn:machine:harness".into(),
            child_machine: "arn:machine:child".into(),
            input: json!({"app": app}),
            abort_after: None,
            start_after: None,
        },
        harness_arn: format!("arn:harness:{app}"),
        aborted_harness_arn: None,
        start_ms: START,
        end_ms: START + 10_000,
        summary: json!({}),
        facts,
        series: Sampled {
            connections: vec![(START, peak_connections)],
            leases_in_use: if governed { leases } else { vec![] },
            waiting: vec![(START, 0)],
            apps: if governed { apps } else { vec![] },
            missed: 0,
        },
        metrics: BTreeMap::new(),
        app_metrics: BTreeMap::new(),
        counters_before: BTreeMap::new(),
        counters_after: BTreeMap::new(),
        stats_before: StackStats::default(),
        stats_after: StackStats::default(),
        settled: Settled::default(),
    }
}

pub fn shares() -> Shares {
    let share = |name: &str, reserved, max| AppShare {
        name: AppName::parse(name).unwrap(),
        reserved,
        max: Some(max),
        weight: 1,
    };
    Shares {
        steady: share("steady", 4, 10),
        hot: share("hot", 2, 6),
    }
}

/// Ten children of each application per run; the steady waits as given (ms).
fn steady(waits: [i64; 10]) -> Vec<Facts> {
    waits
        .iter()
        .enumerate()
        .map(|(i, &w)| child(i as i64 * 500, Some(w), Outcome::Served, 0))
        .collect()
}

fn hot(wait: i64) -> Vec<Facts> {
    (0..10)
        .map(|i| child(i * 200, Some(wait + i * 10), Outcome::Served, 0))
        .collect()
}

/// Steady alone waits 20..=110 ms; on one shared pool up to 2 s; with shares up to 150 ms,
/// while the pool stays full (10 of 10) whenever both want more than their reservation.
pub fn measured() -> Measured {
    let alone = [20, 30, 40, 50, 60, 70, 80, 90, 100, 110];
    let contended = samples(&[(5, 0, 5, 30), (4, 1, 6, 30), (5, 0, 5, 20), (3, 0, 6, 10)]);
    Measured {
        steady_alone: vec![data(
            "steady",
            true,
            steady(alone),
            samples(&[(5, 0, 0, 0), (4, 0, 0, 0)]),
            5,
        )],
        ungoverned: vec![
            data(
                "steady",
                false,
                (0..10)
                    .map(|i| child(i * 100, None, Outcome::Served, 1))
                    .collect(),
                vec![],
                20,
            ),
            data(
                "hot",
                false,
                (0..10)
                    .map(|i| child(i * 100, None, Outcome::Failed("DatabaseBusy".into()), 3))
                    .collect(),
                vec![],
                20,
            ),
        ],
        shared_pool: vec![
            data(
                "steady",
                true,
                steady([100, 300, 600, 900, 1200, 1500, 1800, 1900, 2000, 2000]),
                samples(&[(2, 3, 8, 30), (1, 4, 9, 30)]),
                10,
            ),
            data("hot", true, hot(1500), vec![], 10),
        ],
        shares: vec![
            data(
                "steady",
                true,
                steady([20, 30, 40, 50, 60, 70, 80, 90, 100, 150]),
                contended,
                10,
            ),
            data("hot", true, hot(3000), vec![], 10),
        ],
    }
}

pub fn options() -> Options {
    Options {
        scenario: crate::args::Scenario::Hotspot,
        hotspot: AskedHotspot {
            steady: Asked {
                executions: 10,
                concurrency: 6,
                reserved: 4,
                max: Some(10),
            },
            hot: Asked {
                executions: 10,
                concurrency: 40,
                reserved: 2,
                max: Some(6),
            },
            hot_start: Some(1500),
        },
        ..Options::default()
    }
}

pub fn report() -> HotspotReport {
    build(
        &options(),
        &shares(),
        10,
        20,
        &measured(),
        "2025-01-01T00:00:00.000Z".into(),
    )
}

/// [`report`] with the steady application's p99 wait with shares set to `p99_ms` and the
/// checks made again.
pub fn report_with_steady_p99(p99_ms: i64) -> HotspotReport {
    let mut report = report();
    let steady = report
        .hotspot
        .runs
        .shares
        .applications
        .get_mut("steady")
        .unwrap();
    steady.lease_wait.as_mut().unwrap().p99_ms = Some(p99_ms);
    report.hotspot.checks = super::checks(&report.hotspot.runs, report.budget);
    report
}
