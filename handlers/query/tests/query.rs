//! The query function against the local MariaDB. Tests that watch the server's connection
//! counters take one lock, so they do not see each other's connections.

use lambda_runtime::Diagnostic;
use leasehold_db::{Database, DbAuth, DbConfig};
use leasehold_testkit::mysql::{admin, connections_of, prepare_application, status};
use leasehold_testkit::{invoke, require_env, sdk_config};
use mysql_async::prelude::Queryable;
use query_handler::{QueryEvent, handle};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());
const APP_USER: &str = "leasehold";

/// The query function's database: the application account of `DB_SECRET_ARN`, prepared as the
/// seed would prepare it.
async fn database() -> Database {
    prepare_application().await;
    Database::new(DbConfig::from_env().unwrap(), &sdk_config().await)
}

async fn call(db: &Database, payload: Value) -> Result<Value, Diagnostic> {
    invoke(|event| handle(db, event), payload).await
}

/// The settings of the local services with some of them replaced.
fn config_with(overrides: &[(&str, &str)]) -> DbConfig {
    DbConfig::from_lookup(|key| {
        overrides
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .or_else(|| std::env::var(key).ok())
    })
    .unwrap()
}

/// Waits until the server shows one of the application's statements sleeping.
async fn app_sleep_seen(admin: &mut mysql_async::Conn) -> bool {
    for _ in 0..80 {
        let sleeping: Option<u64> = admin
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE '%SLEEP(%'",
                (APP_USER,),
            )
            .await
            .unwrap();
        if sleeping == Some(1) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A TCP relay on 127.0.0.1 to the local MariaDB that, once `freeze` is set, keeps reading
/// what the server sends but no longer passes it on: a server that went silent mid-query.
fn freezing_relay() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let freeze = Arc::new(AtomicBool::new(false));
    let upstream = format!("{}:{}", require_env("DB_HOST"), require_env("DB_PORT"));
    let frozen = Arc::clone(&freeze);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone())
            else {
                return;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(Shutdown::Both);
            });
            let frozen = Arc::clone(&frozen);
            let (mut server_in, mut client_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = server_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if !frozen.load(Ordering::SeqCst) && client_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client_out.shutdown(Shutdown::Both);
            });
        }
    });
    (port, freeze)
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
    assert!(
        app_sleep_seen(&mut admin).await,
        "the hold runs in the database"
    );
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
        auth: DbAuth::Secret {
            secret_arn: require_env("DB_SECRET_ARN"),
        },
        tls: None,
        statement_timeout: leasehold_db::config::DEFAULT_STATEMENT_TIMEOUT,
    };
    let db = Database::new(config, &sdk_config().await);
    let err = call(&db, json!({"query": "listEmployees"}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "DatabaseUnavailable");

    let config = DbConfig {
        auth: DbAuth::Secret {
            secret_arn: "leasehold/local/no-such-secret".into(),
        },
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

#[tokio::test]
async fn a_statement_over_the_limit_is_query_timed_out_and_leaves_no_connection() {
    let _serial = SERIAL.lock().await;
    let db = Database::new(
        config_with(&[("DB_STATEMENT_TIMEOUT_MS", "1000")]),
        &sdk_config().await,
    );
    prepare_application().await;
    let mut admin = admin().await;

    // WHEN a request holds its connection five times longer than the statement limit
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        call(&db, json!({"query": "listEmployees", "holdMs": 5000})),
    )
    .await
    .expect("the call ends");
    let took = started.elapsed();

    // THEN the server stops it at the limit, the error says so by name
    let err = result.unwrap_err();
    assert_eq!(err.error_type, "QueryTimedOut", "{}", err.error_message);
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    // AND the application's connection is gone right after
    assert_eq!(connections_of(&mut admin, APP_USER).await, 0);
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn a_server_gone_silent_mid_query_is_database_unavailable_within_the_limit() {
    let _serial = SERIAL.lock().await;
    database().await;
    let mut admin = admin().await;
    let (port, freeze) = freezing_relay();
    let db = Database::new(
        config_with(&[
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", &port.to_string()),
            ("DB_STATEMENT_TIMEOUT_MS", "1000"),
        ]),
        &sdk_config().await,
    );

    // GIVEN a request whose statement is running in the database
    let started = Instant::now();
    let running = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(12),
            call(&db, json!({"query": "listEmployees", "holdMs": 5000})),
        )
        .await
    });
    assert!(
        app_sleep_seen(&mut admin).await,
        "the hold runs in the database"
    );
    // WHEN nothing more comes back from the server
    freeze.store(true, Ordering::SeqCst);

    // THEN the function gives up by itself, well before the hold would have ended
    let result = running
        .await
        .unwrap()
        .expect("the call must not hang on a silent socket");
    let took = started.elapsed();
    let err = result.unwrap_err();
    assert_eq!(
        err.error_type, "DatabaseUnavailable",
        "{}",
        err.error_message
    );
    assert!(took < Duration::from_millis(4500), "took {took:?}");
    // AND the server has let go of the session as well
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn a_server_that_never_greets_is_database_unavailable_within_the_connect_timeout() {
    // GIVEN a listener that takes connections and never says a word
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let db = Database::new(
        config_with(&[("DB_HOST", "127.0.0.1"), ("DB_PORT", &port)]),
        &sdk_config().await,
    );
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(12),
        call(&db, json!({"query": "listEmployees"})),
    )
    .await
    .expect("the call must not hang on a silent server");
    let err = result.unwrap_err();
    assert_eq!(
        err.error_type, "DatabaseUnavailable",
        "{}",
        err.error_message
    );
    assert!(
        started.elapsed() < leasehold_db::database::CONNECT_TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn an_invocation_near_its_deadline_stops_before_it() {
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;
    // GIVEN an invocation with little time left
    let left = query_handler::DEADLINE_MARGIN / 2;
    let deadline = std::time::SystemTime::now() + left;
    let mut context = lambda_runtime::Context::default();
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // WHEN it asks for a hold
    let started = Instant::now();
    let result = handle(
        &db,
        lambda_runtime::LambdaEvent::new(
            json!({"query": "listEmployees", "holdMs": 5000}),
            context,
        ),
    )
    .await
    .map_err(Diagnostic::from);
    // THEN it times out before the deadline instead of running past it
    let err = result.unwrap_err();
    assert_eq!(err.error_type, "QueryTimedOut", "{}", err.error_message);
    assert!(started.elapsed() < left, "{:?}", started.elapsed());
    assert_eq!(app_connections_settle(&mut admin).await, 0);
}

#[tokio::test]
async fn a_redriven_execution_never_opens_a_connection() {
    // GIVEN a Query state run again by RedriveExecution: the lease its first run held was
    // released, drained or reclaimed when that run ended, and a redrive resumes at Query without
    // passing Acquire again
    let _serial = SERIAL.lock().await;
    let db = database().await;
    let mut admin = admin().await;
    let before = status(&mut admin, "Connections").await;

    // WHEN the query function is invoked with the execution's redrive count
    let err = call(
        &db,
        json!({"query": "listEmployees", "redriveCount": 1, "holdMs": 0}),
    )
    .await
    .unwrap_err();

    // THEN it refuses with a name the workflow matches, before any connection
    assert_eq!(err.error_type, "RedriveRefused", "{}", err.error_message);
    assert_eq!(status(&mut admin, "Connections").await, before);
    // AND a first run (redrive count 0, as every execution starts) is served as before
    let ok = call(
        &db,
        json!({"query": "listEmployees", "redriveCount": 0, "holdMs": 0}),
    )
    .await
    .unwrap();
    assert_eq!(ok["rowCount"], 3);
}
