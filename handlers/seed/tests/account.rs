//! The application account the seed sets up, against the local MariaDB: it may run the
//! allow-listed queries and nothing else, and open no more connections than the pool's budget.

use lambda_runtime::{Context, LambdaEvent};
use leasehold_broker::BrokerConfig;
use leasehold_db::{AppAccount, AppAccountConfig, Database, DbAuth, DbConfig, DbError, NamedQuery};
use leasehold_testkit::mysql::{admin, admin_config, database_secret};
use leasehold_testkit::{ResponseCatcher, sdk_config, unique};
use mysql_async::prelude::Queryable;
use seed_handler::{SeedDeps, handle};
use serde_json::{Value, json};

const CREATE: &str = include_str!("../../../events/seed-create.json");

/// A name of at most 32 characters that no other test uses.
fn account_name() -> String {
    let name = unique("acct").replace('-', "_");
    assert!(name.len() <= 32, "{name}");
    name
}

async fn deps(account: Option<AppAccountConfig>) -> SeedDeps {
    let sdk = sdk_config().await;
    SeedDeps {
        broker: BrokerConfig::from_env().unwrap().broker(&sdk),
        db: Database::new(admin_config(&[]), &sdk),
        account: account.map(|config| AppAccount::new(config, &sdk)),
        http: reqwest::Client::new(),
    }
}

/// Sends a request of `kind` for `pool` with `budget`; the response the seed PUT.
async fn seed(deps: &SeedDeps, kind: &str, pool: &str, budget: u32) -> Value {
    let catcher = ResponseCatcher::start(200).await;
    let mut event: Value = serde_json::from_str(CREATE).unwrap();
    event["RequestType"] = json!(kind);
    event["ResponseURL"] = json!(catcher.url());
    event["ResourceProperties"] = json!({
        "ServiceToken": event["ServiceToken"], "Pool": pool, "Budget": budget.to_string()
    });
    if kind != "Create" {
        event["PhysicalResourceId"] = json!(format!("LeasePool-{pool}"));
    }
    handle(deps, LambdaEvent::new(event, Context::default()))
        .await
        .expect("the response was delivered");
    serde_json::from_str(&catcher.caught().last().unwrap().body).unwrap()
}

/// The query function's view: signed in as the account, over TLS.
async fn as_account(secret_arn: &str) -> Database {
    let config = DbConfig {
        auth: DbAuth::Secret {
            secret_arn: secret_arn.to_owned(),
        },
        ..admin_config(&[])
    };
    Database::new(config, &sdk_config().await)
}

/// The server's error code for a statement the account runs.
async fn refused(conn: &mut mysql_async::Conn, sql: &str) -> u16 {
    match conn.query_drop(sql).await {
        Err(mysql_async::Error::Server(e)) => e.code,
        other => panic!("{sql}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_account_runs_the_allow_list_only_within_the_budget() {
    // GIVEN an account that already has far more than it needs (as the local set-up once
    // granted), and another schema with a table in it
    let user = account_name();
    let secret = database_secret(&user, "it's a \\ Password-1").await;
    let mut admin = admin().await;
    admin
        .query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'old'; \
             GRANT ALL PRIVILEGES ON leasehold.* TO '{user}'@'%' WITH GRANT OPTION; \
             GRANT PROCESS ON *.* TO '{user}'@'%'; \
             CREATE DATABASE IF NOT EXISTS leasehold_other; \
             CREATE TABLE IF NOT EXISTS leasehold_other.secrets (id INT PRIMARY KEY); \
             GRANT SELECT ON leasehold_other.secrets TO '{user}'@'%'"
        ))
        .await
        .unwrap();
    let deps = deps(Some(AppAccountConfig::Secret {
        secret_arn: secret.clone(),
    }))
    .await;
    let pool = unique("account");

    // WHEN the seed creates a pool with a budget of 2
    let answer = seed(&deps, "Create", &pool, 2).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["Data"]["DatabaseUser"], user.as_str());

    // THEN the account runs the allow-listed queries, with the password from its secret
    let db = as_account(&secret).await;
    let list = NamedQuery::parse("listEmployees", None).unwrap();
    assert_eq!(db.run(list, 0).await.unwrap().len(), 3);
    let one = NamedQuery::parse("getEmployee", Some(&json!({"id": 2}))).unwrap();
    assert_eq!(db.run(one, 0).await.unwrap()[0]["lastName"], "Doe");

    // AND nothing else: no DDL, no writes, no other schema, no other user's data
    let mut conn = db.connect().await.unwrap();
    for sql in [
        "CREATE TABLE leasehold.Intruder (id INT)",
        "DROP TABLE leasehold.Employees",
        "ALTER TABLE leasehold.Employees ADD COLUMN salary INT",
        "INSERT INTO leasehold.Employees VALUES (9, 'Eve', 'Intruder')",
        "SELECT * FROM leasehold_other.secrets",
        "SELECT * FROM mysql.user",
    ] {
        // 1142: command denied to user for table
        assert_eq!(refused(&mut conn, sql).await, 1142, "{sql}");
    }
    assert_eq!(
        refused(&mut conn, "CREATE DATABASE leasehold_intruder").await,
        1044
    );
    assert_eq!(
        refused(
            &mut conn,
            "GRANT SELECT ON leasehold.Employees TO CURRENT_USER"
        )
        .await,
        1142
    );
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(
        grants[0].starts_with(&format!("GRANT USAGE ON *.* TO `{user}`@`%`")),
        "{grants:?}"
    );
    assert!(grants[0].contains("REQUIRE SSL"), "{grants:?}");
    assert!(grants[0].contains("MAX_USER_CONNECTIONS 2"), "{grants:?}");
    assert_eq!(
        grants[1],
        format!("GRANT SELECT ON `leasehold`.`Employees` TO `{user}`@`%`")
    );

    // AND a connection beyond the budget is refused as DatabaseBusy (MySQL 1226)
    let _second = db.connect().await.unwrap();
    let third = db.connect().await.expect_err("beyond the budget");
    assert_eq!(third.name(), "DatabaseBusy", "{third}");
    assert!(
        matches!(&third, DbError::Busy(e) if e.code == 1226),
        "{third:?}"
    );

    // WHEN the budget is raised to 3 THEN a third connection is allowed, and a fourth is not
    let answer = seed(&deps, "Update", &pool, 3).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    let _third = db.connect().await.unwrap();
    assert_eq!(db.connect().await.unwrap_err().name(), "DatabaseBusy");

    // WHEN the pool is deleted THEN the account stays (a renamed pool is created before its
    // old name is deleted)
    assert_eq!(seed(&deps, "Delete", &pool, 3).await["Status"], "SUCCESS");
    let exists: Option<u64> = admin
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (&user,))
        .await
        .unwrap();
    assert_eq!(exists, Some(1));
    drop((conn, _second, _third));
    admin
        .query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_iam_account_on_mariadb_is_refused_with_the_reason() {
    // GIVEN a seed told to set up an IAM-authenticated account, against MariaDB
    let deps = deps(Some(AppAccountConfig::Iam {
        user: account_name(),
    }))
    .await;
    let pool = unique("account-iam");

    // WHEN it creates the pool THEN it answers FAILED, naming what is missing, and writes no pool
    let answer = seed(&deps, "Create", &pool, 2).await;
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.starts_with("AccountSetupFailed:"), "{reason}");
    assert!(reason.contains("MySQL"), "{reason}");
    assert_eq!(
        deps.broker.pool(&pool).await.unwrap_err().name(),
        "PoolNotFound"
    );
}
