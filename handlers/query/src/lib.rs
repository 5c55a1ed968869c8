//! The query function: runs one named query from the allow-list on a fresh connection.
//!
//! Input `{"query", "params"?, "holdMs"?}`; output `{"query", "rows", "rowCount"}`.
//! Errors (`errorType`): `UnknownQuery`, `InvalidInput`, `DatabaseBusy` (MySQL 1040),
//! `DatabaseUnavailable`, `QueryFailed`.
//!
//! # Layout
//! - `lib.rs`: [`QueryEvent`], [`QueryOutput`], [`handle`], and [`QueryError`] with its
//!   `Diagnostic` (the database's error names).
//! - `main.rs`: the runtime loop, with the database settings read once per container.

use lambda_runtime::{Diagnostic, LambdaEvent};
use leasehold_db::{Database, DbError, NamedQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueryEvent {
    pub query: String,
    #[serde(default)]
    pub params: Option<Value>,
    /// Milliseconds to keep the connection busy before the query (at most 30000).
    #[serde(default)]
    pub hold_ms: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryOutput {
    pub query: &'static str,
    pub rows: Vec<Value>,
    pub row_count: usize,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct QueryError(#[from] pub DbError);

impl From<QueryError> for Diagnostic {
    fn from(error: QueryError) -> Self {
        Diagnostic {
            error_type: error.0.name().to_owned(),
            error_message: error.0.to_string(),
        }
    }
}

pub async fn handle(db: &Database, event: LambdaEvent<Value>) -> Result<QueryOutput, QueryError> {
    let input: QueryEvent =
        serde_json::from_value(event.payload).map_err(|source| DbError::MalformedEvent {
            what: "query",
            source,
        })?;
    // Everything about the request is checked before a connection is opened.
    let query = NamedQuery::parse(&input.query, input.params.as_ref())?;
    let rows = db.run(query, input.hold_ms.unwrap_or(0)).await?;
    Ok(QueryOutput {
        query: query.name(),
        row_count: rows.len(),
        rows,
    })
}
