//! Connections, named queries and seeding, one short-lived connection per operation.
//!
//! # Statement limit
//! A statement must not outlive the function that started it: when the query function times
//! out, the workflow releases the lease at once, and a statement still running in the database
//! would hold a connection the budget no longer counts. So the statements of one operation get
//! [`DbConfig::statement_timeout`] between them, enforced twice:
//! - **by the server**, which interrupts the statement: before each statement the session limit
//!   is set to what is left of the budget. MariaDB calls it `max_statement_time` (seconds, any
//!   statement; error 1969), MySQL 8 / RDS MySQL `max_execution_time` (milliseconds, SELECT
//!   only; error 3024, or `SLEEP` returning 1). The server's kind is read once per container
//!   from `VERSION()`. The hold is a `SELECT SLEEP(?)` so that MySQL's limit applies to it too.
//!   Both surface as [`DbError::StatementTimeout`] (`QueryTimedOut`).
//! - **by the client**, in case the server or the socket has gone silent: the driver has no
//!   read timeout of its own, so every exchange is bounded by what is left of the budget plus
//!   [`IO_GRACE`]; past that the connection is dropped without a goodbye and the error is
//!   [`DbError::NoAnswer`] (`DatabaseUnavailable`).

use crate::config::{DbAuth, DbConfig, TlsConfig};
use crate::error::DbError;
use crate::queries::{MAX_HOLD_MS, NamedQuery};
use aws_credential_types::provider::ProvideCredentials;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use tracing::warn;

/// How long to wait for the server to accept a connection before calling it unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much longer than the statement limit the client waits for an answer before it calls the
/// server silent: time for the server to notice its limit and for the error to travel back.
pub const IO_GRACE: Duration = Duration::from_secs(2);

/// Which statement limit the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// `max_statement_time`, in seconds, for every statement.
    MariaDb,
    /// `max_execution_time`, in milliseconds, for SELECT statements (MySQL 8, RDS MySQL).
    MySql,
}

impl ServerKind {
    /// Reads the kind from `SELECT VERSION()`, such as `10.11.6-MariaDB` or `8.4.3`.
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            ServerKind::MariaDb
        } else {
            ServerKind::MySql
        }
    }

    /// The statement that limits each following statement of the session to `limit`, at least
    /// one millisecond (zero would mean no limit at all).
    pub fn limit_statement(self, limit: Duration) -> String {
        let ms = limit.as_millis().max(1);
        match self {
            ServerKind::MariaDb => format!(
                "SET SESSION max_statement_time = {}.{:03}",
                ms / 1000,
                ms % 1000
            ),
            ServerKind::MySql => format!("SET SESSION max_execution_time = {ms}"),
        }
    }
}

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

/// How long credentials read from the secret are used before they are read again. RDS rotates
/// a managed master password every 7 days by default; a rotation is also noticed at once by the
/// connect that the server refuses (MySQL 1045), which reads the secret again and retries.
pub const CREDENTIALS_TTL: Duration = Duration::from_secs(15 * 60);
/// MySQL's "Access denied for user": the password (or user) is not the server's any more.
const ER_ACCESS_DENIED_ERROR: u16 = 1045;

/// What signs IAM authentication tokens: the function's own credentials and region.
struct IamSigner {
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    region: Option<String>,
}

impl IamSigner {
    async fn token(&self, host: &str, port: u16, user: &str) -> Result<String, DbError> {
        let missing = |reason: &str| DbError::IamToken {
            reason: reason.to_owned(),
            source: None,
        };
        let region = self
            .region
            .as_deref()
            .ok_or_else(|| missing("no AWS region is configured"))?;
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| missing("no AWS credentials are configured"))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| DbError::IamToken {
                reason: "the function's AWS credentials are not available".to_owned(),
                source: Some(Box::new(e)),
            })?;
        crate::iam::auth_token(host, port, user, region, &credentials, SystemTime::now())
    }
}

pub struct Database {
    config: DbConfig,
    secrets: SecretSource,
    signer: IamSigner,
    /// The credentials and when they were read.
    credentials: Mutex<Option<(Arc<Credentials>, Instant)>>,
    server: OnceCell<ServerKind>,
}

