//! Embedded Metric Format extraction: what CloudWatch Logs does with a Lambda's log lines in
//! AWS. A JSON line with an `_aws.CloudWatchMetrics` directive becomes PutMetricData calls
//! against the configured CloudWatch endpoint, in the background, batched.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::Value;
use std::collections::BTreeMap;
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

/// CloudWatch takes at most this many distinct values in one datum's `Values`.
const MAX_VALUES: usize = 150;

/// One PutMetricData member: the data points of one metric (name, dimensions, unit) in one
/// second, as distinct values with how often each came.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub unit: String,
    pub dimensions: Vec<(String, String)>,
    /// Seconds since the epoch.
    pub second: i64,
    /// (value, count), by value.
    pub values: Vec<(f64, u64)>,
    /// How many data points it stands for.
    pub points: u64,
}

/// Groups data points per namespace into members of one metric and one second each (at
/// most [`MAX_VALUES`] distinct values per member): what CloudWatch keeps of them is the
/// same (its finest period is a second), and a call carries a few members instead of one
/// per point. The local CloudWatch parses a call's members in time that grows with their
/// square: 400 single points took 0.6 s of its one-at-a-time section, the same points as
/// six members 4 ms.
pub fn aggregate(batch: Vec<Datum>) -> BTreeMap<String, Vec<Member>> {
    type Key = (String, String, Vec<(String, String)>, String, i64);
    let mut grouped: BTreeMap<Key, BTreeMap<u64, u64>> = BTreeMap::new();
    for d in batch {
        let key = (
            d.namespace,
            d.name,
            d.dimensions,
            d.unit,
            d.timestamp_ms.div_euclid(1000),
        );
        // Values keyed by their bits: counted exactly, whatever they are.
        *grouped
            .entry(key)
            .or_default()
            .entry(d.value.to_bits())
            .or_default() += 1;
    }
    let mut out: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for ((namespace, name, dimensions, unit, second), counts) in grouped {
        let counts: Vec<(f64, u64)> = counts
            .into_iter()
            .map(|(bits, n)| (f64::from_bits(bits), n))
            .collect();
        for values in counts.chunks(MAX_VALUES) {
            out.entry(namespace.clone()).or_default().push(Member {
                name: name.clone(),
                unit: unit.clone(),
                dimensions: dimensions.clone(),
                second,
                values: values.to_vec(),
                points: values.iter().map(|(_, n)| n).sum(),
            });
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
                for (namespace, members) in aggregate(batch) {
                    let n: u64 = members.iter().map(|m| m.points).sum();
                    let mut request = client.put_metric_data().namespace(&namespace);
                    for member in members {
                        let mut datum = MetricDatum::builder()
                            .metric_name(&member.name)
                            .unit(StandardUnit::from(member.unit.as_str()))
                            .timestamp(
                                (UNIX_EPOCH + Duration::from_secs(member.second.max(0) as u64))
                                    .into(),
                            );
                        for (value, count) in member.values {
                            datum = datum.values(value).counts(count as f64);
                        }
                        for (k, v) in &member.dimensions {
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

    fn point(name: &str, app: &str, value: f64, timestamp_ms: i64) -> Datum {
        Datum {
            namespace: "RDSLambda".into(),
            name: name.into(),
            unit: "Count".into(),
            dimensions: vec![("Application".into(), app.into())],
            value,
            timestamp_ms,
        }
    }

    #[test]
    fn points_of_one_metric_and_second_become_one_member_with_counted_values() {
        let batch = vec![
            point("Waiting", "hot", 3.0, 1_000),
            point("Waiting", "hot", 3.0, 1_999),
            point("Waiting", "hot", 1.0, 1_500),
            point("Waiting", "hot", 2.0, 2_000),
            point("Waiting", "steady", 0.0, 1_100),
        ];
        let out = aggregate(batch);
        let members = &out["RDSLambda"];
        type Seen<'a> = (&'a str, i64, Vec<(f64, u64)>, u64);
        let seen: Vec<Seen> = members
            .iter()
            .map(|m| {
                (
                    m.dimensions[0].1.as_str(),
                    m.second,
                    m.values.clone(),
                    m.points,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("hot", 1, vec![(1.0, 1), (3.0, 2)], 3),
                ("hot", 2, vec![(2.0, 1)], 1),
                ("steady", 1, vec![(0.0, 1)], 1),
            ]
        );
        // More distinct values than one member takes: split, nothing lost.
        let many: Vec<Datum> = (0..400)
            .map(|i| point("Wait", "hot", i as f64, 5_000))
            .collect();
        let members = &aggregate(many)["RDSLambda"];
        assert_eq!(
            members.iter().map(|m| m.values.len()).collect::<Vec<_>>(),
            vec![150, 150, 100]
        );
        assert_eq!(members.iter().map(|m| m.points).sum::<u64>(), 400);
    }

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
