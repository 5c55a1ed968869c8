//! The release function: ends leases, and reclaims or audits a pool on request.
//!
//! Accepted events:
//! - release `{"pool", "leaseId", "app"?}` → `{"pool", "leaseId", "released", "remaining"}`;
//!   releasing a lease that is already gone answers `released: false`, not an error. `app`
//!   (the application the lease was acquired for, on a divided pool) only saves a second
//!   DynamoDB request: the lease's own application is uncounted whatever it says.
//! - reclaim `{"pool", "reclaimExpired": true}` → `{"pool", "reclaimed", "remaining"}` (the
//!   scheduled reaper).
//! - audit `{"pool", "audit": true, "repair"?: bool}` → the broker's audit report.
//! - drain `{"pool", "leaseId", "drainSeconds": n}` → `{"pool", "leaseId", "draining",
//!   "expiresAt"?}`: the holder ended but a query it started may run for up to n more seconds,
//!   so the lease is left to expire within n seconds (never later than it would have) and
//!   reclaim frees it; the connection workflow uses it when a query's end is uncertain.
//! - the EventBridge "Step Functions Execution Status Change" event of a failed, timed out or
//!   aborted connection workflow, unchanged: the lease id is `detail.executionArn` and the pool
//!   is read from the execution's input (`detail.input`). Stopping an execution does not stop
//!   a Lambda invocation it started, so for `ABORTED` and `TIMED_OUT` the lease is drained for
//!   the query function's worst case ([`Settings::drain_seconds`]) instead of released; for
//!   `FAILED` it is released unless the workflow already left it draining.
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
    pub drain_seconds: Option<u32>,
    pub reclaim_expired: Option<bool>,
    pub audit: Option<bool>,
    pub repair: Option<bool>,
    /// The application the lease was acquired for (release only).
    pub app: Option<String>,
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

/// What the function reads from its environment once per container, besides the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a query started by an ended execution may still hold its connection: the query
    /// function's timeout (`QUERY_TIMEOUT_SECONDS`; the longest Lambda invocation, 900 s, when
    /// unset, which is safe but slow to free).
    pub drain_seconds: u32,
}

impl Settings {
    pub const DEFAULT_DRAIN_SECONDS: u32 = 900;

    pub fn from_env() -> Result<Settings, BrokerError> {
        let drain_seconds = match std::env::var("QUERY_TIMEOUT_SECONDS") {
            Err(_) => Self::DEFAULT_DRAIN_SECONDS,
            Ok(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|s| (1..=Self::DEFAULT_DRAIN_SECONDS).contains(s))
                .ok_or_else(|| {
                    BrokerError::InvalidInput(format!(
                        "QUERY_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 900, got {raw:?}"
                    ))
                })?,
        };
        Ok(Settings { drain_seconds })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            drain_seconds: Self::DEFAULT_DRAIN_SECONDS,
        }
    }
}

fn to_json<T: serde::Serialize>(result: Result<T, BrokerError>) -> Result<Value, ReleaseError> {
    Ok(serde_json::to_value(result?).expect("plain structs serialize"))
}

fn invalid(message: impl Into<String>) -> ReleaseError {
    ReleaseError(BrokerError::InvalidInput(message.into()))
}

pub async fn handle(
    broker: &Broker,
    settings: &Settings,
    event: LambdaEvent<Value>,
) -> Result<Value, ReleaseError> {
    let payload = event.payload;
    if payload.get("detail-type").is_some() {
        return cleanup(broker, settings, payload).await;
    }
    let input: ReleaseEvent = serde_json::from_value(payload)
        .map_err(|e| invalid(format!("malformed release event: {e}")))?;
    match input {
        ReleaseEvent {
            lease_id: Some(id),
            drain_seconds: None,
            reclaim_expired: None | Some(false),
            audit: None | Some(false),
            repair: None,
            pool,
            app,
        } => to_json(broker.release_for(&pool, &id, app.as_deref()).await),
        ReleaseEvent {
            lease_id: Some(id),
            drain_seconds: Some(seconds),
            reclaim_expired: None | Some(false),
            audit: None | Some(false),
            repair: None,
            pool,
            app: _,
        } => to_json(broker.drain(&pool, &id, seconds).await),
        ReleaseEvent {
            lease_id: None,
            drain_seconds: None,
            reclaim_expired: Some(true),
            audit: None | Some(false),
            repair: None,
            pool,
            app: None,
        } => to_json(broker.reclaim_expired(&pool).await),
        ReleaseEvent {
            lease_id: None,
            drain_seconds: None,
            reclaim_expired: None | Some(false),
            audit: Some(true),
            repair,
            pool,
            app: None,
        } => to_json(broker.audit(&pool, repair.unwrap_or(false)).await),
        _ => Err(invalid(
            "give exactly one of leaseId, \"reclaimExpired\": true or \"audit\": true \
             (repair only with audit, drainSeconds and app only with leaseId)",
        )),
    }
}

/// Gives back the lease of an execution that ended without releasing it.
async fn cleanup(
    broker: &Broker,
    settings: &Settings,
    payload: Value,
) -> Result<Value, ReleaseError> {
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
    let status = event.detail.status.as_deref().unwrap_or("unknown");
    // A stopped or timed-out execution does not stop the Lambda invocation it was waiting for:
    // its query may hold a connection until the query function's own timeout.
    if matches!(status, "ABORTED" | "TIMED_OUT") {
        let drained = broker
            .drain(&pool, &lease_id, settings.drain_seconds)
            .await?;
        tracing::info!(pool = %pool, lease = %lease_id, status, draining = drained.draining, "cleanup after execution end");
        return to_json(Ok(drained));
    }
    let released = broker.release_settled(&pool, &lease_id).await?;
    tracing::info!(
        pool = %pool,
        lease = %lease_id,
        status,
        released = released.released,
        draining = released.draining,
        "cleanup after execution end"
    );
    to_json(Ok(released))
}
