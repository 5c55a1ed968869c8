//! Database errors, named the way a workflow's `ErrorEquals` sees them.

use thiserror::Error;

/// MySQL `ER_CON_COUNT_ERROR`: the server is at `max_connections`.
pub const ER_CON_COUNT_ERROR: u16 = 1040;
/// MySQL `ER_TOO_MANY_USER_CONNECTIONS`: the account is at `max_user_connections`.
pub const ER_TOO_MANY_USER_CONNECTIONS: u16 = 1203;

#[derive(Debug, Error)]
pub enum DbError {
    /// The server refused the connection because it has no connection left (1040, 1203).
    #[error("database has no free connection: {0}")]
    Busy(String),
    /// The server could not be reached, or refused the credentials.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The query itself failed on the server.
    #[error("query failed: {0}")]
    Query(String),
    /// The request names a query that is not on the allow-list.
    #[error("unknown query {0:?}; known queries: {1}")]
    UnknownQuery(String, String),
    /// The request or its parameters are malformed; the database was not touched.
    #[error("{0}")]
    InvalidInput(String),
    /// The handler's own configuration is missing or wrong.
    #[error("configuration error: {0}")]
    Config(String),
}

impl DbError {
    /// The stable error name a Lambda reports as `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            DbError::Busy(_) => "DatabaseBusy",
            DbError::Unavailable(_) => "DatabaseUnavailable",
            DbError::Query(_) => "QueryFailed",
            DbError::UnknownQuery(..) => "UnknownQuery",
            DbError::InvalidInput(_) => "InvalidInput",
            DbError::Config(_) => "ConfigurationError",
        }
    }

    /// Classifies a driver error raised while connecting.
    pub fn from_connect(error: mysql_async::Error) -> Self {
        match error {
            mysql_async::Error::Server(ref e)
                if e.code == ER_CON_COUNT_ERROR || e.code == ER_TOO_MANY_USER_CONNECTIONS =>
            {
                DbError::Busy(e.message.clone())
            }
            other => DbError::Unavailable(other.to_string()),
        }
    }

    /// Classifies a driver error raised on an open connection.
    pub fn from_query(error: mysql_async::Error) -> Self {
        match error {
            mysql_async::Error::Server(e) => DbError::Query(format!("{} ({})", e.message, e.code)),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}
