//! The database password is rotated while the local stack runs (as RDS rotates a managed
//! master password): a warm query container that read the old one keeps serving. The query
//! function's account is the stack's own, the password stand-in for its IAM-authenticated
//! user (crates/local/src/database.rs).

mod common;

use common::{Setup, start};
use leasehold_testkit::mysql::rotate_password;
use std::time::Duration;

const LIST: &str = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 0}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_keep_succeeding_when_the_password_is_rotated_under_a_running_stack() {
    // GIVEN a stack whose query container has connected with the current password
    let t = start(Setup::default()).await;
    let served = |d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput| {
        let out: serde_json::Value = serde_json::from_str(d.output().unwrap_or("null")).unwrap();
        out["status"] == "SERVED"
    };
    let first = t.start_execution("ConnectionStateMachine", LIST).await;
    assert!(served(&t.finished(&first, Duration::from_secs(30)).await));

    // WHEN the password changes in the database and in the secret
    let password = format!("rotated-{}", leasehold_testkit::unique("pw"));
    let account = t
        .stack()
        .database_accounts
        .iter()
        .find(|a| a.user == "leasehold_app")
        .expect("the query function's IAM user stands in as a local account");
    rotate_password(&account.secret_arn, &password).await;

    // THEN the next executions are served (the warm container is refused once, reads the
    // secret again and connects), and the same container did the work
    for _ in 0..2 {
        let arn = t.start_execution("ConnectionStateMachine", LIST).await;
        let d = t.finished(&arn, Duration::from_secs(30)).await;
        assert!(served(&d), "{:?} {:?}", d.status, d.output());
    }
    let query = &t.stats().await["functions"][format!("{}-QueryFunction", t.name)];
    assert_eq!(query["peakContainers"], 1, "{query}");
    assert!(
        t.logs("QueryFunction").contains("reading the secret again"),
        "the refusal was noticed"
    );
    t.shutdown().await;
}
