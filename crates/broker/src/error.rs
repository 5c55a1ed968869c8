//! Errors of the broker, each with the stable name a workflow's `ErrorEquals` matches.

use thiserror::Error;

/// A failure of the storage behind the broker (DynamoDB unreachable, throttled, malformed item).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The service could not be reached or answered with an error.
    #[error("lease store request {operation} failed: {source}")]
    Service {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Concurrent writers kept cancelling each other's transactions.
    #[error("lease store stayed contended after {attempts} attempts ({operation})")]
    Contended {
        operation: &'static str,
        attempts: u32,
    },
    /// An item in the table does not have the layout this version writes.
    #[error("malformed item in lease table: {0}")]
    Malformed(String),
}

impl StoreError {
    pub fn service(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Service {
            operation,
            source: Box::new(source),
        }
    }
}

/// What can go wrong when asking the broker for something.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// Every slot of the pool is held by a live lease.
    #[error("pool {pool} has no free connection (budget {budget}, all leased)")]
    ConnectionsExhausted { pool: String, budget: u32 },
    /// No pool record exists under that name.
    #[error("pool {0} does not exist")]
    PoolNotFound(String),
    /// The request itself is malformed; nothing was changed.
    #[error("{0}")]
    InvalidInput(String),
    /// The lease store failed; the request may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Step Functions could not be reached to complete or check a waiting task; the request
    /// may be retried.
    #[error("step functions callback failed: {0}")]
    Callback(String),
}

impl BrokerError {
    /// The stable, short error name (what a Lambda reports as `errorType`).
    pub fn name(&self) -> &'static str {
        match self {
            BrokerError::ConnectionsExhausted { .. } => "ConnectionsExhausted",
            BrokerError::PoolNotFound(_) => "PoolNotFound",
            BrokerError::InvalidInput(_) => "InvalidInput",
            BrokerError::Store(_) | BrokerError::Callback(_) => "DependencyFailure",
        }
    }
}
