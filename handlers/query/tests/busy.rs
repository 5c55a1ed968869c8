//! MySQL error 1040 (too many connections) reaches the workflow as `DatabaseBusy`. This test
//! fills the server's connection slots, so it lives alone in its own test binary.

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use leasehold_db::{Database, DbConfig};
use leasehold_testkit::mysql;
use leasehold_testkit::sdk_config;
use mysql_async::prelude::Queryable;
use serde_json::json;

/// MariaDB's smallest accepted max_connections.
const SMALLEST_MAX_CONNECTIONS: u64 = 10;

#[tokio::test]
async fn too_many_connections_is_database_busy() {
    mysql::prepare_application().await;
    let db = Database::new(DbConfig::from_env().unwrap(), &sdk_config().await);
    let mut admin = mysql::admin().await;
    let original: u64 = admin
        .query_first("SELECT @@max_connections")
        .await
        .unwrap()
        .unwrap();
    admin
        .query_drop(format!(
            "SET GLOBAL max_connections = {SMALLEST_MAX_CONNECTIONS}"
        ))
        .await
        .unwrap();

    // GIVEN every slot taken by administrator sessions (they may use max_connections + 1;
    // the application's account only max_connections)
    let mut held = Vec::new();
    loop {
        let connected: u64 = mysql::status(&mut admin, "Threads_connected").await;
        if connected > SMALLEST_MAX_CONNECTIONS || held.len() > 20 {
            break;
        }
        held.push(mysql::admin().await);
    }

    // WHEN the query function connects
    let result = query_handler::handle(
        &db,
        LambdaEvent::new(json!({"query": "listEmployees"}), Context::default()),
    )
    .await
    .map_err(Diagnostic::from);

    drop(held);
    admin
        .query_drop(format!("SET GLOBAL max_connections = {original}"))
        .await
        .unwrap();

    // THEN the error is the name a workflow retries on
    let err = result.unwrap_err();
    assert_eq!(err.error_type, "DatabaseBusy", "{}", err.error_message);
}
