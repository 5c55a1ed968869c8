//! The release function: ends leases, and reclaims or audits a pool on request.
//!
//! Accepted events:
//! - release `{"pool", "leaseId"}` → `{"pool", "leaseId", "released", "remaining"}`;
//!   releasing a lease that is already gone answers `released: false`, not an error.
//! - reclaim `{"pool", "reclaimExpired": true}` → `{"pool", "reclaimed", "remaining"}` (the
//!   scheduled reaper).
//! - audit `{"pool", "audit": true, "repair"?: bool}` → the broker's audit report.
//! - the EventBridge "Step Functions Execution Status Change" event of a failed, timed out or
//!   aborted connection workflow, unchanged: the lease id is `detail.executionArn` and the pool
//!   is read from the execution's input (`detail.input`).
//!
//! Errors (`errorType`): `PoolNotFound`, `InvalidInput`, `DependencyFailure`.
//!
//! # Layout
//! - `lib.rs`: [`ReleaseEvent`], [`StatusChangeEvent`], [`handle`], and [`ReleaseError`] with
//!   its `Diagnostic` (the broker's error names).
//! - `main.rs`: the runtime loop, with the broker built once per container from the
//!   environment.

use lambda_runtime::{Diagnostic, LambdaEvent};
use leasehold_broker::{Broker, BrokerError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseEvent {
    pub pool: String,
    pub lease_id: Option<String>,
    pub reclaim_expired: Option<bool>,
    pub audit: Option<bool>,
    pub repair: Option<bool>,
}

/// The part of an EventBridge event this function reads.
#[derive(Debug, Deserialize)]
pub struct StatusChangeEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: StatusChangeDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChangeDetail {
    pub execution_arn: String,
    #[serde(default)]
    pub status: Option<String>,
    /// The execution's input as a JSON string (absent when it was too large to include).
    #[serde(default)]
    pub input: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReleaseError(#[from] pub BrokerError);

impl From<ReleaseError> for Diagnostic {
    fn from(error: ReleaseError) -> Self {
        Diagnostic {
            error_type: error.0.name().to_owned(),
            error_message: error.0.to_string(),
        }
    }
}

fn to_json<T: serde::Serialize>(result: Result<T, BrokerError>) -> Result<Value, ReleaseError> {
    Ok(serde_json::to_value(result?).expect("plain structs serialize"))
}

fn invalid(message: impl Into<String>) -> ReleaseError {
    ReleaseError(BrokerError::InvalidInput(message.into()))
}

pub async fn handle(broker: &Broker, event: LambdaEvent<Value>) -> Result<Value, ReleaseError> {
    let payload = event.payload;
    if payload.get("detail-type").is_some() {
        return cleanup(broker, payload).await;
    }
    let input: ReleaseEvent = serde_json::from_value(payload)
        .map_err(|e| invalid(format!("malformed release event: {e}")))?;
    match input {
        ReleaseEvent {
            lease_id: Some(id),
            reclaim_expired: None | Some(false),
            audit: None | Some(false),
            repair: None,
            pool,
        } => to_json(broker.release(&pool, &id).await),
        ReleaseEvent {
            lease_id: None,
            reclaim_expired: Some(true),
            audit: None | Some(false),
            repair: None,
            pool,
        } => to_json(broker.reclaim_expired(&pool).await),
        ReleaseEvent {
            lease_id: None,
            reclaim_expired: None | Some(false),
            audit: Some(true),
            repair,
            pool,
        } => to_json(broker.audit(&pool, repair.unwrap_or(false)).await),
        _ => Err(invalid(
            "give exactly one of leaseId, \"reclaimExpired\": true or \"audit\": true \
             (repair only with audit)",
        )),
    }
}

/// Gives back the lease of an execution that ended without releasing it.
async fn cleanup(broker: &Broker, payload: Value) -> Result<Value, ReleaseError> {
    let event: StatusChangeEvent = serde_json::from_value(payload)
        .map_err(|e| invalid(format!("malformed status change event: {e}")))?;
    if event.detail_type != "Step Functions Execution Status Change" {
        return Err(invalid(format!(
            "unsupported event type {:?}",
            event.detail_type
        )));
    }
    let lease_id = event.detail.execution_arn;
    let pool = event
        .detail
        .input
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|input| input.get("pool").and_then(Value::as_str).map(str::to_owned));
    let Some(pool) = pool else {
        // Nothing to give back: the execution never had a pool to take a lease from.
        tracing::info!(lease = %lease_id, "execution input names no pool; nothing to release");
        return Ok(json!({
            "leaseId": lease_id,
            "released": false,
            "skipped": "the execution's input names no pool",
        }));
    };
    let released = broker.release(&pool, &lease_id).await?;
    tracing::info!(
        pool = %pool,
        lease = %lease_id,
        status = event.detail.status.as_deref().unwrap_or("unknown"),
        released = released.released,
        "cleanup after execution end"
    );
    to_json(Ok(released))
}
