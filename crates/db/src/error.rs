//! Database errors, named the way a workflow's `ErrorEquals` sees them ([`DbError::name`]);
//! each keeps the driver's or the SDK's error as its source.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// MySQL `ER_CON_COUNT_ERROR`: the server is at `max_connections`.
pub const ER_CON_COUNT_ERROR: u16 = 1040;
/// MySQL `ER_TOO_MANY_USER_CONNECTIONS`: the account is at the server-wide
/// `max_user_connections`.
pub const ER_TOO_MANY_USER_CONNECTIONS: u16 = 1203;
/// MySQL `ER_USER_LIMIT_REACHED`: the account is at its own `MAX_USER_CONNECTIONS` (the seed
/// caps the application account at the pool's budget).
pub const ER_USER_LIMIT_REACHED: u16 = 1226;
/// MySQL `ER_SECURE_TRANSPORT_REQUIRED` (MariaDB uses the same number): the server takes only
/// TLS connections (`require_secure_transport`).
pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
/// MariaDB `ER_STATEMENT_TIMEOUT`: the statement ran past `max_statement_time`.
pub const ER_STATEMENT_TIMEOUT: u16 = 1969;
/// MySQL `ER_QUERY_TIMEOUT`: the SELECT ran past `max_execution_time`.
pub const ER_QUERY_TIMEOUT: u16 = 3024;

