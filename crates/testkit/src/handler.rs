//! Calling handlers the way the Lambda runtime does, and the broker the lease handlers build.

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use leasehold_broker::{Broker, BrokerConfig};
use serde_json::Value;
use std::future::Future;

/// Calls a handler with `payload` and a default context; its output as JSON, its error as the
/// runtime reports it (`errorType`, `errorMessage`).
pub async fn invoke<T, E, F>(
    handler: impl FnOnce(LambdaEvent<Value>) -> F,
    payload: Value,
) -> Result<Value, Diagnostic>
where
    F: Future<Output = Result<T, E>>,
    T: serde::Serialize,
    E: Into<Diagnostic>,
{
    match handler(LambdaEvent::new(payload, Context::default())).await {
        Ok(output) => Ok(serde_json::to_value(output).expect("handler outputs are JSON")),
        Err(error) => Err(error.into()),
    }
}

/// The broker the acquire and release functions build from their environment, on the local
/// services.
pub async fn broker() -> Broker {
    let sdk = crate::sdk_config().await;
    BrokerConfig::from_env()
        .expect("the lease handlers' environment (LEASE_TABLE)")
        .broker(&sdk)
}
