//! Gauges and counters about pools, published under a namespace with dimension `DBName`.
//!
//! The default sink writes CloudWatch Embedded Metric Format (EMF) lines to standard output:
//! CloudWatch Logs turns them into metrics, so a grant costs no API call and no latency. The
//! PutMetricData sink is for hosts that do not extract EMF; it runs with a short timeout and one
//! retry, and its failures are dropped by the broker, never turned into a failed grant.

use crate::model::{AppName, PoolName};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The dimension every metric carries; its value is the pool name.
pub const DIMENSION: &str = "DBName";
/// The second dimension of a metric about one application of a divided pool.
pub const APP_DIMENSION: &str = "Application";
/// The namespace of the original sample, kept so its dashboards and alarms still apply.
pub const DEFAULT_NAMESPACE: &str = "RDSLambda";

/// One data point: a count, or a duration in milliseconds (`WaitTime`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: Unit,
    /// The application it is about (dimension `Application` beside `DBName`); `None` for the
    /// pool as a whole.
    pub app: Option<AppName>,
}

/// The CloudWatch unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

impl Metric {
    pub fn count(name: &'static str, value: f64) -> Self {
        Metric {
            name,
            value,
            unit: Unit::Count,
            app: None,
        }
    }

    pub fn milliseconds(name: &'static str, value: f64) -> Self {
        Metric {
            name,
            value,
            unit: Unit::Milliseconds,
            app: None,
        }
    }

    /// The same data point about one application.
    pub fn for_app(mut self, app: &AppName) -> Self {
        self.app = Some(app.clone());
        self
    }
}

