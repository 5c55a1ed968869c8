//! The release function's contract: release, reclaim, audit and the cleanup event.

use lambda_runtime::Diagnostic;
use leasehold_broker::{AcquireRequest, Broker};
use leasehold_testkit::{broker, invoke, unique};
use release_handler::{ReleaseEvent, Settings, StatusChangeEvent, handle};
use serde_json::{Value, json};

/// The query function's worst case, as `QUERY_TIMEOUT_SECONDS` would say.
const SETTINGS: Settings = Settings { drain_seconds: 45 };

async fn call(broker: &Broker, payload: Value) -> Result<Value, Diagnostic> {
    invoke(|event| handle(broker, &SETTINGS, event), payload).await
}

#[test]
fn the_sample_events_parse() {
    for text in [
        include_str!("../../../events/release.json"),
        include_str!("../../../events/reclaim.json"),
        include_str!("../../../events/audit.json"),
    ] {
        let event: ReleaseEvent = serde_json::from_str(text).unwrap();
        assert_eq!(event.pool, "main");
    }
    for text in [
        include_str!("../../../events/cleanup-execution-failed.json"),
        include_str!("../../../events/cleanup-execution-aborted.json"),
    ] {
        let event: StatusChangeEvent = serde_json::from_str(text).unwrap();
        assert!(event.detail.execution_arn.starts_with("arn:aws:states:"));
        let input: Value = serde_json::from_str(event.detail.input.as_deref().unwrap()).unwrap();
        assert!(input["pool"].is_string());
    }
}

#[tokio::test]
async fn release_answers_released_once_and_remaining() {
    let broker = broker().await;
    let pool = unique("rel");
    broker.put_pool(&pool, 2).await.unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "exec-1", 60))
        .await
        .unwrap();
    let first = call(&broker, json!({"pool": pool, "leaseId": "exec-1"}))
        .await
        .unwrap();
    assert_eq!(
        first,
        json!({"pool": pool, "leaseId": "exec-1", "released": true, "remaining": 2})
    );
    let second = call(&broker, json!({"pool": pool, "leaseId": "exec-1"}))
        .await
        .unwrap();
    assert_eq!(
        second["released"], false,
        "an already released lease is not an error"
    );
}

