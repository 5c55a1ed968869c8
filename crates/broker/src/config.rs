//! The environment a lease handler reads once per container.

use crate::broker::Broker;
use crate::clock::SystemClock;
use crate::dynamo::DynamoStore;
use crate::error::BrokerError;
use crate::metrics::{CloudWatchSink, DEFAULT_NAMESPACE, EmfSink, MetricsSink};
use std::sync::Arc;

/// How metrics leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// Embedded Metric Format lines on standard output (default).
    Emf,
    /// PutMetricData calls.
    Api,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `LEASE_TABLE`: the DynamoDB table holding pools and leases.
    pub lease_table: String,
    /// `METRICS_NAMESPACE`, default `RDSLambda`.
    pub metrics_namespace: String,
    /// `METRICS_MODE`: `emf` (default) or `api`.
    pub metrics_mode: MetricsMode,
    /// `LEASEHOLD_FAULT_LOSE_GRANT_RESPONSES`: fault injection for local tests only
    /// ([`crate::fault`]); unset everywhere else.
    pub lose_grant_responses: Option<f64>,
}

impl BrokerConfig {
    pub fn from_env() -> Result<Self, BrokerError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BrokerError> {
        let lease_table = lookup("LEASE_TABLE")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| BrokerError::InvalidInput("LEASE_TABLE is not set".into()))?;
        let metrics_namespace = lookup("METRICS_NAMESPACE")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let metrics_mode = match lookup("METRICS_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("emf") | Some("EMF") => MetricsMode::Emf,
            Some("api") | Some("API") => MetricsMode::Api,
            Some(other) => {
                return Err(BrokerError::InvalidInput(format!(
                    "METRICS_MODE must be emf or api, not {other:?}"
                )));
            }
        };
        let lose_grant_responses =
            crate::fault::probability(lookup(crate::fault::LOSE_GRANT_RESPONSES).as_deref())
                .map_err(BrokerError::InvalidInput)?;
        Ok(BrokerConfig {
            lease_table,
            metrics_namespace,
            metrics_mode,
            lose_grant_responses,
        })
    }

    /// The metrics sink this configuration asks for.
    pub fn metrics_sink(&self, sdk: &aws_config::SdkConfig) -> Arc<dyn MetricsSink> {
        match self.metrics_mode {
            MetricsMode::Emf => Arc::new(EmfSink::stdout(&self.metrics_namespace)),
            MetricsMode::Api => Arc::new(CloudWatchSink::new(sdk, &self.metrics_namespace)),
        }
    }

    /// A broker over DynamoDB with the configured sink and the system clock.
    /// The broker of a handler: this configuration and the SDK's, both from the environment.
    pub async fn broker_from_env() -> Result<Broker, BrokerError> {
        let config = Self::from_env()?;
        let sdk = aws_config::load_from_env().await;
        Ok(config.broker(&sdk))
    }

    pub fn broker(&self, sdk: &aws_config::SdkConfig) -> Broker {
        let mut store: Arc<dyn crate::store::LeaseStore> = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &self.lease_table,
        ));
        if let Some(probability) = self.lose_grant_responses {
            store = Arc::new(crate::fault::LosingGrants::new(
                store,
                probability,
                u64::from(std::process::id()),
            ));
        }
        Broker::new(store, self.metrics_sink(sdk), Arc::new(SystemClock))
            .with_callbacks(Arc::new(crate::callback::StepFunctionsCallbacks::new(sdk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_to_emf_in_the_rdslambda_namespace() {
        let config = BrokerConfig::from_lookup(lookup(&[("LEASE_TABLE", "leases")])).unwrap();
        assert_eq!(config.metrics_mode, MetricsMode::Emf);
        assert_eq!(config.metrics_namespace, "RDSLambda");
    }

    #[test]
    fn reads_overrides_and_rejects_unknown_modes() {
        let config = BrokerConfig::from_lookup(lookup(&[
            ("LEASE_TABLE", "leases"),
            ("METRICS_MODE", "api"),
            ("METRICS_NAMESPACE", "Custom"),
        ]))
        .unwrap();
        assert_eq!(
            (config.metrics_mode, config.metrics_namespace.as_str()),
            (MetricsMode::Api, "Custom")
        );
        let bad = BrokerConfig::from_lookup(lookup(&[("LEASE_TABLE", "t"), ("METRICS_MODE", "x")]));
        assert!(bad.is_err());
        assert!(BrokerConfig::from_lookup(lookup(&[])).is_err());
    }
}