impl Database {
    pub fn new(config: DbConfig, sdk: &aws_config::SdkConfig) -> Self {
        let secrets = SecretSource::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            config.secret_arn().unwrap_or_default(),
        );
        let signer = IamSigner {
            credentials: sdk.credentials_provider(),
            region: sdk.region().map(|r| r.as_ref().to_owned()),
        };
        Database {
            config,
            secrets,
            signer,
            credentials: Mutex::new(None),
            server: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The credentials, read from the secret on first use and again once they are older than
    /// [`CREDENTIALS_TTL`], or at once when `stale` (the server refused them). A failed read
    /// is not cached, so the next invocation tries again.
    async fn credentials(
        &self,
        stale: Option<&Arc<Credentials>>,
    ) -> Result<Arc<Credentials>, DbError> {
        let mut cached = self.credentials.lock().await;
        if let Some((creds, read_at)) = cached.as_ref() {
            let refused = stale.is_some_and(|s| Arc::ptr_eq(s, creds));
            if !refused && read_at.elapsed() < CREDENTIALS_TTL {
                return Ok(creds.clone());
            }
        }
        let creds = Arc::new(self.secrets.fetch().await?);
        *cached = Some((creds.clone(), Instant::now()));
        Ok(creds)
    }

    /// Opens one connection over TCP (TLS when `DB_TLS_CA_FILE` is set). With a secret, when
    /// the server refuses the credentials (MySQL 1045: the password was rotated since they were
    /// read), the secret is read again and the connect tried once more. With IAM, every
    /// connect signs a fresh token.
    pub async fn connect(&self) -> Result<Conn, DbError> {
        if let DbAuth::Iam { user } = &self.config.auth {
            let token = self
                .signer
                .token(&self.config.host, self.config.port, user)
                .await?;
            return self.connect_as(user, &token, true).await;
        }
        let creds = self.credentials(None).await?;
        match self
            .connect_as(&creds.username, &creds.password, false)
            .await
        {
            Err(DbError::Unavailable(mysql_async::Error::Server(e)))
                if e.code == ER_ACCESS_DENIED_ERROR =>
            {
                tracing::warn!(
                    "the database refused the cached credentials; reading the secret again"
                );
                let fresh = self.credentials(Some(&creds)).await?;
                self.connect_as(&fresh.username, &fresh.password, false)
                    .await
            }
            other => other,
        }
    }

    async fn connect_as(&self, user: &str, password: &str, token: bool) -> Result<Conn, DbError> {
        let mut opts = OptsBuilder::default()
            .ip_or_hostname(self.config.host.clone())
            .tcp_port(self.config.port)
            .user(Some(user.to_owned()))
            .pass(Some(password.to_owned()))
            .db_name(Some(self.config.name.clone()))
            // RDS asks for an IAM token with the cleartext plugin; it travels only inside TLS
            // (the configuration refuses IAM without DB_TLS_CA_FILE).
            .enable_cleartext_plugin(token)
            // Stay on TCP: the driver would otherwise switch to a local socket it discovers.
            .prefer_socket(false);
        if let Some(tls) = &self.config.tls {
            opts = opts.ssl_opts(ssl_opts(tls));
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.connect_error(e)),
            Err(_) => Err(DbError::ConnectTimeout {
                host: self.config.host.clone(),
                port: self.config.port,
                seconds: CONNECT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Classifies a failed connect; a failed TLS handshake is named as such, so that a wrong
    /// or missing certificate authority is not mistaken for a database that is down.
    fn connect_error(&self, error: mysql_async::Error) -> DbError {
        use mysql_async::{DriverError, Error, IoError};
        let Some(tls) = &self.config.tls else {
            return DbError::from_connect(error);
        };
        let handshake = match &error {
            Error::Driver(DriverError::NoClientSslFlagFromServer) => {
                return DbError::TlsNotOffered {
                    host: self.config.host.clone(),
                    port: self.config.port,
                };
            }
            Error::Io(IoError::Tls(_)) => true,
            // rustls reports a rejected certificate through the socket as invalid data.
            Error::Io(IoError::Io(io)) => io.kind() == std::io::ErrorKind::InvalidData,
            _ => false,
        };
        if handshake {
            DbError::Tls {
                host: self.config.host.clone(),
                port: self.config.port,
                ca_file: tls.ca_file.clone(),
                source: error,
            }
        } else {
            DbError::from_connect(error)
        }
    }

    /// Runs one named query on a fresh connection, optionally keeping the connection busy
    /// for `hold_ms` first, and closes the connection whatever happens.
    pub async fn run(&self, query: NamedQuery, hold_ms: u64) -> Result<Vec<Value>, DbError> {
        self.run_within(query, hold_ms, None).await
    }

    /// Like [`Database::run`], with the statements also ending by `end` (the invocation's own
    /// deadline less a margin) when that comes before the statement limit.
    pub async fn run_within(
        &self,
        query: NamedQuery,
        hold_ms: u64,
        end: Option<Instant>,
    ) -> Result<Vec<Value>, DbError> {
        if hold_ms > MAX_HOLD_MS {
            return Err(DbError::InvalidInput(format!(
                "holdMs must be at most {MAX_HOLD_MS}"
            )));
        }
        let mut conn = self.connect().await?;
        let limit = self.config.statement_timeout;
        let started = Instant::now();
        let result = async {
            let kind = self.server_kind(&mut conn, limit + IO_GRACE).await?;
            let budget = Budget::new(kind, limit, started, end);
            run_on(&mut conn, &budget, query, hold_ms).await
        }
        .await;
        close(conn, result).await
    }

    /// Reads `@@max_connections`, and creates the sample schema and rows when `seed` is set,
    /// on one connection.
    pub async fn prepare(&self, seed: bool) -> Result<u64, DbError> {
        let mut conn = self.connect().await?;
        let waited = self.config.statement_timeout + IO_GRACE;
        let result = match tokio::time::timeout(waited, prepare_on(&mut conn, seed)).await {
            Ok(result) => result,
            Err(_) => Err(DbError::NoAnswer { waited }),
        };
        close(conn, result).await
    }

    /// The server's kind, asked once per container.
    pub(crate) async fn server_kind(
        &self,
        conn: &mut Conn,
        waited: Duration,
    ) -> Result<ServerKind, DbError> {
        self.server
            .get_or_try_init(|| async {
                let version: Option<String> =
                    tokio::time::timeout(waited, conn.query_first("SELECT VERSION()"))
                        .await
                        .map_err(|_| DbError::NoAnswer { waited })?
                        .map_err(DbError::from_query)?;
                let version = version.ok_or(DbError::NoRow("SELECT VERSION()"))?;
                Ok(ServerKind::from_version(&version))
            })
            .await
            .copied()
    }
}

/// TLS trusting only the configured authorities (for RDS, its CA bundle), with the server's
/// name checked against its certificate.
fn ssl_opts(tls: &TlsConfig) -> SslOpts {
    SslOpts::default()
        .with_root_certs(vec![tls.ca_pem.to_vec().into()])
        .with_disable_built_in_roots(true)
}

/// What is left of the statement limit of one operation, on a server of a known kind.
struct Budget {
    kind: ServerKind,
    limit: Duration,
    deadline: Instant,
}

impl Budget {
    fn new(kind: ServerKind, limit: Duration, started: Instant, end: Option<Instant>) -> Self {
        let by_limit = started + limit;
        let deadline = end.map_or(by_limit, |end| end.min(by_limit));
        Budget {
            kind,
            // The limit in force, shorter than the configured one when the invocation ends first.
            limit: deadline.saturating_duration_since(started),
            deadline,
        }
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits for the server's answer to `exchange` at most until the deadline plus
    /// [`IO_GRACE`]; past that the server is taken for silent.
    async fn answer<T>(&self, exchange: impl Future<Output = T>) -> Result<T, DbError> {
        let waited = self.left() + IO_GRACE;
        tokio::time::timeout(waited, exchange)
            .await
            .map_err(|_| DbError::NoAnswer { waited })
    }

    /// Sets the session's statement limit to what is left, or fails when nothing is.
    async fn arm(&self, conn: &mut Conn) -> Result<(), DbError> {
        let left = self.left();
        if left < Duration::from_millis(1) {
            return Err(self.timed_out(None));
        }
        self.answer(conn.query_drop(self.kind.limit_statement(left)))
            .await?
            .map_err(DbError::from_query)
    }

    fn timed_out(&self, source: Option<mysql_async::ServerError>) -> DbError {
        DbError::StatementTimeout {
            limit: self.limit,
            source,
        }
    }
}

async fn run_on(
    conn: &mut Conn,
    budget: &Budget,
    query: NamedQuery,
    hold_ms: u64,
) -> Result<Vec<Value>, DbError> {
    if hold_ms > 0 {
        let seconds = hold_ms as f64 / 1000.0;
        budget.arm(conn).await?;
        // SLEEP returns 1 when it was interrupted (MySQL's max_execution_time, KILL QUERY).
        let interrupted: Option<i64> = budget
            .answer(conn.exec_first("SELECT SLEEP(?)", (seconds,)))
            .await?
            .map_err(|e| DbError::from_statement(e, budget.limit))?;
        if interrupted == Some(1) {
            return Err(budget.timed_out(None));
        }
    }
    let (sql, params) = query.statement();
    budget.arm(conn).await?;
    let rows: Vec<Row> = budget
        .answer(conn.exec(sql, params))
        .await?
        .map_err(|e| DbError::from_statement(e, budget.limit))?;
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
/// because the server drops the session anyway when the socket goes. After a silent server the
/// connection is only dropped: a goodbye could wait as long again.
pub(crate) async fn close<T>(conn: Conn, result: Result<T, DbError>) -> Result<T, DbError> {
    if matches!(result, Err(DbError::NoAnswer { .. })) {
        drop(conn);
        return result;
    }
    match tokio::time::timeout(IO_GRACE, conn.disconnect()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(error = %error, "closing the database connection failed"),
        Err(_) => warn!("closing the database connection got no answer; dropped it"),
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
    fn each_server_gets_its_own_statement_limit() {
        assert_eq!(
            ServerKind::from_version("10.11.19-MariaDB-0+deb12u1"),
            ServerKind::MariaDb
        );
        assert_eq!(ServerKind::from_version("8.4.3"), ServerKind::MySql);
        let limit = Duration::from_millis(1500);
        assert_eq!(
            ServerKind::MariaDb.limit_statement(limit),
            "SET SESSION max_statement_time = 1.500"
        );
        assert_eq!(
            ServerKind::MySql.limit_statement(limit),
            "SET SESSION max_execution_time = 1500"
        );
        // Zero means "no limit" to both servers, so the least is one millisecond.
        assert_eq!(
            ServerKind::MariaDb.limit_statement(Duration::ZERO),
            "SET SESSION max_statement_time = 0.001"
        );
        assert_eq!(
            ServerKind::MySql.limit_statement(Duration::from_micros(10)),
            "SET SESSION max_execution_time = 1"
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
