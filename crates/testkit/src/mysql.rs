//! An administrator's view of the local MariaDB, for tests that observe connections or
//! change server limits, and the preparation the seed would make. The administrator's password
//! lives only in the local Secrets Manager (`DB_ADMIN_SECRET_ARN`), like the application's.
//! The local MariaDB takes TLS connections only; `DB_TLS_CA_FILE` names its authority.

use crate::env::{require_env, sdk_config};
use leasehold_db::{AppAccount, AppAccountConfig, Database, DbConfig};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use serde_json::Value;
use std::path::PathBuf;

/// The connection limit of the local application account (`DB_SECRET_ARN`) while handler tests
/// use it: a pool budget large enough for tests that run side by side.
pub const APPLICATION_CONNECTIONS: u32 = 12;

/// Connection options for the local MariaDB as `user`, over TLS with the local authority.
pub fn options(user: &str, password: &str) -> OptsBuilder {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(require_env("DB_HOST"))
        .tcp_port(require_env("DB_PORT").parse().expect("DB_PORT is a port"))
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some(require_env("DB_NAME")))
        .prefer_socket(false);
    if let Ok(ca) = std::env::var("DB_TLS_CA_FILE") {
        opts = opts.ssl_opts(
            SslOpts::default()
                .with_root_certs(vec![PathBuf::from(ca).into()])
                .with_disable_built_in_roots(true),
        );
    }
    opts
}

/// The username and password of a database secret.
pub async fn secret_credentials(secret_id: &str) -> (String, String) {
    let sdk = sdk_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .expect("the database secret is readable");
    let creds: Value = serde_json::from_str(secret.secret_string().expect("secret string"))
        .expect("the database secret is JSON");
    (
        creds["username"].as_str().expect("username").to_owned(),
        creds["password"].as_str().expect("password").to_owned(),
    )
}

/// A new secret `{"username","password"}` in the local Secrets Manager; its ARN.
pub async fn database_secret(username: &str, password: &str) -> String {
    let sdk = sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(crate::unique("database-secret"))
        .secret_string(serde_json::json!({"username": username, "password": password}).to_string())
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .expect("the new secret's ARN")
        .to_owned()
}

/// Opens an administrator connection over TCP.
pub async fn admin() -> Conn {
    let (user, password) = secret_credentials(&require_env("DB_ADMIN_SECRET_ARN")).await;
    Conn::new(options(&user, &password))
        .await
        .expect("admin connection to the local MariaDB")
}

/// The database settings of the local services, signed in as the administrator (what the seed
/// uses), with some settings replaced.
pub fn admin_config(overrides: &[(&str, &str)]) -> DbConfig {
    DbConfig::from_lookup(|key| {
        if let Some((_, v)) = overrides.iter().find(|(k, _)| *k == key) {
            return Some(v.to_string());
        }
        match key {
            "DB_SECRET_ARN" => std::env::var("DB_ADMIN_SECRET_ARN").ok(),
            other => std::env::var(other).ok(),
        }
    })
    .expect("the local services' database settings")
}

/// What the seed does before the query function runs: the sample table and rows, and the
/// application account of `DB_SECRET_ARN` allowed to query them, at most
/// [`APPLICATION_CONNECTIONS`] at a time.
pub async fn prepare_application() {
    let sdk = sdk_config().await;
    let admin = Database::new(admin_config(&[]), &sdk);
    admin.prepare(true).await.expect("sample schema");
    let account = AppAccount::new(
        AppAccountConfig::Secret {
            secret_arn: require_env("DB_SECRET_ARN"),
        },
        &sdk,
    );
    admin
        .set_up_account(&account, APPLICATION_CONNECTIONS)
        .await
        .expect("the application account");
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

/// The account's own connection limit (`MAX_USER_CONNECTIONS`; 0 is none), if it exists.
pub async fn connection_limit(conn: &mut Conn, user: &str) -> Option<u64> {
    conn.exec_first(
        "SELECT max_user_connections FROM mysql.user WHERE User = ? AND Host = '%'",
        (user,),
    )
    .await
    .expect("mysql.user")
}

/// Sets the account's own connection limit (`MAX_USER_CONNECTIONS`; 0 for none).
pub async fn set_connection_limit(conn: &mut Conn, user: &str, limit: u64) {
    conn.query_drop(format!(
        "ALTER USER '{user}'@'%' WITH MAX_USER_CONNECTIONS {limit}"
    ))
    .await
    .expect("ALTER USER");
}

/// `SHOW GRANTS` for the account `'user'@'%'`.
pub async fn grants_of(conn: &mut Conn, user: &str) -> Vec<String> {
    conn.query(format!("SHOW GRANTS FOR '{user}'@'%'"))
        .await
        .expect("SHOW GRANTS")
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

/// Rotates the password of the account in the secret `secret_id` as a managed rotation does: a
/// new password in MariaDB and in the secret. Later readers of the secret get the new one;
/// anyone holding the old one is refused (MySQL 1045) until they read the secret again.
pub async fn rotate_password(secret_id: &str, new_password: &str) {
    let sdk = sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let current = secrets
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .expect("the secret is readable");
    let mut creds: Value = serde_json::from_str(current.secret_string().expect("secret string"))
        .expect("the secret is JSON");
    let user = creds["username"]
        .as_str()
        .expect("the secret names its user")
        .to_owned();
    let mut conn = admin().await;
    // ALTER USER takes no placeholders: quote the literal (a test's own password).
    let quoted = new_password.replace('\\', "\\\\").replace('\'', "''");
    conn.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{quoted}'"))
        .await
        .expect("ALTER USER");
    creds["password"] = Value::String(new_password.to_owned());
    secrets
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(creds.to_string())
        .send()
        .await
        .expect("PutSecretValue");
}

/// A certificate authority of its own, made with openssl in `dir`: nothing the local database
/// presents is signed by it. Returns the path of its certificate.
pub fn foreign_authority(dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("directory for the foreign authority");
    let cert = dir.join("foreign-ca.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=not the local database CA",
        ])
        .arg("-keyout")
        .arg(dir.join("foreign-ca-key.pem"))
        .arg("-out")
        .arg(&cert)
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (scripts/dev-env.sh needs it too)");
    assert!(status.success(), "openssl made no certificate");
    cert
}
