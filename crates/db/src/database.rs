//! Connections, named queries and seeding, one short-lived connection per operation.

use crate::config::DbConfig;
use crate::error::DbError;
use crate::queries::{MAX_HOLD_MS, NamedQuery};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;
use tokio::sync::OnceCell;
use tracing::warn;

/// How long to wait for the server to accept a connection before calling it unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Database user and password, as RDS stores a managed master password.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Reads the credentials from Secrets Manager.
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretSource {
            client,
            secret_id: secret_id.into(),
        }
    }

    pub async fn fetch(&self) -> Result<Credentials, DbError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| DbError::SecretUnreadable(Box::new(e)))?;
        let text = out.secret_string().ok_or(DbError::SecretMalformed(
            "the database secret has no SecretString",
        ))?;
        // The parse error is not kept: it could quote part of the secret.
        serde_json::from_str(text).map_err(|_| {
            DbError::SecretMalformed(
                "the database secret is not JSON with string fields username and password",
            )
        })
    }
}

pub struct Database {
    config: DbConfig,
    secrets: SecretSource,
    credentials: OnceCell<Credentials>,
}

impl Database {
    pub fn new(config: DbConfig, sdk: &aws_config::SdkConfig) -> Self {
        let secrets =
            SecretSource::new(aws_sdk_secretsmanager::Client::new(sdk), &config.secret_arn);
        Database {
            config,
            secrets,
            credentials: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The credentials, read from the secret on first use and kept for the container's life.
    /// A failed read is not cached, so the next invocation tries again.
    async fn credentials(&self) -> Result<&Credentials, DbError> {
        self.credentials
            .get_or_try_init(|| self.secrets.fetch())
            .await
    }

    /// Opens one connection over TCP.
    pub async fn connect(&self) -> Result<Conn, DbError> {
        let creds = self.credentials().await?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.config.host.clone())
            .tcp_port(self.config.port)
            .user(Some(creds.username.clone()))
            .pass(Some(creds.password.clone()))
            .db_name(Some(self.config.name.clone()))
            // Stay on TCP: the driver would otherwise switch to a local socket it discovers.
            .prefer_socket(false);
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(DbError::from_connect(e)),
            Err(_) => Err(DbError::ConnectTimeout {
                host: self.config.host.clone(),
                port: self.config.port,
                seconds: CONNECT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Runs one named query on a fresh connection, optionally keeping the connection busy
    /// for `hold_ms` first, and closes the connection whatever happens.
    pub async fn run(&self, query: NamedQuery, hold_ms: u64) -> Result<Vec<Value>, DbError> {
        if hold_ms > MAX_HOLD_MS {
            return Err(DbError::InvalidInput(format!(
                "holdMs must be at most {MAX_HOLD_MS}"
            )));
        }
        let mut conn = self.connect().await?;
        let result = run_on(&mut conn, query, hold_ms).await;
        close(conn, result).await
    }

    /// Reads `@@max_connections`, and creates the sample schema and rows when `seed` is set,
    /// on one connection.
    pub async fn prepare(&self, seed: bool) -> Result<u64, DbError> {
        let mut conn = self.connect().await?;
        let result = prepare_on(&mut conn, seed).await;
        close(conn, result).await
    }
}

async fn run_on(conn: &mut Conn, query: NamedQuery, hold_ms: u64) -> Result<Vec<Value>, DbError> {
    if hold_ms > 0 {
        let seconds = hold_ms as f64 / 1000.0;
        conn.exec_drop("DO SLEEP(?)", (seconds,))
            .await
            .map_err(DbError::from_query)?;
    }
    let (sql, params) = query.statement();
    let rows: Vec<Row> = conn.exec(sql, params).await.map_err(DbError::from_query)?;
    Ok(rows.into_iter().map(row_to_json).collect())
}

/// The sample table of the original AWS sample, with its three rows.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS Employees (\
    id INT NOT NULL PRIMARY KEY, \
    first_name VARCHAR(64) NOT NULL, \
    last_name VARCHAR(64) NOT NULL) ENGINE=InnoDB";
const SAMPLE_ROWS: &str = "INSERT IGNORE INTO Employees (id, first_name, last_name) VALUES \
    (1, 'John', 'Smith'), (2, 'Jane', 'Doe'), (3, 'Bob', 'Rogers')";

async fn prepare_on(conn: &mut Conn, seed: bool) -> Result<u64, DbError> {
    if seed {
        conn.query_drop(SCHEMA).await.map_err(DbError::from_query)?;
        conn.query_drop(SAMPLE_ROWS)
            .await
            .map_err(DbError::from_query)?;
    }
    let max: Option<u64> = conn
        .query_first("SELECT @@max_connections")
        .await
        .map_err(DbError::from_query)?;
    max.ok_or(DbError::NoRow("SELECT @@max_connections"))
}

/// Closes the connection, keeping the operation's own result; a failed close is only logged
/// because the server drops the session anyway when the socket goes.
async fn close<T>(conn: Conn, result: Result<T, DbError>) -> Result<T, DbError> {
    if let Err(error) = conn.disconnect().await {
        warn!(error = %error, "closing the database connection failed");
    }
    result
}

fn row_to_json(row: Row) -> Value {
    let columns = row.columns();
    let values = row.unwrap();
    let mut object = Map::new();
    for (column, value) in columns.iter().zip(values) {
        object.insert(column.name_str().into_owned(), value_to_json(value));
    }
    Value::Object(object)
}

fn value_to_json(value: mysql_async::Value) -> Value {
    use mysql_async::Value as V;
    match value {
        V::NULL => Value::Null,
        V::Int(i) => json!(i),
        V::UInt(u) => json!(u),
        V::Float(f) => json!(f),
        V::Double(d) => json!(d),
        V::Bytes(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Value::String(text),
            Err(e) => Value::String(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
        V::Date(y, mo, d, h, mi, s, us) => Value::String(format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        V::Time(negative, days, h, mi, s, us) => Value::String(format!(
            "{}{:02}:{mi:02}:{s:02}.{us:06}",
            if negative { "-" } else { "" },
            u32::from(h) + days * 24
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print_the_password() {
        let creds = Credentials {
            username: "app".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("app") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn values_map_to_json_types() {
        use mysql_async::Value as V;
        assert_eq!(value_to_json(V::Int(-3)), json!(-3));
        assert_eq!(value_to_json(V::Bytes(b"Doe".to_vec())), json!("Doe"));
        assert_eq!(value_to_json(V::NULL), Value::Null);
        assert_eq!(
            value_to_json(V::Date(2024, 2, 29, 13, 5, 9, 0)),
            json!("2024-02-29T13:05:09.000000")
        );
    }
}
