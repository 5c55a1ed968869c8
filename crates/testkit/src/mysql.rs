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

/// Rotates the application user's password as a managed rotation does: a new password in
/// MariaDB and in its secret (`DB_SECRET_ARN`). Later readers of the secret get the new one;
/// anyone holding the old one is refused (MySQL 1045) until they read the secret again.
pub async fn rotate_application_password(new_password: &str) {
    let sdk = sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_id = require_env("DB_SECRET_ARN");
    let current = secrets
        .get_secret_value()
        .secret_id(&secret_id)
        .send()
        .await
        .expect("the application secret is readable");
    let mut creds: Value = serde_json::from_str(current.secret_string().expect("secret string"))
        .expect("the application secret is JSON");
    let user = creds["username"]
        .as_str()
        .expect("the secret names its user")
        .to_owned();
    let mut conn = admin().await;
    // ALTER USER takes no placeholders: quote the literal (a test's own password).
    let quoted = new_password.replace('\\', "\\\\").replace('\'', "''");
    conn.query_drop(format!(
        "ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{quoted}'"
    ))
    .await
    .expect("ALTER USER");
    creds["password"] = Value::String(new_password.to_owned());
    secrets
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(creds.to_string())
        .send()
        .await
        .expect("PutSecretValue");
}