#[derive(Debug, Error)]
pub enum DbError {
    /// The server refused the connection because it, or the account, has no connection left
    /// (1040, 1203, 1226).
    #[error("database has no free connection: {}", .0.message)]
    Busy(#[source] mysql_async::ServerError),
    /// The server could not be reached, refused the credentials, or dropped the connection.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] mysql_async::Error),
    /// The TLS handshake failed: the server's certificate does not chain to an authority of
    /// `DB_TLS_CA_FILE`, does not name the host, or the server spoke no TLS.
    #[error(
        "database unavailable: TLS with {host}:{port} failed: the server's certificate is not signed by an authority in DB_TLS_CA_FILE ({}), or does not name {host}: {source}",
        .ca_file.display()
    )]
    Tls {
        host: String,
        port: u16,
        ca_file: PathBuf,
        #[source]
        source: mysql_async::Error,
    },
    /// `DB_TLS_CA_FILE` is set but the server does not offer TLS.
    #[error(
        "database unavailable: {host}:{port} does not offer TLS, which DB_TLS_CA_FILE asks for"
    )]
    TlsNotOffered { host: String, port: u16 },
    /// The server takes TLS connections only and `DB_TLS_CA_FILE` is not set.
    #[error(
        "database unavailable: the server accepts TLS connections only; set DB_TLS_CA_FILE to its certificate authority bundle: {}",
        .0.message
    )]
    TlsRequired(#[source] mysql_async::ServerError),
    /// No IAM authentication token could be made (no credentials or region).
    #[error("database unavailable: cannot sign an IAM database authentication token: {reason}")]
    IamToken {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server did not accept a connection in time.
    #[error("database unavailable: no connection to {host}:{port} within {seconds}s")]
    ConnectTimeout {
        host: String,
        port: u16,
        seconds: u64,
    },
    /// The server sent nothing for longer than a statement may take: the socket or the server
    /// is dead. The connection is dropped, not closed politely.
    #[error("database unavailable: no answer from the server within {} ms", .waited.as_millis())]
    NoAnswer { waited: Duration },
    /// Secrets Manager did not hand out the database secret.
    #[error("database unavailable: cannot read the database secret: {}", DisplayErrorContext(.0.as_ref()))]
    SecretUnreadable(#[source] Box<SdkError<GetSecretValueError>>),
    /// The secret is not `{"username","password"}` (what is wrong is not shown: it could
    /// quote part of the secret).
    #[error("database unavailable: {0}")]
    SecretMalformed(&'static str),
    /// Setting up the application account failed on the server. The server's message is
    /// withheld for statements that carry the password.
    #[error("setting up the application account failed at {step}: {} ({})", .source.message, .source.code)]
    AccountSetup {
        step: String,
        #[source]
        source: mysql_async::ServerError,
    },
    /// The application account cannot be set up as configured on this server.
    #[error("setting up the application account failed: {0}")]
    AccountUnsupported(String),
    /// The query itself failed on the server.
    #[error("query failed: {} ({})", .0.message, .0.code)]
    Query(#[source] mysql_async::ServerError),
    /// The server interrupted a statement at the statement limit (MariaDB 1969, MySQL 3024, or
    /// a `SLEEP` that returned 1), or no time was left to start one.
    #[error("query timed out: the statements ran past their limit of {} ms", .limit.as_millis())]
    StatementTimeout {
        limit: Duration,
        #[source]
        source: Option<mysql_async::ServerError>,
    },
    /// The server answered a query with nothing where a row was due.
    #[error("query failed: {0} returned nothing")]
    NoRow(&'static str),
    /// The query is part of a redriven execution, which holds no lease any more; the database
    /// was not touched.
    #[error(
        "redrive {count} of this execution: its lease was given back when the first run ended; start a new execution instead"
    )]
    RedriveRefused { count: u32 },
    /// The request names a query that is not on the allow-list.
    #[error("unknown query {name:?}; known queries: {known}")]
    UnknownQuery { name: String, known: String },
    /// The request or its parameters are malformed; the database was not touched.
    #[error("{0}")]
    InvalidInput(String),
    /// The event is not the JSON the handler takes; the database was not touched.
    #[error("malformed {what} event: {source}")]
    MalformedEvent {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A required setting of the handler is missing.
    #[error("configuration error: {0} is not set")]
    MissingSetting(&'static str),
    /// `DB_PORT` is not a port number.
    #[error("configuration error: DB_PORT is not a port number: {raw:?}")]
    BadPort {
        raw: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// `DB_TLS_CA_FILE` cannot be read.
    #[error("configuration error: DB_TLS_CA_FILE {} cannot be read: {source}", .path.display())]
    TlsCaUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `DB_AUTH=iam` without `DB_TLS_CA_FILE`: RDS accepts IAM tokens over TLS only.
    #[error(
        "configuration error: DB_AUTH=iam needs DB_TLS_CA_FILE (RDS accepts IAM authentication tokens over TLS only)"
    )]
    IamNeedsTls,
    /// A setting of the handler has a value it cannot use.
    #[error("configuration error: {key} must be {expected}, not {raw:?}")]
    BadSetting {
        key: &'static str,
        raw: String,
        expected: &'static str,
    },
}

impl DbError {
    /// The stable error name a Lambda reports as `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            DbError::Busy(_) => "DatabaseBusy",
            DbError::Unavailable(_)
            | DbError::Tls { .. }
            | DbError::TlsNotOffered { .. }
            | DbError::TlsRequired(_)
            | DbError::IamToken { .. }
            | DbError::ConnectTimeout { .. }
            | DbError::NoAnswer { .. }
            | DbError::SecretUnreadable(_)
            | DbError::SecretMalformed(_) => "DatabaseUnavailable",
            DbError::Query(_) | DbError::NoRow(_) => "QueryFailed",
            DbError::AccountSetup { .. } | DbError::AccountUnsupported(_) => "AccountSetupFailed",
            DbError::StatementTimeout { .. } => "QueryTimedOut",
            DbError::UnknownQuery { .. } => "UnknownQuery",
            DbError::RedriveRefused { .. } => "RedriveRefused",
            DbError::InvalidInput(_) | DbError::MalformedEvent { .. } => "InvalidInput",
            DbError::MissingSetting(_)
            | DbError::BadPort { .. }
            | DbError::BadSetting { .. }
            | DbError::TlsCaUnreadable { .. }
            | DbError::IamNeedsTls => "ConfigurationError",
        }
    }

    /// Classifies a driver error raised while connecting.
    pub fn from_connect(error: mysql_async::Error) -> Self {
        match error {
            mysql_async::Error::Server(e)
                if [
                    ER_CON_COUNT_ERROR,
                    ER_TOO_MANY_USER_CONNECTIONS,
                    ER_USER_LIMIT_REACHED,
                ]
                .contains(&e.code) =>
            {
                DbError::Busy(e)
            }
            mysql_async::Error::Server(e) if e.code == ER_SECURE_TRANSPORT_REQUIRED => {
                DbError::TlsRequired(e)
            }
            other => DbError::Unavailable(other),
        }
    }

    /// Classifies a driver error raised on an open connection.
    pub fn from_query(error: mysql_async::Error) -> Self {
        match error {
            mysql_async::Error::Server(e) => DbError::Query(e),
            other => DbError::Unavailable(other),
        }
    }

    /// Classifies a driver error raised by a statement that ran under the statement limit
    /// `limit`: the server's own timeout errors become [`DbError::StatementTimeout`].
    pub fn from_statement(error: mysql_async::Error, limit: Duration) -> Self {
        match error {
            mysql_async::Error::Server(e)
                if e.code == ER_STATEMENT_TIMEOUT || e.code == ER_QUERY_TIMEOUT =>
            {
                DbError::StatementTimeout {
                    limit,
                    source: Some(e),
                }
            }
            other => DbError::from_query(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "interrupted".into(),
            state: "70100".into(),
        })
    }

    #[test]
    fn a_full_server_or_account_is_database_busy() {
        for code in [
            ER_CON_COUNT_ERROR,
            ER_TOO_MANY_USER_CONNECTIONS,
            ER_USER_LIMIT_REACHED,
        ] {
            assert_eq!(
                DbError::from_connect(server_error(code)).name(),
                "DatabaseBusy"
            );
        }
        let plain = DbError::from_connect(server_error(ER_SECURE_TRANSPORT_REQUIRED));
        assert_eq!(plain.name(), "DatabaseUnavailable");
        assert!(plain.to_string().contains("DB_TLS_CA_FILE"), "{plain}");
        assert_eq!(
            DbError::from_connect(server_error(1045)).name(),
            "DatabaseUnavailable"
        );
    }

    #[test]
    fn both_servers_statement_timeouts_are_query_timed_out() {
        let limit = Duration::from_millis(1500);
        for code in [ER_STATEMENT_TIMEOUT, ER_QUERY_TIMEOUT] {
            let err = DbError::from_statement(server_error(code), limit);
            assert_eq!(err.name(), "QueryTimedOut", "{code}");
            assert!(err.to_string().contains("1500 ms"), "{err}");
            assert!(std::error::Error::source(&err).is_some());
        }
        let other = DbError::from_statement(server_error(1146), limit);
        assert_eq!(other.name(), "QueryFailed");
        let silent = DbError::NoAnswer {
            waited: Duration::from_secs(3),
        };
        assert_eq!(silent.name(), "DatabaseUnavailable");
    }
}
