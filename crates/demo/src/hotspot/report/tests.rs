//! The hotspot report's figures, checks and shape.

use super::sample::{self, START, child, data, samples};
use super::*;
use serde_json::Value;

#[test]
fn contention_counts_only_samples_where_every_application_wants_more_than_its_share() {
    // GIVEN steady reserved 4 and hot reserved 2 on a budget of 10
    let reserved = [("steady", 4), ("hot", 2)];
    let points = samples(&[
        (5, 0, 5, 30), // both above: 10 in use
        (4, 1, 4, 30), // steady 4 + 1 waiting > 4: 8 in use
        (4, 0, 6, 30), // steady exactly at its share: not counted
        (6, 0, 2, 0),  // hot exactly at its share: not counted
        (0, 0, 0, 0),  // hot absent: not counted
    ]);
    // WHEN the window is measured
    let c = contention(&points, &reserved, 10);
    // THEN two samples qualify, with 10 and 8 leases: 9 of 10 on average
    assert_eq!((c.samples, c.of_samples), (2, 5));
    assert_eq!(c.mean_leases_in_use, Some(9.0));
    assert_eq!(c.budget_use, Some(0.9));
    // AND without a qualifying sample there is no figure, not a zero
    let none = contention(&points[2..], &reserved, 10);
    assert_eq!((none.samples, none.budget_use), (0, None));
}

#[test]
fn each_application_has_its_own_wait_percentiles_and_peaks() {
    // GIVEN the sample's shares run: steady waits 20..100 and 150 ms, hot 3000..3090 ms
    let report = sample::report();
    let shares = &report.hotspot.runs.shares;
    let steady = shares.app("steady").unwrap();
    let hot = shares.app("hot").unwrap();
    let wait = steady.lease_wait.as_ref().unwrap();
    // THEN nearest-rank percentiles of each application's own children
    assert_eq!(
        (wait.count, wait.p50_ms, wait.p99_ms),
        (10, Some(60), Some(150))
    );
    let hot_wait = hot.lease_wait.as_ref().unwrap();
    assert_eq!((hot_wait.p50_ms, hot_wait.max_ms), (Some(3040), Some(3090)));
    // AND peaks come from the application's own records, against its share
    assert_eq!((steady.peak_in_use, steady.max), (Some(5), Some(10)));
    assert_eq!(
        (hot.peak_in_use, hot.max, hot.peak_above_max),
        (Some(6), Some(6), Some(0))
    );
    assert_eq!((steady.peak_waiting, hot.peak_waiting), (Some(1), Some(30)));
    // AND the pool's figures add both up
    assert_eq!((shares.executions, shares.served), (20, 20));
    assert_eq!(shares.peak_lease_records, 10);
    // AND ungoverned has no lease figures but each application's outcomes
    let u = &report.hotspot.runs.ungoverned;
    assert_eq!(u.app("hot").unwrap().failed, 10);
    assert_eq!(u.app("hot").unwrap().lease_wait, None);
    assert_eq!(u.app("steady").unwrap().peak_in_use, None);
    assert_eq!(u.database_busy_errors, 10 + 30);
    assert!(u.contention.is_none());
}

#[test]
fn the_longest_wait_is_kept_per_second_in_which_it_ended() {
    // GIVEN waits ending at 150, 1300, 1520 and 3000 ms, and one child without a wait
    let facts = [
        child(100, Some(50), Outcome::Served, 0),
        child(900, Some(400), Outcome::Served, 0),
        child(1500, Some(20), Outcome::Served, 0),
        child(0, Some(3000), Outcome::Served, 0),
        child(2100, None, Outcome::Served, 0),
    ];
    // THEN each second keeps its longest
    assert_eq!(
        wait_by_end(&facts, START),
        vec![(0, 50), (1000, 400), (3000, 3000)]
    );
}

#[test]
fn goals_compare_with_alone_and_promises_decide() {
    // GIVEN steady p99 110 ms alone, 150 with shares, 2000 on one shared pool; a full
    // pool whenever both want more than their reservation
    let mut report = sample::report();
    let c = &report.hotspot.checks;
    assert!(
        c.shares_steady_p99_within_one_and_a_half_of_alone,
        "150 <= 1.5 x 110"
    );
    assert!(c.shared_pool_shows_hot_spot, "2000 > 1.5 x 110");
    assert!(c.shares_budget_use_at_least_90_percent);
    assert_eq!(
        report
            .hotspot
            .runs
            .shares
            .contention
            .as_ref()
            .unwrap()
            .budget_use,
        Some(1.0)
    );
    assert!(c.ungoverned_shows_database_busy);
    assert!(report.passed() && c.goals_met());
    // WHEN the hot application went above its max in the shares run
    let hot = report
        .hotspot
        .runs
        .shares
        .applications
        .get_mut("hot")
        .unwrap();
    hot.peak_in_use = Some(7);
    hot.peak_above_max = Some(1);
    report.hotspot.checks = checks(&report.hotspot.runs, report.budget);
    // THEN the promise fails, and with it the demo
    assert!(!report.hotspot.checks.no_application_above_max);
    assert!(!report.passed());
    // AND a longer steady tail is a missed goal, never a failure
    let report = sample::report_with_steady_p99(166);
    assert!(
        !report
            .hotspot
            .checks
            .shares_steady_p99_within_one_and_a_half_of_alone
    );
    assert!(report.passed());
}

