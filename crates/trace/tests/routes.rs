//! The trace page's routes over a view with no state machine: lookups, errors and the pool's
//! metrics read back from the local CloudWatch (moto). The routes on a real stack are tested in
//! `crates/local/tests/trace.rs`.

mod common;

use axum::http::StatusCode;
use common::Empty;
use leasehold_testkit::router::get;
use leasehold_trace::{DEFAULT_NAMESPACE, TraceState, app};
use serde_json::json;
use std::sync::Arc;

fn trace_app(cloudwatch: Option<aws_sdk_cloudwatch::Client>) -> axum::Router {
    app(Arc::new(TraceState {
        view: Arc::new(Empty),
        cloudwatch,
        namespace: DEFAULT_NAMESPACE.to_owned(),
    }))
}

#[tokio::test]
async fn lookups_answer_not_found_bad_request_or_no_metrics() {
    let app = trace_app(None);
    let (status, body) = get(&app, "/trace/api/machines").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"machines": []})));
    let unknown = "arn:aws:states:us-east-1:123456789012:execution:m:x";
    let (status, body) = get(&app, &format!("/trace/api/execution?arn={unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("Does Not Exist: '{unknown}'"));
    let (status, _) = get(&app, "/trace/api/history?arn=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get(&app, "/trace/api/executions?machine=m&status=DONE").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = get(&app, "/trace/api/metrics").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_pools_metrics_are_read_back_from_cloudwatch() {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    // GIVEN data points of a pool of its own in the local CloudWatch
    let client = aws_sdk_cloudwatch::Client::new(&leasehold_testkit::sdk_config().await);
    let pool = leasehold_testkit::unique("trace-pool");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let datum = |name: &str, value: f64, ago_ms: i64| {
        MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .dimensions(Dimension::builder().name("DBName").value(&pool).build())
            .timestamp(DateTime::from_millis(now - ago_ms))
            .build()
    };
    client
        .put_metric_data()
        .namespace(DEFAULT_NAMESPACE)
        .metric_data(datum("RemainingConnections", 3.0, 20_000))
        .metric_data(datum("RemainingConnections", 1.0, 10_000))
        .metric_data(datum("RemainingConnections", 0.0, 10_000))
        .metric_data(datum("NoConnectionsLeftError", 1.0, 10_000))
        .metric_data(datum("NoConnectionsLeftError", 1.0, 10_000))
        .send()
        .await
        .expect("PutMetricData");
    let app = trace_app(Some(client));

    // WHEN the page asks for the last five minutes of that pool
    let (status, m) = get(&app, &format!("/trace/api/metrics?pool={pool}&minutes=5")).await;

    // THEN each period has its minimum, average, maximum and sum, oldest first
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["periodSeconds"], 1);
    let series = |metric: &str| -> Vec<Vec<f64>> {
        m["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metric"] == metric)
            .unwrap()["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let remaining = series("RemainingConnections");
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    assert!(remaining[0][0] < remaining[1][0]);
    assert_eq!(remaining[0][1..4], [3.0, 3.0, 3.0]);
    assert_eq!(remaining[1][1..4], [0.0, 0.5, 1.0]);
    let refused = series("NoConnectionsLeftError");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0][4], 2.0);
    assert!(
        m["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == &json!(pool))
    );

    // AND a window around an execution that ended before the data finds nothing
    let (_, before) = get(
        &app,
        &format!(
            "/trace/api/metrics?pool={pool}&startMs={}&endMs={}",
            now - 600_000,
            now - 500_000
        ),
    )
    .await;
    assert_eq!(before["series"][0]["points"], json!([]));
    let (status, _) = get(&app, "/trace/api/metrics?pool=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
