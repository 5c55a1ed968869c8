//! The Lambda side of the local stack: containers, concurrency, timeouts, logs and metrics,
//! through the real Lambda API client (aws-sdk-lambda).

mod common;

use aws_sdk_lambda::primitives::Blob;
use common::{Setup, start, test_template};
use serde_json::Value;
use std::time::Duration;

/// A template with two query functions of 2 s timeout: "Slow" (one container at most) and
/// "Stuck" (pointed at a database that never answers by the test).
fn small_template() -> std::path::PathBuf {
    test_template(
        "small",
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Database:
    Type: AWS::RDS::DBInstance
  Leases:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}, {AttributeName: sk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}, {AttributeName: sk, KeyType: RANGE}]
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/query
      Timeout: 2
      ReservedConcurrentExecutions: 1
      LoggingConfig: {LogFormat: JSON}
      Environment:
        Variables:
          DB_HOST: !GetAtt Database.Endpoint.Address
          DB_PORT: !GetAtt Database.Endpoint.Port
          DB_NAME: leasehold
          DB_SECRET_ARN: !GetAtt Database.MasterUserSecret.SecretArn
          # The deployed bundle's path: locally the database's own authority stands in.
          DB_TLS_CA_FILE: /var/task/rds-global-bundle.pem
  Stuck:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/query
      Timeout: 2
      Environment:
        Variables:
          DB_HOST: !GetAtt Database.Endpoint.Address
          DB_PORT: !GetAtt Database.Endpoint.Port
          DB_NAME: leasehold
          DB_SECRET_ARN: !GetAtt Database.MasterUserSecret.SecretArn
          # The deployed bundle's path: locally the database's own authority stands in.
          DB_TLS_CA_FILE: /var/task/rds-global-bundle.pem
  Acquire:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: handlers/acquire
      Environment:
        Variables:
          LEASE_TABLE: !Ref Leases
"#,
    )
}

fn payload(text: &str) -> Blob {
    Blob::new(text.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_reused_limited_timed_out_and_stopped_when_idle() {
    // A database that accepts connections and never answers: the function "Stuck" waits on it
    // past its 2 s timeout (its own limits keep the query function within time otherwise).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(8).flatten() {
            held.push(stream);
        }
    });
    let t = start(Setup {
        template: Some(small_template()),
        idle_seconds: Some(2),
        function_env: vec![("Stuck", "DB_PORT", silent_port.to_string())],
        ..Setup::default()
    })
    .await;
    let slow = format!("{}-Slow", t.name);

    // Two calls in a row: one cold start, one warm container reused.
    for _ in 0..2 {
        let out = t
            .lambda
            .invoke()
            .function_name(&slow)
            .payload(payload(r#"{"query": "listEmployees"}"#))
            .send()
            .await
            .unwrap();
        assert!(out.function_error().is_none());
        let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        assert_eq!(body["rowCount"], 3);
    }
    let stats = &t.stats().await["functions"][&slow];
    assert_eq!(
        (stats["invocations"].as_u64(), stats["coldStarts"].as_u64()),
        (Some(2), Some(1))
    );

    // A second concurrent call beyond ReservedConcurrentExecutions = 1 is throttled.
    let busy = {
        let (lambda, name) = (t.lambda.clone(), slow.clone());
        tokio::spawn(async move {
            lambda
                .invoke()
                .function_name(name)
                .payload(payload(r#"{"query": "listEmployees", "holdMs": 1000}"#))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (The SDK would retry a throttled call until the first one is done; ask only once.)
    let once = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&leasehold_testkit::sdk_config().await)
            .endpoint_url(&t.url)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let throttled = once
        .invoke()
        .function_name(&slow)
        .payload(payload(r#"{"query": "listEmployees"}"#))
        .send()
        .await;
    let err = throttled.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_too_many_requests_exception()),
        "{err:?}"
    );
    assert!(busy.await.unwrap().unwrap().function_error().is_none());

    // An invocation that overruns its 2 s timeout is killed and fails as Lambda's does.
    let stuck = format!("{}-Stuck", t.name);
    let out = t
        .lambda
        .invoke()
        .function_name(&stuck)
        .payload(payload(r#"{"query": "listEmployees"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 2.00 seconds")
    );
    let stats = &t.stats().await["functions"][&stuck];
    assert_eq!(stats["timeouts"], 1);

    // Idle containers stop after the idle timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while t.stats().await["functions"][&slow]["containersLive"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle container never stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_logs_and_metrics_surface_as_in_aws() {
    let t = start(Setup::default()).await;
    let query = format!("{}-QueryFunction", t.name);

    // A function error: HTTP 200 with X-Amz-Function-Error and the handler's errorType.
    let out = t
        .lambda
        .invoke()
        .function_name(&query)
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(payload(r#"{"query": "DROP TABLE Employees"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.status_code(), out.function_error()),
        (200, Some("Unhandled"))
    );
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["errorType"], "UnknownQuery");
    assert!(
        out.log_result().is_some_and(|l| !l.is_empty()),
        "LogType Tail returns the log's end"
    );

    // An unknown function is Lambda's ResourceNotFoundException.
    let err = t
        .lambda
        .invoke()
        .function_name("no-such-function")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );

    // Every invocation is in its container's log stream with START/END/REPORT.
    let acquire = format!("{}-AcquireFunction", t.name);
    let out = t
        .lambda
        .invoke()
        .function_name(&acquire)
        .payload(payload(
            r#"{"pool": "main", "leaseId": "probe", "ttlSeconds": 30}"#,
        ))
        .send()
        .await
        .unwrap();
    assert!(out.function_error().is_none());
    let logs = t.logs("AcquireFunction");
    for marker in [
        "START RequestId:",
        "END RequestId:",
        "REPORT RequestId:",
        "lease granted",
    ] {
        assert!(logs.contains(marker), "{marker} missing from\n{logs}");
    }

    // Its EMF line became a CloudWatch metric in the local CloudWatch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.stats().await["metricsPublished"].as_u64().unwrap_or(0) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metric published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&leasehold_testkit::sdk_config().await);
    let listed = cloudwatch
        .list_metrics()
        .namespace("RDSLambda")
        .metric_name("RemainingConnections")
        .send()
        .await
        .unwrap();
    assert!(listed.metrics().iter().any(|m| {
        m.dimensions()
            .iter()
            .any(|d| d.name() == Some("DBName") && d.value() == Some("main"))
    }));
    t.shutdown().await;
}
