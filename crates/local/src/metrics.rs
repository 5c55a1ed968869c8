//! Embedded Metric Format extraction: what CloudWatch Logs does with a Lambda's log lines in
//! AWS. A JSON line with an `_aws.CloudWatchMetrics` directive becomes PutMetricData calls
//! against the configured CloudWatch endpoint, in the background, batched.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::warn;

/// How long the forwarder gathers data points before one PutMetricData call.
const BATCH_WINDOW: Duration = Duration::from_millis(500);

/// One extracted data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    pub dimensions: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// The data points of one EMF line; empty when the line is not EMF.
pub fn extract(line: &str) -> Vec<Datum> {
    let line = line.trim();
    if !line.starts_with('{') || !line.contains("\"_aws\"") {
        return Vec::new();
    }
    let Ok(root) = serde_json::from_str::<Value>(line) else {
        return Vec::new();
    };
    let aws = &root["_aws"];
    let timestamp_ms = aws["Timestamp"].as_i64().unwrap_or(0);
    let mut out = Vec::new();
    for directive in aws["CloudWatchMetrics"].as_array().into_iter().flatten() {
        let Some(namespace) = directive["Namespace"].as_str() else {
            continue;
        };
        let dimension_sets: Vec<Vec<String>> = directive["Dimensions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| {
                set.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect()
            })
            .collect();
        let dimension_sets = if dimension_sets.is_empty() {
            vec![Vec::new()]
        } else {
            dimension_sets
        };
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let unit = metric["Unit"].as_str().unwrap_or("None").to_owned();
            let values: Vec<f64> = match &root[name] {
                Value::Number(n) => n.as_f64().into_iter().collect(),
                Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                _ => continue,
            };
            for set in &dimension_sets {
                let dimensions: Option<Vec<(String, String)>> = set
                    .iter()
                    .map(|d| root[d.as_str()].as_str().map(|v| (d.clone(), v.to_owned())))
                    .collect();
                let Some(dimensions) = dimensions else {
                    continue;
                };
                for value in &values {
                    out.push(Datum {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        unit: unit.clone(),
                        dimensions: dimensions.clone(),
                        value: *value,
                        timestamp_ms,
                    });
                }
            }
        }
    }
    out
}

/// Sends extracted metrics to CloudWatch in the background.
#[derive(Clone)]
pub struct MetricsForwarder {
    sender: Option<mpsc::UnboundedSender<Datum>>,
    published: Arc<AtomicU64>,
}

impl MetricsForwarder {
    /// A forwarder that only counts (no CloudWatch endpoint configured).
    pub fn disabled() -> Self {
        MetricsForwarder {
            sender: None,
            published: Arc::default(),
        }
    }

    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Datum>();
        let published = Arc::new(AtomicU64::new(0));
        let counter = published.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                // CloudWatch takes up to 1000 data points per call. Gathering for a moment
                // keeps the local charts within a second of real time while a busy stack
                // sends a few calls a second instead of one per log line (every call to the
                // local CloudWatch queues behind, or ahead of, a lease transaction).
                let until = tokio::time::Instant::now() + BATCH_WINDOW;
                while batch.len() < 1000 {
                    match tokio::time::timeout_at(until, receiver.recv()).await {
                        Ok(Some(d)) => batch.push(d),
                        _ => break,
                    }
                }
                let mut by_namespace: std::collections::BTreeMap<String, Vec<Datum>> =
                    Default::default();
                for d in batch {
                    by_namespace.entry(d.namespace.clone()).or_default().push(d);
                }
                for (namespace, data) in by_namespace {
                    let n = data.len() as u64;
                    let mut request = client.put_metric_data().namespace(&namespace);
                    for d in data {
                        let mut datum = MetricDatum::builder()
                            .metric_name(&d.name)
                            .value(d.value)
                            .unit(StandardUnit::from(d.unit.as_str()))
                            .timestamp(
                                (UNIX_EPOCH + Duration::from_millis(d.timestamp_ms.max(0) as u64))
                                    .into(),
                            );
                        for (k, v) in &d.dimensions {
                            datum = datum.dimensions(Dimension::builder().name(k).value(v).build());
                        }
                        request = request.metric_data(datum.build());
                    }
                    match request.send().await {
                        Ok(_) => {
                            counter.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            warn!(error = %aws_sdk_cloudwatch::error::DisplayErrorContext(e), "PutMetricData failed")
                        }
                    }
                }
            }
        });
        MetricsForwarder {
            sender: Some(sender),
            published,
        }
    }

    /// Looks at one log line; EMF lines are queued for CloudWatch.
    pub fn offer(&self, line: &str) {
        if let Some(sender) = &self.sender {
            for datum in extract(line) {
                let _ = sender.send(datum);
            }
        }
    }

    /// Data points CloudWatch accepted so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_become_data_points_and_other_lines_do_not() {
        let line = r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"RDSLambda","Dimensions":[["DBName"]],"Metrics":[{"Name":"RemainingConnections","Unit":"Count"}]}]},"DBName":"main","RemainingConnections":3.0}"#;
        let data = extract(line);
        assert_eq!(
            data,
            vec![Datum {
                namespace: "RDSLambda".into(),
                name: "RemainingConnections".into(),
                unit: "Count".into(),
                dimensions: vec![("DBName".into(), "main".into())],
                value: 3.0,
                timestamp_ms: 1_700_000_000_000,
            }]
        );
        assert!(extract(r#"{"level":"INFO","message":"lease granted"}"#).is_empty());
        assert!(extract("plain text").is_empty());
        assert!(extract(r#"{"_aws": not json"#).is_empty());
        // A metric whose dimension value is missing is dropped, as CloudWatch does.
        assert!(extract(&line.replace(r#""DBName":"main","#, "")).is_empty());
    }
}
