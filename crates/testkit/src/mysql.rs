//! An administrator's view of the local MariaDB, for tests that observe connections or
//! change server limits. The administrator's password lives only in the local Secrets
//! Manager (`DB_ADMIN_SECRET_ARN`), like the application's.

use crate::env::{require_env, sdk_config};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::Value;

/// Opens an administrator connection over TCP.
pub async fn admin() -> Conn {
    let sdk = sdk_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(require_env("DB_ADMIN_SECRET_ARN"))
        .send()
        .await
        .expect("the admin secret is readable");
    let creds: Value = serde_json::from_str(secret.secret_string().expect("secret string"))
        .expect("the admin secret is JSON");
    let opts = OptsBuilder::default()
        .ip_or_hostname(require_env("DB_HOST"))
        .tcp_port(require_env("DB_PORT").parse().expect("DB_PORT is a port"))
        .user(creds["username"].as_str())
        .pass(creds["password"].as_str())
        .db_name(Some(require_env("DB_NAME")))
        .prefer_socket(false);
    Conn::new(opts)
        .await
        .expect("admin connection to the local MariaDB")
}

/// A global status counter such as `Threads_connected`.
pub async fn status(conn: &mut Conn, name: &str) -> u64 {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL STATUS WHERE Variable_name = ?", (name,))
        .await
        .expect("SHOW GLOBAL STATUS");
    row.and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("status {name} is not a number"))
}

/// Connections currently open by the given account.
pub async fn connections_of(conn: &mut Conn, user: &str) -> u64 {
    let count: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        )
        .await
        .expect("PROCESSLIST");
    count.unwrap_or(0)
}
