//! A small report of three made-up runs, for the tests of the report and of the page.

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
            name: mode.map_or("ungoverned", Mode::as_str).to_owned(),
            mode,
            harness_machine: "arn:machine:harness".into(),
            child_machine: "arn:machine:child".into(),
            input: json!({}),
            abort_after: None,
            start_after: None,
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
            apps: Vec::new(),
            missed: 0,
        },
        metrics,
        app_metrics: BTreeMap::new(),
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
        scenario: "queue",
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
