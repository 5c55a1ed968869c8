//! The template's database access, run locally: the seed signs in as the administrator (the
//! master user's stand-in) and sets up the query function's IAM-authenticated account, which
//! the local stack backs with a password account of this stack's own; the query function
//! signs in as that account over TLS, with the allow-listed queries' grants only and at most
//! the pool's budget of connections.

mod common;

use common::{Setup, start};
use leasehold_testkit::mysql::{admin, connection_limit, connections_of, grants_of};
use std::time::Duration;

const HOLD: &str = r#"{"pool": "main", "query": "listEmployees", "params": {}, "holdMs": 1500}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_function_signs_in_as_the_stacks_own_capped_account() {
    // GIVEN a stack with a pool budget of 2
    let t = start(Setup {
        parameters: vec![("PoolBudget", "2".into())],
        ..Setup::default()
    })
    .await;
    let stack = t.stack();
    let [account] = &stack.database_accounts[..] else {
        panic!(
            "one IAM user in the template: {:?}",
            stack.database_accounts
        );
    };
    assert_eq!(account.user, "leasehold_app");
    assert_eq!(
        account.account,
        leasehold_local::database::account_name(&t.name, "leasehold_app")
    );

    // THEN the query function is told to sign in with the account's secret over the local TLS
    let query = stack
        .lambda
        .resolve("QueryFunction")
        .expect("the query function");
    let env = &query.environment;
    assert_eq!(env["DB_AUTH"], "secret");
    assert_eq!(env["DB_SECRET_ARN"], account.secret_arn);
    assert_eq!(
        env["DB_TLS_CA_FILE"],
        std::env::var("DB_TLS_CA_FILE").unwrap()
    );
    // AND the seed signs in as the administrator and sets up that same account
    let seed = stack.lambda.resolve("SeedFunction").expect("the seed");
    assert_eq!(
        seed.environment["DB_SECRET_ARN"],
        std::env::var("DB_ADMIN_SECRET_ARN").unwrap()
    );
    assert_eq!(seed.environment["DB_APP_AUTH"], "secret");
    assert_eq!(seed.environment["DB_APP_SECRET_ARN"], account.secret_arn);

    // AND the seed capped the account at the budget, with the allow-list's grant only
    let mut admin = admin().await;
    assert_eq!(
        connection_limit(&mut admin, &account.account).await,
        Some(2)
    );
    let grants = grants_of(&mut admin, &account.account).await;
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(
        grants[1].starts_with("GRANT SELECT ON `leasehold`.`Employees`"),
        "{grants:?}"
    );

    // WHEN an execution holds its connection
    let arn = t.start_execution("ConnectionStateMachine", HOLD).await;
    let mut seen = 0;
    for _ in 0..100 {
        seen = connections_of(&mut admin, &account.account).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // THEN the connection is the stack's account's, and the execution is served
    assert_eq!(seen, 1, "the query runs as {}", account.account);
    let done = t.finished(&arn, Duration::from_secs(30)).await;
    let output: serde_json::Value = serde_json::from_str(done.output().unwrap_or("null")).unwrap();
    assert_eq!(output["status"], "SERVED", "{output}");
    t.shutdown().await;
}