/// The metrics of one publication grouped by their dimension set: the pool's first, then each
/// application's, in order of appearance.
pub fn by_dimensions(metrics: &[Metric]) -> Vec<(Option<&AppName>, Vec<&Metric>)> {
    let mut groups: Vec<(Option<&AppName>, Vec<&Metric>)> = Vec::new();
    for metric in metrics {
        let app = metric.app.as_ref();
        match groups.iter_mut().find(|(a, _)| *a == app) {
            Some((_, group)) => group.push(metric),
            None => groups.push((app, vec![metric])),
        }
    }
    groups
}

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("writing metrics failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("PutMetricData failed: {0}")]
    Api(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait MetricsSink: Send + Sync {
    async fn publish(&self, pool: &PoolName, metrics: &[Metric]) -> Result<(), MetricsError>;
}

/// Drops everything (for tools that only read).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

#[async_trait]
impl MetricsSink for NullSink {
    async fn publish(&self, _: &PoolName, _: &[Metric]) -> Result<(), MetricsError> {
        Ok(())
    }
}

/// Embedded Metric Format: one JSON object per line.
pub struct EmfSink {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl EmfSink {
    /// Writes to the process's standard output, where Lambda collects logs.
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Self::with_writer(namespace, Box::new(std::io::stdout()))
    }

    pub fn with_writer(namespace: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        EmfSink {
            namespace: namespace.into(),
            out: Mutex::new(out),
        }
    }

    /// The EMF document for metrics of one dimension set (all about the pool, or all about
    /// the same application of it).
    pub fn document(namespace: &str, pool: &PoolName, metrics: &[Metric], epoch_ms: u128) -> Value {
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
            .collect();
        let app = metrics.first().and_then(|m| m.app.as_ref());
        let dimensions = match app {
            Some(_) => json!([[DIMENSION, APP_DIMENSION]]),
            None => json!([[DIMENSION]]),
        };
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": epoch_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert(DIMENSION.into(), json!(pool.as_str()));
        if let Some(app) = app {
            root.insert(APP_DIMENSION.into(), json!(app.as_str()));
        }
        for m in metrics {
            root.insert(m.name.into(), json!(m.value));
        }
        Value::Object(root)
    }
}

#[async_trait]
impl MetricsSink for EmfSink {
    async fn publish(&self, pool: &PoolName, metrics: &[Metric]) -> Result<(), MetricsError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut lines = String::new();
        for (_, group) in by_dimensions(metrics) {
            let group: Vec<Metric> = group.into_iter().cloned().collect();
            lines.push_str(&Self::document(&self.namespace, pool, &group, now).to_string());
            lines.push('\n');
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(lines.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// PutMetricData through the CloudWatch API.
pub struct CloudWatchSink {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchSink {
    /// A client that gives up quickly: metrics must not hold a grant or a release for long.
    pub fn new(sdk: &aws_config::SdkConfig, namespace: impl Into<String>) -> Self {
        Self::with_config(aws_sdk_cloudwatch::config::Builder::from(sdk), namespace)
    }

    /// Like [`CloudWatchSink::new`] from a client configuration of your own (tests point it
    /// at an endpoint where nothing listens).
    pub fn with_config(
        config: aws_sdk_cloudwatch::config::Builder,
        namespace: impl Into<String>,
    ) -> Self {
        let config = config
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(2))
                    .build(),
            )
            .build();
        CloudWatchSink {
            client: aws_sdk_cloudwatch::Client::from_conf(config),
            namespace: namespace.into(),
        }
    }
}

#[async_trait]
impl MetricsSink for CloudWatchSink {
    async fn publish(&self, pool: &PoolName, metrics: &[Metric]) -> Result<(), MetricsError> {
        let dimension = Dimension::builder()
            .name(DIMENSION)
            .value(pool.as_str())
            .build();
        let mut request = self.client.put_metric_data().namespace(&self.namespace);
        for m in metrics {
            let mut datum = MetricDatum::builder().dimensions(dimension.clone());
            if let Some(app) = &m.app {
                datum = datum.dimensions(
                    Dimension::builder()
                        .name(APP_DIMENSION)
                        .value(app.as_str())
                        .build(),
                );
            }
            request = request.metric_data(
                datum
                    .metric_name(m.name)
                    .value(m.value)
                    .unit(match m.unit {
                        Unit::Count => StandardUnit::Count,
                        Unit::Milliseconds => StandardUnit::Milliseconds,
                    })
                    .timestamp(SystemTime::now().into())
                    .build(),
            );
        }
        request
            .send()
            .await
            .map_err(|e| MetricsError::Api(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// Remembers metrics in publication order.
    #[derive(Default)]
    pub struct RecordingSink(Mutex<Vec<Metric>>);

    impl RecordingSink {
        /// Names of the pool's metrics (not an application's), in order.
        pub fn names(&self) -> Vec<&'static str> {
            let all = self.0.lock().unwrap();
            all.iter()
                .filter(|m| m.app.is_none())
                .map(|m| m.name)
                .collect()
        }

        /// The pool's values published under `name`, in order.
        pub fn values(&self, name: &str) -> Vec<f64> {
            self.values_of(name, None)
        }

        /// The values published under `name` for one application (`None`: the pool's).
        pub fn values_of(&self, name: &str, app: Option<&str>) -> Vec<f64> {
            let all = self.0.lock().unwrap();
            all.iter()
                .filter(|m| m.name == name && m.app.as_ref().map(|a| a.as_str()) == app)
                .map(|m| m.value)
                .collect()
        }
    }

    #[async_trait]
    impl MetricsSink for RecordingSink {
        async fn publish(&self, _: &PoolName, metrics: &[Metric]) -> Result<(), MetricsError> {
            self.0.lock().unwrap().extend(metrics.iter().cloned());
            Ok(())
        }
    }

    pub struct FailingSink;

    #[async_trait]
    impl MetricsSink for FailingSink {
        async fn publish(&self, _: &PoolName, _: &[Metric]) -> Result<(), MetricsError> {
            Err(MetricsError::Write(std::io::Error::other("disk full")))
        }
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn emf_lines_declare_namespace_dimension_and_values() {
        let buffer = Shared::default();
        let sink = EmfSink::with_writer("RDSLambda", Box::new(buffer.clone()));
        let pool = PoolName::parse("orders").unwrap();
        sink.publish(&pool, &[Metric::count("RemainingConnections", 4.0)])
            .await
            .unwrap();
        sink.publish(&pool, &[Metric::count("NoConnectionsLeftError", 1.0)])
            .await
            .unwrap();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        let directive = &first["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "RDSLambda");
        assert_eq!(directive["Dimensions"], json!([["DBName"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "RemainingConnections");
        assert!(first["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(first["DBName"], "orders");
        assert_eq!(first["RemainingConnections"], 4.0);
        assert_eq!(lines[1]["NoConnectionsLeftError"], 1.0);
    }

    #[test]
    fn wait_time_is_declared_in_milliseconds_and_gauges_as_counts() {
        let pool = PoolName::parse("orders").unwrap();
        let doc = EmfSink::document(
            "RDSLambda",
            &pool,
            &[
                Metric::count("WaitingRequests", 3.0),
                Metric::milliseconds("WaitTime", 250.0),
            ],
            1_700_000_000_000,
        );
        let declared = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(
            declared,
            &json!([
                {"Name": "WaitingRequests", "Unit": "Count"},
                {"Name": "WaitTime", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(
            (doc["WaitingRequests"].as_f64(), doc["WaitTime"].as_f64()),
            (Some(3.0), Some(250.0))
        );
    }
}
