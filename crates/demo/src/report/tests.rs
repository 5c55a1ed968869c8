//! The report's shape, its figures and its checks.

use super::*;
use crate::report::sample;
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
fn promises_decide_the_exit_status_and_goals_are_only_measured() {
    // GIVEN the sample: queued p99 2000 ms against polling's 7000, 5 served per second
    // against a physical limit of 5 / 1 s
    let mut report = sample::report();
    assert!(report.checks.queued_p99_at_most_a_third_of_polling);
    assert!(report.checks.queued_served_near_physical_limit);
    assert!(report.checks.queued_goals_met());
    assert!(report.passed());
    // WHEN the queued tail is too long, the goal shows as missed but the demo passes
    report.checks.queued_p99_at_most_a_third_of_polling = false;
    assert!(!report.checks.queued_goals_met());
    assert!(report.passed());
    let shown = text(&report);
    assert!(shown.contains("miss queued: end-to-end p99"), "{shown}");
    assert!(
        !shown.contains("FAIL"),
        "a missed goal is not a failure: {shown}"
    );
    // AND a waiter left at the end fails it whatever was injected
    report.load.kill_probability = 0.1;
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
