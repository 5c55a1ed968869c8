//! The query function against the local MariaDB. Tests that watch the server's connection
//! counters take one lock, so they do not see each other's connections.

use lambda_runtime::Diagnostic;
use leasehold_db::{Database, DbConfig};
use leasehold_testkit::mysql::{admin, connections_of, status};
use leasehold_testkit::{invoke, require_env, sdk_config};
use mysql_async::prelude::Queryable;
use query_handler::{QueryEvent, handle};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());
const APP_USER: &str = "leasehold";

async fn database() -> Database {
    let db = Database::new(DbConfig::from_env().unwrap(), &sdk_config().await);
    db.prepare(true).await.expect("sample schema");
    db
}

async fn call(db: &Database, payload: Value) -> Result<Value, Diagnostic> {
    invoke(|event| handle(db, event), payload).await
}

/// Waits until the server has let go of every application connection.
async fn app_connections_settle(admin: &mut mysql_async::Conn) -> u64 {
    let mut open = 0;
    for _ in 0..40 {
        open = connections_of(admin, APP_USER).await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    open
}

#[test]
fn the_sample_events_parse() {
    for text in [
        include_str!("../../../events/query-list-employees.json"),
        include_str!("../../../events/query-get-employee.json"),
    ] {
        let event: QueryEvent = serde_json::from_str(text).unwrap();
        leasehold_db::NamedQuery::parse(&event.query, event.params.as_ref()).unwrap();
    }
}

#[tokio::test]
async fn both_named_queries_return_the_sample_rows_and_close_their_connection() {
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;

    let list = call(&db, json!({"query": "listEmployees"})).await.unwrap();
    let names: Vec<String> = list["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["firstName"].as_str().unwrap(),
                r["lastName"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["John Smith", "Jane Doe", "Bob Rogers"]);
    assert_eq!(
        (list["query"].as_str(), list["rowCount"].as_u64()),
        (Some("listEmployees"), Some(3))
    );
    assert_eq!(app_connections_settle(&mut admin).await, 0);

    let one = call(&db, json!({"query": "getEmployee", "params": {"id": 2}}))
        .await
        .unwrap();
    assert_eq!(
        one["rows"],
        json!([{"id": 2, "firstName": "Jane", "lastName": "Doe"}])
    );
    let none = call(&db, json!({"query": "getEmployee", "params": {"id": 99}}))
        .await
        .unwrap();
    assert_eq!(none["rowCount"], 0);
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn hold_ms_keeps_the_connection_busy_in_the_database() {
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;
    let running =
        tokio::spawn(
            async move { call(&db, json!({"query": "listEmployees", "holdMs": 1500})).await },
        );
    // WHILE the query holds its connection, the server shows it sleeping
    let mut seen = false;
    for _ in 0..50 {
        let sleeping: Option<u64> = admin
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'DO SLEEP%'",
                (APP_USER,),
            )
            .await
            .unwrap();
        if sleeping == Some(1) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the hold runs in the database");
    assert_eq!(running.await.unwrap().unwrap()["rowCount"], 3);
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn rejected_requests_never_touch_the_database() {
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;
    let before = status(&mut admin, "Connections").await;
    let cases = [
        (json!({"query": "DROP TABLE Employees"}), "UnknownQuery"),
        (json!({"query": "SELECT * FROM mysql.user"}), "UnknownQuery"),
        (json!({"query": "getEmployee"}), "InvalidInput"),
        (
            json!({"query": "getEmployee", "params": {"id": "1; DROP TABLE Employees"}}),
            "InvalidInput",
        ),
        (
            json!({"query": "listEmployees", "holdMs": 30001}),
            "InvalidInput",
        ),
        (
            json!({"query": "listEmployees", "holdMs": -5}),
            "InvalidInput",
        ),
        (
            json!({"query": "listEmployees", "sql": "SELECT 1"}),
            "InvalidInput",
        ),
        (json!({"params": {}}), "InvalidInput"),
        (json!(42), "InvalidInput"),
    ];
    for (payload, expected) in cases {
        let err = call(&db, payload.clone()).await.unwrap_err();
        assert_eq!(err.error_type, expected, "{payload}");
    }
    // Only the admin's own status query ran in between.
    assert_eq!(status(&mut admin, "Connections").await, before);
}

#[tokio::test]
async fn a_failing_query_is_query_failed_and_still_closes_its_connection() {
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;
    admin
        .query_drop("RENAME TABLE Employees TO Employees_away")
        .await
        .unwrap();
    let result = call(&db, json!({"query": "listEmployees"})).await;
    admin
        .query_drop("RENAME TABLE Employees_away TO Employees")
        .await
        .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.error_type, "QueryFailed");
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn an_unreachable_database_is_database_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = DbConfig {
        host: "127.0.0.1".into(),
        port,
        name: require_env("DB_NAME"),
        secret_arn: require_env("DB_SECRET_ARN"),
    };
    let db = Database::new(config, &sdk_config().await);
    let err = call(&db, json!({"query": "listEmployees"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "DatabaseUnavailable");

    let config = DbConfig {
        secret_arn: "leasehold/local/no-such-secret".into(),
        ..DbConfig::from_env().unwrap()
    };
    let db = Database::new(config, &sdk_config().await);
    let err = call(&db, json!({"query": "listEmployees"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "DatabaseUnavailable");
    assert!(
        err.error_message.contains("secret"),
        "{}",
        err.error_message
    );
}
