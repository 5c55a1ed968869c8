//! The acquire function: grants a connection lease from a pool's budget.
//!
//! Input `{"pool", "leaseId", "ttlSeconds"?}`; output `{"pool", "leaseId", "expiresAt",
//! "remaining", "budget", "extended"}`. Errors (`errorType`): `ConnectionsExhausted`, `PoolNotFound`,
//! `InvalidInput`, `DependencyFailure`.
//!
//! # Layout
//! - `lib.rs`: [`AcquireEvent`], [`handle`], and [`AcquireError`] with its `Diagnostic`
//!   (the broker's error names).
//! - `main.rs`: the runtime loop, with the broker built once per container from the
//!   environment.

use lambda_runtime::{Diagnostic, LambdaEvent};
use leasehold_broker::broker::DEFAULT_TTL_SECONDS;
use leasehold_broker::{AcquireRequest, Broker, BrokerError, Grant};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcquireEvent {
    pub pool: String,
    pub lease_id: String,
    /// Lease lifetime in seconds, 1 to 900; 60 when absent.
    pub ttl_seconds: Option<u32>,
}

/// The error a caller sees: the broker's error under its stable name.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AcquireError(#[from] pub BrokerError);

impl From<AcquireError> for Diagnostic {
    fn from(error: AcquireError) -> Self {
        Diagnostic {
            error_type: error.0.name().to_owned(),
            error_message: error.0.to_string(),
        }
    }
}

pub async fn handle(broker: &Broker, event: LambdaEvent<Value>) -> Result<Grant, AcquireError> {
    let input: AcquireEvent = serde_json::from_value(event.payload)
        .map_err(|e| BrokerError::InvalidInput(format!("malformed acquire event: {e}")))?;
    let request = AcquireRequest::new(
        input.pool,
        input.lease_id,
        input.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS),
    );
    Ok(broker.acquire(&request).await?)
}
