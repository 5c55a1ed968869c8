//! Applications dividing one pool, end to end on the local stack (the template's application
//! parameters, the seed, the real acquire and release binaries, MariaDB, moto): executions name
//! their application; one at its `max` waits while another is served beside it; one without an
//! application is refused; the per-application metrics reach CloudWatch with the `Application`
//! dimension.

mod common;

use common::{Setup, TestStack, ok, start};
use std::time::Duration;

fn input(app: Option<&str>) -> String {
    let app = app
        .map(|a| format!(r#", "app": "{a}""#))
        .unwrap_or_default();
    format!(
        r#"{{"pool": "main", "query": "listEmployees", "params": {{}}, "holdMs": 0, "mode": "queued"{app}}}"#
    )
}

async fn divided_stack() -> TestStack {
    start(Setup {
        parameters: vec![
            ("PoolBudget", "3".into()),
            ("Application1Name", "web".into()),
            ("Application1Reserved", "2".into()),
            ("Application2Name", "batch".into()),
            ("Application2Reserved", "0".into()),
            ("Application2Max", "1".into()),
            ("QueueWaitSeconds", "30".into()),
            ("QueueCheckSeconds", "10".into()),
        ],
        ..Setup::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_at_its_max_waits_while_another_is_served_beside_it() {
    // GIVEN a pool of 3 divided by the seed: web reserves 2, batch may hold 1, and holds it
    let t = divided_stack().await;
    let grant = t
        .invoke(
            "AcquireFunction",
            r#"{"pool": "main", "leaseId": "batch-holder", "ttlSeconds": 120, "app": "batch"}"#,
        )
        .await;
    assert_eq!(grant["app"], "batch", "{grant}");

    // WHEN batch asks again through the workflow, and then web
    let waiting = t
        .start_execution("ConnectionStateMachine", &input(Some("batch")))
        .await;
    t.waiting(1, Duration::from_secs(20)).await;
    let served = t
        .start_execution("ConnectionStateMachine", &input(Some("web")))
        .await;

    // THEN web is served at once beside batch's waiter, which may not take the free slots
    let d = t.finished(&served, Duration::from_secs(30)).await;
    let output: serde_json::Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(output["status"], "SERVED", "{output}");
    assert_eq!(t.waiters().await, (1, 1), "batch still waits");

    // AND when batch's holder releases, its slot goes to batch's waiter
    let released = t
        .invoke(
            "ReleaseFunction",
            r#"{"pool": "main", "leaseId": "batch-holder", "app": "batch"}"#,
        )
        .await;
    assert_eq!(released["released"], true, "{released}");
    let d = t.finished(&waiting, Duration::from_secs(30)).await;
    let output: serde_json::Value = serde_json::from_str(d.output().unwrap()).unwrap();
    assert_eq!(output["status"], "SERVED", "{output}");

    // AND the books agree per application, with nothing left
    let audit = t
        .invoke("ReleaseFunction", r#"{"pool": "main", "audit": true}"#)
        .await;
    assert_eq!(audit["consistent"], true, "{audit}");
    assert_eq!(audit["inUse"], 0, "{audit}");
    for app in ["web", "batch"] {
        assert_eq!(audit["applications"][app]["leaseRecords"], 0, "{audit}");
    }
    assert_eq!(audit["applications"]["batch"]["max"], 1, "{audit}");

    // AND the per-application gauges reached CloudWatch under DBName and Application
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the local services' endpoint");
    let mut names = Vec::new();
    for _ in 0..20 {
        let listed = ok(
            &endpoint,
            &[
                "cloudwatch",
                "list-metrics",
                "--namespace",
                "RDSLambda",
                "--dimensions",
                "Name=DBName,Value=main",
                "Name=Application,Value=batch",
            ],
        );
        names = listed["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["MetricName"].as_str().map(str::to_owned))
            .collect();
        if names.iter().any(|n| n == "BorrowedConnections")
            && names.iter().any(|n| n == "WaitingRequests")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for metric in [
        "RemainingConnections",
        "WaitingRequests",
        "BorrowedConnections",
        "WaitTime",
    ] {
        assert!(names.iter().any(|n| n == metric), "{metric} in {names:?}");
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_without_its_application_is_refused_and_changes_nothing() {
    let t = divided_stack().await;
    for bad in [input(None), input(Some("nope"))] {
        let arn = t.start_execution("ConnectionStateMachine", &bad).await;
        let d = t.finished(&arn, Duration::from_secs(30)).await;
        assert_eq!(d.status().as_str(), "FAILED", "{bad}: {d:?}");
        assert_eq!(d.error(), Some("InvalidInput"), "{bad}: {:?}", d.cause());
    }
    let (_, in_use, leases) = t.pool().await;
    assert_eq!((in_use, leases), (0, 0));
    assert_eq!(t.waiters().await, (0, 0));
    t.shutdown().await;
}
