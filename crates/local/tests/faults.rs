//! Fault tests of the lease budget on the local stack (real handler binaries, MariaDB, moto):
//! aborting work must never hand a slot to a newcomer while the aborted work still holds a
//! database connection.

mod common;

use common::{Setup, start};
use leasehold_testkit::mysql::{admin, connections_of, set_connection_limit};
use std::time::Duration;

const BUDGET: u64 = 4;
/// The query function's timeout in these tests, and so how long an aborted lease drains.
const QUERY_TIMEOUT: u64 = 12;

/// The load of the confirmed report: a harness whose queries hold their connection for a while.
fn harness_input(iterations: u32) -> String {
    format!(
        r#"{{"iterations": {iterations}, "concurrency": 8, "pool": "main", "query": "listEmployees", "params": {{}}, "holdMs": 6000}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_a_harness_mid_load_never_lets_a_new_one_exceed_the_budget() {
    // GIVEN a pool of 4 and a harness whose queries hold their connections for 6 s
    let t = start(Setup {
        parameters: vec![
            ("PoolBudget", BUDGET.to_string()),
            ("QueryTimeoutSeconds", QUERY_TIMEOUT.to_string()),
        ],
        ..Setup::default()
    })
    .await;
    let mut db = admin().await;
    let app_user = t.app_account();
    // (without the account's own cap at the budget, its second line of defence, so that the
    // connections counted below are what the leases alone allow)
    set_connection_limit(&mut db, &app_user, 0).await;
    let first = t
        .start_execution("LoadHarnessStateMachine", &harness_input(8))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while connections_of(&mut db, &app_user).await < BUDGET {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first harness never filled the pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // WHEN it is stopped while its queries run, and a second harness starts right away
    t.sfn
        .stop_execution()
        .execution_arn(&first)
        .cause("operator stop")
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.finished(&first, Duration::from_secs(20))
            .await
            .status
            .as_str(),
        "ABORTED"
    );
    let second = t
        .start_execution("LoadHarnessStateMachine", &harness_input(8))
        .await;

    // THEN for as long as the old queries may run, the database never sees more application
    // connections than the budget, and the pool never counts more leases than its budget
    let mut most_connections = 0;
    let mut most_leases = 0;
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < watch_until {
        most_connections = most_connections.max(connections_of(&mut db, &app_user).await);
        let (_, in_use, records) = t.pool().await;
        most_leases = most_leases.max(in_use.max(records as u64));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        most_connections <= BUDGET,
        "{most_connections} application connections with a budget of {BUDGET}"
    );
    assert!(most_leases <= BUDGET, "{most_leases} leases counted");

    // AND once the second harness is stopped too, every lease drains and is reclaimed: nothing
    // is held when the work is over
    t.sfn
        .stop_execution()
        .execution_arn(&second)
        .send()
        .await
        .unwrap();
    t.finished(&second, Duration::from_secs(20)).await;
    assert_eq!(
        t.reclaimed(Duration::from_secs(QUERY_TIMEOUT + 20)).await,
        (0, 0)
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_answer_is_lost_is_given_back_before_the_fallback() {
    // GIVEN an acquire function whose every grant commits in DynamoDB but whose answer is lost
    // on the way back (DependencyFailure), retries included
    let t = start(Setup {
        function_env: vec![(
            "AcquireFunction",
            "LEASEHOLD_FAULT_LOSE_GRANT_RESPONSES",
            "1".into(),
        )],
        ..Setup::default()
    })
    .await;

    // WHEN a connection workflow runs
    let input = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0}"#;
    let arn = t.start_execution("ConnectionStateMachine", input).await;
    let d = t.finished(&arn, Duration::from_secs(60)).await;

    // THEN it takes the fallback branch (it never learnt that it holds a lease) ...
    assert_eq!(d.status.as_str(), "SUCCEEDED", "{:?}", d.cause());
    let output: serde_json::Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(output["status"], "FALLBACK", "{output}");
    assert_eq!(output["reason"], "DependencyFailure", "{output}");
    // ... and the lease its grant took is given back before it ends: a succeeded execution
    // gets no cleanup event, so nothing else would free the slot before its expiry
    let (_, in_use, records) = t.pool().await;
    assert_eq!(
        (in_use, records),
        (0, 0),
        "(in use, lease records) right after the execution"
    );
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_whose_answer_is_lost_is_not_run_twice_under_one_lease() {
    // GIVEN a query function whose answers never reach the workflow, while each invocation runs
    // on holding its connection for 4 s
    let t = start(Setup {
        lose_answers: vec![("QueryFunction", 1.0)],
        parameters: vec![("QueryTimeoutSeconds", "8".into())],
        ..Setup::default()
    })
    .await;
    let mut db = admin().await;
    let app_user = t.app_account();

    // WHEN one connection workflow runs
    let input = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 4000}"#;
    let arn = t.start_execution("ConnectionStateMachine", input).await;

    // THEN its one lease never covers more than one open connection: a lost answer does not
    // prove the first invocation ended, so the query is not started again
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        most = most.max(connections_of(&mut db, &app_user).await);
        let d = t
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap();
        // (the execution may end before the query connects: watch until its invocation is over)
        let invocation_over = t.logs("QueryFunction").contains("END RequestId");
        if d.status.as_str() != "RUNNING"
            && invocation_over
            && connections_of(&mut db, &app_user).await == 0
        {
            assert_eq!(d.status.as_str(), "FAILED");
            assert_eq!(d.error(), Some("Lambda.ServiceException"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(most, 1, "{most} connections under one lease");
    // AND the lease drains (its query may still run) and is reclaimed afterwards
    assert_eq!(t.reclaimed(Duration::from_secs(30)).await, (0, 0));
    t.shutdown().await;
}
