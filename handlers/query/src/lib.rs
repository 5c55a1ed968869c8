//! The query function: runs one named query from the allow-list on a fresh connection.
//!
//! Input `{"query", "params"?, "holdMs"?}`; output `{"query", "rows", "rowCount"}`.
//! Errors (`errorType`): `UnknownQuery`, `InvalidInput`, `DatabaseBusy` (MySQL 1040),
//! `DatabaseUnavailable`, `QueryFailed`, `QueryTimedOut` (the statements ran past
//! `DB_STATEMENT_TIMEOUT_MS`, or past the invocation's deadline less [`DEADLINE_MARGIN`]).
//!
//! # Layout
//! - `lib.rs`: [`QueryEvent`], [`QueryOutput`], [`handle`], and [`QueryError`] with its
//!   `Diagnostic` (the database's error names).
//! - `main.rs`: the runtime loop, with the database settings read once per container.

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use leasehold_db::{Database, DbError, NamedQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Time kept back from the invocation's deadline: the statements end this much earlier, which
/// leaves the client its grace to call a silent server dead, then to close and answer, before
/// Lambda ends the function (and the workflow releases the lease).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueryEvent {
    pub query: String,
    #[serde(default)]
    pub params: Option<Value>,
    /// Milliseconds to keep the connection busy before the query (at most 30000).
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// The execution's `$$.Execution.RedriveCount`. A redriven execution resumes at its failed
    /// state without passing Acquire again, and the lease of its first run is gone by then: a
    /// query that is part of a redrive is refused (`RedriveRefused`) before it connects.
    #[serde(default)]
    pub redrive_count: Option<u32>,
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

/// When the statements of this invocation must be over: [`DEADLINE_MARGIN`] before the
/// invocation's deadline, or a quarter of the time left when that is less (a function with a
/// timeout of a few seconds keeps most of it; should a silent server then outlast the
/// deadline, Lambda's timeout ends the invocation and the workflow drains the lease); no bound
/// from it when the context carries none (zero).
pub fn statements_end(context: &Context, now: SystemTime) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    Some(Instant::now() + left.saturating_sub(DEADLINE_MARGIN.min(left / 4)))
}

pub async fn handle(db: &Database, event: LambdaEvent<Value>) -> Result<QueryOutput, QueryError> {
    let input: QueryEvent =
        serde_json::from_value(event.payload).map_err(|source| DbError::MalformedEvent {
            what: "query",
            source,
        })?;
    // Everything about the request is checked before a connection is opened.
    if let Some(count) = input.redrive_count.filter(|c| *c > 0) {
        return Err(DbError::RedriveRefused { count }.into());
    }
    let query = NamedQuery::parse(&input.query, input.params.as_ref())?;
    let end = statements_end(&event.context, SystemTime::now());
    let rows = db
        .run_within(query, input.hold_ms.unwrap_or(0), end)
        .await?;
    Ok(QueryOutput {
        query: query.name(),
        row_count: rows.len(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_db::database::IO_GRACE;

    #[test]
    fn the_margin_covers_the_grace_and_a_close() {
        assert!(DEADLINE_MARGIN >= IO_GRACE * 2);
    }

    #[test]
    fn statements_end_a_margin_before_the_invocation_deadline() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut context = Context::default();
        assert_eq!(statements_end(&context, now), None);

        context.deadline = 1_000_000_000 + 45_000;
        let end = statements_end(&context, now).unwrap();
        let left = end.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(40), "{left:?}");
        assert!(left > Duration::from_secs(39), "{left:?}");

        // A short invocation keeps three quarters of what is left.
        context.deadline = 1_000_000_000 + 2_000;
        let end = statements_end(&context, now).unwrap();
        let left = end.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(1_500), "{left:?}");
        assert!(left > Duration::from_millis(1_400), "{left:?}");

        context.deadline = 1_000_000_000 - 1_000;
        let end = statements_end(&context, now).unwrap();
        assert!(end <= Instant::now());
    }
}
