//! Waiter records queued without the broker's token check, for tests of what happens to a
//! waiter whose token no Step Functions task answers to.

use leasehold_broker::{
    DynamoStore, EnqueueAttempt, LeaseId, LeaseStore, PoolName, TaskToken, Waiter,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// Queues `id` in `pool` of `table` with `token` as it stands (it must only be well-formed),
/// waiting up to `wait_seconds`. Only commits while the pool is full, as every enqueue; true
/// when it was queued.
pub async fn enqueue_unchecked(
    sdk: &aws_config::SdkConfig,
    table: &str,
    pool: &str,
    id: &str,
    token: &str,
    wait_seconds: i64,
) -> bool {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let waiter = Waiter {
        pool: PoolName::parse(pool).expect("a valid pool name"),
        id: LeaseId::parse(id).expect("a valid lease id"),
        task_token: TaskToken::parse(token).expect("a well-formed token"),
        enqueued_at_ms: now_ms,
        deadline: now_ms / 1000 + wait_seconds,
        ttl_seconds: 60,
        app: None,
    };
    matches!(
        store.enqueue(&waiter, false).await.expect("enqueue"),
        EnqueueAttempt::Enqueued
    )
}