#[tokio::test]
async fn reclaim_and_audit_modes() {
    let broker = broker().await;
    let pool = unique("rel");
    broker.put_pool(&pool, 2).await.unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "short", 1))
        .await
        .unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "long", 600))
        .await
        .unwrap();
    // Whole-second expiry: after two seconds the one-second lease is certainly past it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let reclaimed = call(&broker, json!({"pool": pool, "reclaimExpired": true}))
        .await
        .unwrap();
    assert_eq!(
        reclaimed,
        json!({"pool": pool, "reclaimed": 1, "remaining": 1, "expiredWaiters": 0, "waiting": 0})
    );
    let audit = call(&broker, json!({"pool": pool, "audit": true}))
        .await
        .unwrap();
    assert_eq!(
        (audit["inUse"].as_u64(), audit["leaseRecords"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (audit["consistent"].as_bool(), audit["repaired"].as_bool()),
        (Some(true), Some(false))
    );
}

/// A pool of one whose only lease is held by an execution that has just ended, and the
/// status change event of that execution (from `sample`, with this ARN and pool).
async fn ended_execution_holding_a_lease(
    broker: &Broker,
    sample: &str,
    name: &str,
) -> (String, Value) {
    let pool = unique(name);
    broker.put_pool(&pool, 1).await.unwrap();
    let mut event: Value = serde_json::from_str(sample).unwrap();
    let arn = format!(
        "arn:aws:states:us-east-1:123456789012:execution:leasehold-connection:{}",
        unique("x")
    );
    event["detail"]["executionArn"] = json!(arn);
    event["detail"]["input"] = json!(json!({"pool": pool, "query": "listEmployees"}).to_string());
    broker
        .acquire(&AcquireRequest::new(&pool, &arn, 600))
        .await
        .unwrap();
    (pool, event)
}

#[tokio::test]
async fn the_cleanup_event_gives_back_the_lease_of_a_failed_execution() {
    // GIVEN an execution (its ARN is the lease id) that failed while holding a lease
    let broker = broker().await;
    let (_, event) = ended_execution_holding_a_lease(
        &broker,
        include_str!("../../../events/cleanup-execution-failed.json"),
        "cleanup",
    )
    .await;

    // WHEN EventBridge delivers the status change event unchanged
    let out = call(&broker, event.clone()).await.unwrap();

    // THEN the slot is free again, and a second delivery is harmless
    assert_eq!(
        (out["released"].as_bool(), out["remaining"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(call(&broker, event).await.unwrap()["released"], false);
}

#[tokio::test]
async fn cleanup_of_an_execution_without_a_pool_is_skipped_not_failed() {
    let broker = broker().await;
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../events/cleanup-execution-aborted.json"
    ))
    .unwrap();
    event["detail"]["input"] = json!("{\"query\":\"listEmployees\"}");
    let out = call(&broker, event).await.unwrap();
    assert_eq!(out["released"], false);
    assert!(out["skipped"].is_string());
}

#[tokio::test]
async fn ambiguous_or_malformed_requests_are_invalid_input() {
    let broker = broker().await;
    let pool = unique("rel");
    broker.put_pool(&pool, 1).await.unwrap();
    let cases = [
        json!({"pool": pool}),
        json!({"pool": pool, "leaseId": "a", "reclaimExpired": true}),
        json!({"pool": pool, "leaseId": "a", "audit": true}),
        json!({"pool": pool, "reclaimExpired": true, "audit": true}),
        json!({"pool": pool, "leaseId": "a", "repair": true}),
        json!({"pool": pool, "leaseId": "a", "extra": 1}),
        json!({"detail-type": "Something Else", "detail": {"executionArn": "x"}}),
        json!({"detail-type": "Step Functions Execution Status Change"}),
        json!([]),
    ];
    for payload in cases {
        let err = call(&broker, payload.clone()).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidInput", "{payload}");
    }
    let missing = call(&broker, json!({"pool": unique("nope"), "leaseId": "a"}))
        .await
        .unwrap_err();
    assert_eq!(missing.error_type, "PoolNotFound");
}

#[tokio::test]
async fn the_cleanup_of_an_aborted_execution_drains_its_lease_instead_of_releasing_it() {
    // GIVEN an execution that was stopped while its query may still hold a connection
    let broker = broker().await;
    let (pool, mut event) = ended_execution_holding_a_lease(
        &broker,
        include_str!("../../../events/cleanup-execution-aborted.json"),
        "aborted",
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // WHEN EventBridge delivers its status change event
    let out = call(&broker, event.clone()).await.unwrap();

    // THEN the slot stays counted, but only until the query function's worst case is over
    assert_eq!(out["draining"], true, "{out}");
    let expires_at = out["expiresAt"].as_i64().unwrap();
    assert!((now..=now + 46).contains(&expires_at), "{out}");
    assert_eq!(broker.pool(&pool).await.unwrap().in_use, 1);
    // AND a FAILED event for the same execution does not release a draining lease
    event["detail"]["status"] = json!("FAILED");
    let failed = call(&broker, event).await.unwrap();
    assert_eq!(
        (failed["released"].as_bool(), failed["draining"].as_bool()),
        (Some(false), Some(true))
    );
}

#[tokio::test]
async fn the_drain_request_leaves_a_lease_to_expire_and_checks_its_bounds() {
    let broker = broker().await;
    let pool = unique("drainreq");
    broker.put_pool(&pool, 1).await.unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "a", 600))
        .await
        .unwrap();
    let out = call(
        &broker,
        json!({"pool": pool, "leaseId": "a", "drainSeconds": 30}),
    )
    .await
    .unwrap();
    assert_eq!(out["draining"], true);
    for bad in [json!(0), json!(901), json!(-1), json!("30")] {
        let err = call(
            &broker,
            json!({"pool": pool, "leaseId": "a", "drainSeconds": bad}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type, "InvalidInput", "{bad}");
    }
    let err = call(
        &broker,
        json!({"pool": pool, "drainSeconds": 30, "reclaimExpired": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "InvalidInput");
    // Nothing of that changed the lease: it still drains within the first 30 s
    assert_eq!(broker.pool(&pool).await.unwrap().in_use, 1);
}
