//! The trace page's endpoints, fed generated query strings (numbers at the ends of every
//! range, negative numbers, wrong types, long and odd strings, repeated and missing
//! parameters), answer every one with a status and a body: never a panic, never a server
//! error other than "no metrics" or "CloudWatch did not answer". Seeded: a failure names the
//! case to replay.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Empty;
use leasehold_asl::clock::{Random, SeededRandom};
use leasehold_trace::{DEFAULT_NAMESPACE, TraceState, app};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const CASES: u64 = 10_000;
const SEED: u64 = 0x7ace_0001;

/// Seeded cases from the interpreter's own generator, so that a failing case replays.
struct Gen(SeededRandom);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A query value: a number (often an extreme), or some text.
    fn value(&mut self) -> String {
        let extremes = [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775806",
            "-9223372036854775807",
            "18446744073709551615",
            "18446744073709551616",
            "0",
            "-1",
            "1",
            "1440",
            "1441",
            "86400000",
            "-86400000",
            "1e308",
            "0.5",
            "NaN",
            "",
            "abc",
            "%00",
            "%FF%FE",
            "ALL",
            "RUNNING",
            "arn:aws:states:us-east-1:123456789012:stateMachine:m",
            "arn:aws:states:us-east-1:123456789012:execution:m:e",
        ];
        match self.below(4) {
            0 | 1 => self.pick(&extremes).to_owned(),
            2 => (self.next() as i64).to_string(),
            _ => "x".repeat(self.below(300)),
        }
    }
}

/// A CloudWatch client whose endpoint refuses connections: the window is computed from the
/// query before the call, which then fails fast.
fn unreachable_cloudwatch() -> aws_sdk_cloudwatch::Client {
    use aws_sdk_cloudwatch::config::{
        Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig,
    };
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

#[tokio::test]
async fn generated_queries_never_panic_the_trace_page() {
    let app = app(Arc::new(TraceState {
        view: Arc::new(Empty),
        cloudwatch: Some(unreachable_cloudwatch()),
        namespace: DEFAULT_NAMESPACE.to_owned(),
    }));
    let endpoints: [(&str, &[&str]); 6] = [
        (
            "/trace/api/metrics",
            &["pool", "minutes", "startMs", "endMs"],
        ),
        ("/trace/api/executions", &["machine", "status", "limit"]),
        ("/trace/api/execution", &["arn"]),
        ("/trace/api/history", &["arn", "after"]),
        ("/trace/api/machines", &["limit"]),
        ("/trace", &["x"]),
    ];
    let mut g = Gen(SeededRandom::new(SEED));
    let started = Instant::now();
    for case in 0..CASES {
        // The metrics endpoint, whose numbers feed the time window, gets half the cases.
        let (path, names) = if g.below(2) == 0 {
            endpoints[0]
        } else {
            endpoints[g.below(endpoints.len())]
        };
        let mut query = Vec::new();
        for name in names {
            for _ in 0..g.below(3) {
                query.push(format!("{name}={}", g.value()));
            }
        }
        let uri = format!("{path}?{}", query.join("&"));
        let request = Request::get(&uri).body(Body::empty()).expect("a request");
        let answer = tokio::spawn(app.clone().oneshot(request)).await;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => panic!("case {case} (seed {SEED:#x}): GET {uri}: no answer: {e}"),
            Err(e) => panic!("case {case} (seed {SEED:#x}): GET {uri}: the handler panicked: {e}"),
        };
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .expect("a body");
        assert!(
            !body.is_empty(),
            "case {case} (seed {SEED:#x}): GET {uri}: {status} without a body"
        );
        assert!(
            !status.is_server_error()
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::BAD_GATEWAY,
            "case {case} (seed {SEED:#x}): GET {uri}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    eprintln!("{CASES} cases in {:?}", started.elapsed());
}