#[test]
fn a_waiter_left_or_a_database_refusal_with_leases_fails_the_demo() {
    let mut report = sample::report();
    report.hotspot.runs.shared_pool.waiter_records_at_end = 1;
    report.hotspot.runs.steady_alone.database_busy_errors = 2;
    report.hotspot.checks = checks(&report.hotspot.runs, report.budget);
    assert!(!report.hotspot.checks.no_leases_or_waiters_left);
    assert!(!report.hotspot.checks.governed_no_database_busy);
    assert!(!report.passed());
}

#[test]
fn the_json_has_the_scenario_and_one_hotspot_object() {
    let json = serde_json::to_value(sample::report()).unwrap();
    assert_eq!(json["scenario"], "hotspot");
    for key in [
        "schemaVersion",
        "generatedAt",
        "budget",
        "maxConnections",
        "adminReserve",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    // Nothing of the queue scenario's shape: its runs are not run.
    assert!(json.get("runs").is_none() && json.get("fifoIdeal").is_none());
    let h = &json["hotspot"];
    let runs: Vec<&str> = h["runs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(runs, ["steadyAlone", "ungoverned", "sharedPool", "shares"]);
    let checks: Vec<&str> = h["checks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        checks,
        [
            "governedNoDatabaseBusy",
            "budgetNeverExceeded",
            "noApplicationAboveMax",
            "noLeasesOrWaitersLeft",
            "ungovernedShowsDatabaseBusy",
            "sharedPoolShowsHotSpot",
            "sharesSteadyP99WithinOneAndAHalfOfAlone",
            "sharesBudgetUseAtLeast90Percent",
        ]
    );
    let apps = &h["load"]["applications"];
    assert_eq!(apps[0]["name"], "steady");
    assert_eq!(
        (apps[1]["name"].as_str(), apps[1]["max"].as_u64()),
        (Some("hot"), Some(6))
    );
    let shares = &h["runs"]["shares"];
    assert_eq!(shares["divided"], true);
    assert_eq!(h["runs"]["sharedPool"]["divided"], false);
    assert_eq!(
        h["runs"]["sharedPool"]["applications"]["hot"]["max"],
        Value::Null
    );
    assert_eq!(shares["applications"]["steady"]["leaseWait"]["p99Ms"], 150);
    assert_eq!(shares["contention"]["budgetUse"], 1.0);
    let series = &shares["series"]["applications"]["steady"];
    assert_eq!(series["inUse"][0], serde_json::json!([0, 5]));
    assert_eq!(series["waiting"][1], serde_json::json!([300, 1]));
    assert_eq!(
        h["runs"]["steadyAlone"]["applications"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_run_of_one_application_has_no_contention_window() {
    let alone = run(
        &[data("steady", true, vec![], samples(&[(3, 0, 0, 0)]), 3)],
        Some(&sample::shares()),
        10,
    );
    assert!(alone.contention.is_none());
    assert_eq!(alone.app("steady").unwrap().peak_in_use, Some(3));
}

#[test]
fn the_load_says_when_the_hot_application_started_and_each_run_when_its_children_did() {
    let report_of = |measured: &Measured| {
        let report = build(
            &sample::options(),
            &sample::shares(),
            10,
            20,
            measured,
            "2025-01-01T00:00:00.000Z".into(),
        );
        serde_json::to_value(&report).unwrap()["hotspot"].clone()
    };
    // GIVEN the sample's options (hot asked to start 1500 ms after steady), and a hot
    // harness whose first child started 1520 ms into the run
    let mut measured = sample::measured();
    measured.shares[1].facts = (0..3)
        .map(|i| child(1520 + i * 200, Some(40), Outcome::Served, 0))
        .collect();
    measured.shares[0].facts.remove(0);
    // WHEN the report is built
    let h = report_of(&measured);
    // THEN the load records the delay asked for, and each application its first child's start
    assert_eq!(h["load"]["hotStartMs"], 1500);
    let apps = &h["runs"]["shares"]["applications"];
    assert_eq!(apps["hot"]["firstStartMs"], 1520);
    assert_eq!(apps["steady"]["firstStartMs"], 500);
    // (a harness without children has no first start)
    measured.shares[1].facts.clear();
    let h = report_of(&measured);
    assert_eq!(
        h["runs"]["shares"]["applications"]["hot"]["firstStartMs"],
        Value::Null
    );
}
