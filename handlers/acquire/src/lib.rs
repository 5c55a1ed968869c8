//! The acquire function: grants a connection lease from a pool's budget, or queues the request.
//!
//! Two modes, told apart by the event:
//! - **polling** `{"pool", "leaseId", "ttlSeconds"?}` → `{"pool", "leaseId", "expiresAt",
//!   "remaining", "budget", "extended"}`, or `ConnectionsExhausted` when the pool is full (the
//!   workflow retries with backoff).
//! - **queued** `{"pool", "leaseId", "ttlSeconds"?, "taskToken", "waitSeconds"?}`, called by a
//!   `lambda:invoke.waitForTaskToken` task: when a slot is free and nobody waits, the lease is
//!   granted and the task completed with it at once (`SendTaskSuccess`); otherwise the request
//!   is queued and the task completed by whoever frees a slot. The answer (which Step Functions
//!   ignores for callback tasks) is `{"pool", "leaseId", "waiting", "waiters", "deadline"?,
//!   "grant"?}`. `waitSeconds` (default 60, at most 3600) must match the task's
//!   `TimeoutSeconds`: after it the waiter is skipped and removed.
//!
//! Both take `"app"` on a pool whose budget is divided between applications (required there;
//! ignored by a pool that is not divided): the lease counts against the pool and that
//! application, and the grant names it (`"app"`).
//!
//! Errors (`errorType`): `ConnectionsExhausted` (polling only), `PoolNotFound`, `InvalidInput`
//! (also for a malformed task token, or one whose task does not wait, an unknown application,
//! or a missing one on a divided pool: nothing is changed),
//! `DependencyFailure` (DynamoDB or Step Functions out of reach).
//!
//! # Layout
//! - `lib.rs`: [`AcquireEvent`], [`handle`], and [`AcquireError`] with its `Diagnostic`
//!   (the broker's error names).
//! - `main.rs`: the runtime loop, with the broker built once per container from the
//!   environment.

use lambda_runtime::{Diagnostic, LambdaEvent};
use leasehold_broker::broker::DEFAULT_TTL_SECONDS;
use leasehold_broker::{AcquireRequest, Broker, BrokerError, QueuedRequest};
use serde::Deserialize;
use serde_json::Value;

/// How long a queued request waits when the event does not say.
pub const DEFAULT_WAIT_SECONDS: u32 = 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcquireEvent {
    pub pool: String,
    pub lease_id: String,
    /// Lease lifetime in seconds, 1 to 900; 60 when absent.
    pub ttl_seconds: Option<u32>,
    /// The waiting task's token (`$$.Task.Token`): queued mode.
    pub task_token: Option<String>,
    /// How long the task waits (its `TimeoutSeconds`); queued mode only.
    pub wait_seconds: Option<u32>,
    /// The application asking, on a pool divided between applications.
    pub app: Option<String>,
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

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("plain structs serialize")
}

pub async fn handle(broker: &Broker, event: LambdaEvent<Value>) -> Result<Value, AcquireError> {
    let input: AcquireEvent = serde_json::from_value(event.payload)
        .map_err(|e| BrokerError::InvalidInput(format!("malformed acquire event: {e}")))?;
    let ttl_seconds = input.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    match (input.task_token, input.wait_seconds) {
        (None, None) => {
            let mut request = AcquireRequest::new(input.pool, input.lease_id, ttl_seconds);
            request.app = input.app;
            Ok(to_json(broker.acquire(&request).await?))
        }
        (None, Some(_)) => Err(BrokerError::InvalidInput(
            "waitSeconds needs a taskToken (queued mode)".into(),
        )
        .into()),
        (Some(task_token), wait_seconds) => {
            let request = QueuedRequest {
                pool: input.pool,
                lease_id: input.lease_id,
                ttl_seconds,
                task_token,
                wait_seconds: wait_seconds.unwrap_or(DEFAULT_WAIT_SECONDS),
                app: input.app,
            };
            Ok(to_json(broker.acquire_queued(&request).await?))
        }
    }
}
