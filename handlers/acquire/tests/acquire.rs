//! The acquire function's contract, end to end against the local DynamoDB.

use acquire_handler::{AcquireEvent, handle};
use lambda_runtime::Diagnostic;
use leasehold_broker::Broker;
use leasehold_testkit::{broker, invoke, unique};
use serde_json::{Value, json};

async fn call(broker: &Broker, payload: Value) -> Result<Value, Diagnostic> {
    invoke(|event| handle(broker, event), payload).await
}

#[test]
fn the_sample_event_is_an_acquire_event() {
    let event: AcquireEvent =
        serde_json::from_str(include_str!("../../../events/acquire.json")).unwrap();
    assert_eq!((event.pool.as_str(), event.ttl_seconds), ("main", Some(60)));
}

#[tokio::test]
async fn grants_with_the_documented_shape_then_refuses_by_name() {
    let broker = broker().await;
    let pool = unique("acq");
    broker.put_pool(&pool, 1).await.unwrap();

    let grant = call(&broker, json!({"pool": pool, "leaseId": "exec-1"}))
        .await
        .unwrap();
    let mut keys: Vec<&str> = grant
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "budget",
            "expiresAt",
            "extended",
            "leaseId",
            "pool",
            "remaining"
        ]
    );
    assert_eq!(grant["extended"], json!(false));
    assert_eq!(
        (grant["remaining"].as_u64(), grant["budget"].as_u64()),
        (Some(0), Some(1))
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ttl = grant["expiresAt"].as_i64().unwrap() - now;
    assert!((58..=61).contains(&ttl), "default ttl is 60 s, got {ttl}");

    // The same execution retrying gets its lease back; another one is refused.
    let again = call(
        &broker,
        json!({"pool": pool, "leaseId": "exec-1", "ttlSeconds": 60}),
    )
    .await
    .unwrap();
    assert_eq!(again, grant);
    let refused = call(&broker, json!({"pool": pool, "leaseId": "exec-2"}))
        .await
        .unwrap_err();
    assert_eq!(refused.error_type, "ConnectionsExhausted");
    assert!(refused.error_message.contains(&pool));
}

#[tokio::test]
async fn unknown_pools_and_malformed_events_are_typed_and_change_nothing() {
    let broker = broker().await;
    let pool = unique("acq");
    broker.put_pool(&pool, 2).await.unwrap();
    let missing = call(&broker, json!({"pool": unique("nope"), "leaseId": "a"}))
        .await
        .unwrap_err();
    assert_eq!(missing.error_type, "PoolNotFound");
    let malformed = [
        json!({"pool": pool}),
        json!({"leaseId": "a"}),
        json!({"pool": pool, "leaseId": "a", "ttlSeconds": -1}),
        json!({"pool": pool, "leaseId": "a", "ttlSeconds": "60"}),
        json!({"pool": pool, "leaseId": "a", "ttlSeconds": 901}),
        json!({"pool": pool, "leaseId": "a", "ttl": 60}),
        json!({"pool": 7, "leaseId": "a"}),
        json!("not an object"),
        Value::Null,
    ];
    for payload in malformed {
        let err = call(&broker, payload.clone()).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidInput", "{payload}");
        assert!(!err.error_type.contains("::"), "a Rust type never leaks");
    }
    assert_eq!(broker.pool(&pool).await.unwrap().in_use, 0);
}

#[tokio::test]
async fn queued_mode_rejects_bad_tokens_before_touching_the_pool() {
    let broker = broker().await;
    let pool = unique("acq");
    broker.put_pool(&pool, 1).await.unwrap();
    let cases = [
        json!({"pool": pool, "leaseId": "a", "waitSeconds": 30}),
        json!({"pool": pool, "leaseId": "a", "taskToken": ""}),
        json!({"pool": pool, "leaseId": "a", "taskToken": "has a space"}),
        json!({"pool": pool, "leaseId": "a", "taskToken": "x".repeat(2049)}),
        json!({"pool": pool, "leaseId": "a", "taskToken": 7}),
        json!({"pool": pool, "leaseId": "a", "taskToken": "t", "waitSeconds": 0}),
        json!({"pool": pool, "leaseId": "a", "taskToken": "t", "waitSeconds": 3601}),
    ];
    for payload in cases {
        let err = call(&broker, payload.clone()).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidInput", "{payload}");
    }
    let record = broker.pool(&pool).await.unwrap();
    assert_eq!((record.in_use, record.waiting), (0, 0));
}
