//! The broker's properties against DynamoDB's API (moto over HTTP, through the real SDK).

use leasehold_broker::metrics::MetricsSink;
use leasehold_broker::{
    AcquireRequest, Broker, BrokerConfig, CloudWatchSink, DynamoStore, LeaseStore, ManualClock,
    Metric, NullSink, PoolName, QueuedRequest, RecordingCallbacks, SystemClock,
};
use leasehold_testkit::{require_env, sdk_config, unique};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

struct Setup {
    broker: Arc<Broker>,
    store: Arc<DynamoStore>,
    sdk: aws_config::SdkConfig,
    pool: String,
}

async fn setup(budget: u32, clock: Arc<dyn leasehold_broker::Clock>) -> Setup {
    let sdk = sdk_config().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        require_env("LEASE_TABLE"),
    ));
    let broker = Arc::new(Broker::new(store.clone(), Arc::new(NullSink), clock));
    let pool = unique("pool");
    broker.put_pool(&pool, budget).await.unwrap();
    Setup {
        broker,
        store,
        sdk,
        pool,
    }
}

fn req(pool: &str, id: &str, ttl: u32) -> AcquireRequest {
    AcquireRequest::new(pool, id, ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_acquires_against_a_budget_of_ten_grant_exactly_ten() {
    // GIVEN a pool of 10 and a sampler that watches the lease records while the race runs
    let s = setup(10, Arc::new(SystemClock)).await;
    let pool_name = PoolName::parse(&s.pool).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let most_seen = Arc::new(AtomicU32::new(0));
    let sampler = {
        let (store, stop, most_seen, pool) = (
            s.store.clone(),
            stop.clone(),
            most_seen.clone(),
            pool_name.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let leases = store.leases(&pool).await.unwrap().len() as u32;
                let in_use = store.pool(&pool).await.unwrap().unwrap().in_use;
                most_seen.fetch_max(leases.max(in_use), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // WHEN 100 holders ask at once
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (broker, pool) = (s.broker.clone(), s.pool.clone());
            tokio::spawn(async move {
                broker
                    .acquire(&req(&pool, &format!("holder-{i}"), 60))
                    .await
            })
        })
        .collect();
    let mut granted = 0;
    let mut exhausted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => granted += 1,
            Err(e) => {
                assert_eq!(e.name(), "ConnectionsExhausted", "{e}");
                exhausted += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();

    // THEN exactly the budget was granted, and no sample ever saw more
    assert_eq!((granted, exhausted), (10, 90));
    assert!(
        most_seen.load(Ordering::SeqCst) <= 10,
        "saw {}",
        most_seen.load(Ordering::SeqCst)
    );
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.lease_records, audit.consistent),
        (10, 10, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_never_exceeds_the_budget_and_ends_at_zero() {
    // GIVEN 30 workers looping acquire → hold → release on a pool of 4
    let s = setup(4, Arc::new(SystemClock)).await;
    let live = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let served = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..30)
        .map(|w| {
            let (broker, pool) = (s.broker.clone(), s.pool.clone());
            let (live, peak, served) = (live.clone(), peak.clone(), served.clone());
            tokio::spawn(async move {
                for round in 0..6 {
                    let id = format!("w{w}-r{round}");
                    if broker.acquire(&req(&pool, &id, 60)).await.is_ok() {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        live.fetch_sub(1, Ordering::SeqCst);
                        let released = broker.release(&pool, &id).await.unwrap();
                        assert!(released.released);
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    // THEN holders never overlapped beyond the budget, work got done, and nothing is held
    assert!(peak.load(Ordering::SeqCst) <= 4);
    assert!(served.load(Ordering::SeqCst) >= 4);
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert_eq!((audit.in_use, audit.lease_records), (0, 0));
}

#[tokio::test]
async fn acquire_and_release_are_idempotent() {
    let s = setup(2, Arc::new(SystemClock)).await;
    let first = s.broker.acquire(&req(&s.pool, "exec-1", 60)).await.unwrap();
    let again = s.broker.acquire(&req(&s.pool, "exec-1", 60)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(again.remaining, 1, "the retry took no second slot");
    let released = s.broker.release(&s.pool, "exec-1").await.unwrap();
    let twice = s.broker.release(&s.pool, "exec-1").await.unwrap();
    assert!(released.released && !twice.released);
    assert_eq!((released.remaining, twice.remaining), (2, 2));
}

#[tokio::test]
async fn expired_leases_are_reclaimed_by_the_reaper_and_by_a_full_acquire() {
    // GIVEN a pool of 2 whose holders crashed (no release), on a clock we control
    let clock = Arc::new(ManualClock::new(2_000_000_000));
    let s = setup(2, clock.clone()).await;
    s.broker
        .acquire(&req(&s.pool, "crashed-1", 30))
        .await
        .unwrap();
    s.broker
        .acquire(&req(&s.pool, "crashed-2", 30))
        .await
        .unwrap();
    assert_eq!(
        s.broker
            .acquire(&req(&s.pool, "next", 30))
            .await
            .unwrap_err()
            .name(),
        "ConnectionsExhausted"
    );
    // WHEN their leases expire, a full pool's acquire reclaims them first
    clock.advance(30);
    let grant = s.broker.acquire(&req(&s.pool, "next", 30)).await.unwrap();
    assert_eq!(grant.remaining, 1);
    // AND the reaper reclaims what is left after the next expiry
    clock.advance(31);
    let reaped = s.broker.reclaim_expired(&s.pool).await.unwrap();
    assert_eq!((reaped.reclaimed, reaped.remaining), (1, 2));
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.lease_records, audit.consistent),
        (0, 0, true)
    );
}

#[tokio::test]
async fn an_expired_lease_is_renewed_for_its_own_holder_without_a_new_slot() {
    let clock = Arc::new(ManualClock::new(2_000_000_000));
    let s = setup(1, clock.clone()).await;
    let first = s.broker.acquire(&req(&s.pool, "slow", 10)).await.unwrap();
    clock.advance(15);
    let renewed = s.broker.acquire(&req(&s.pool, "slow", 10)).await.unwrap();
    assert_eq!(renewed.expires_at, first.expires_at + 15);
    assert_eq!(s.broker.pool(&s.pool).await.unwrap().in_use, 1);
}

#[tokio::test]
async fn a_budget_change_keeps_live_leases() {
    let s = setup(3, Arc::new(SystemClock)).await;
    for id in ["a", "b", "c"] {
        s.broker.acquire(&req(&s.pool, id, 60)).await.unwrap();
    }
    // WHEN the budget shrinks below the slots in use, nothing is lost and nothing new granted
    let record = s.broker.put_pool(&s.pool, 2).await.unwrap();
    assert_eq!((record.budget, record.in_use), (2, 3));
    assert!(s.broker.acquire(&req(&s.pool, "d", 60)).await.is_err());
    assert_eq!(s.broker.release(&s.pool, "a").await.unwrap().remaining, 0);
    assert_eq!(s.broker.release(&s.pool, "b").await.unwrap().remaining, 1);
    // AND growing it frees slots at once
    s.broker.put_pool(&s.pool, 5).await.unwrap();
    assert_eq!(
        s.broker
            .acquire(&req(&s.pool, "d", 60))
            .await
            .unwrap()
            .remaining,
        3
    );
}

#[tokio::test]
async fn the_audit_matches_counter_and_records_and_repairs_drift() {
    let s = setup(5, Arc::new(SystemClock)).await;
    s.broker.acquire(&req(&s.pool, "a", 60)).await.unwrap();
    s.broker.acquire(&req(&s.pool, "b", 60)).await.unwrap();
    assert!(s.broker.audit(&s.pool, false).await.unwrap().consistent);

    // GIVEN drift: a counted slot without a lease record (what a non-atomic writer would leave)
    aws_sdk_dynamodb::Client::new(&s.sdk)
        .update_item()
        .table_name(s.store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(s.pool.clone()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("#POOL".into()),
        )
        .update_expression("SET inUse = inUse + :three")
        .expression_attribute_values(
            ":three",
            aws_sdk_dynamodb::types::AttributeValue::N("3".into()),
        )
        .send()
        .await
        .unwrap();
    let found = s.broker.audit(&s.pool, false).await.unwrap();
    assert_eq!(
        (found.in_use, found.lease_records, found.consistent),
        (5, 2, false)
    );
    assert_eq!(
        s.broker
            .acquire(&req(&s.pool, "c", 60))
            .await
            .unwrap_err()
            .name(),
        "ConnectionsExhausted"
    );

    // WHEN repaired, the counter equals the records again and the slots come back
    let fixed = s.broker.audit(&s.pool, true).await.unwrap();
    assert!(fixed.repaired && fixed.consistent);
    assert_eq!(
        s.broker
            .acquire(&req(&s.pool, "c", 60))
            .await
            .unwrap()
            .remaining,
        2
    );
}

#[tokio::test]
async fn unknown_pools_bad_input_and_deleted_pools() {
    let s = setup(1, Arc::new(SystemClock)).await;
    let missing = unique("missing");
    assert_eq!(
        s.broker
            .acquire(&req(&missing, "a", 60))
            .await
            .unwrap_err()
            .name(),
        "PoolNotFound"
    );
    assert_eq!(
        s.broker.release(&missing, "a").await.unwrap_err().name(),
        "PoolNotFound"
    );
    assert_eq!(
        s.broker
            .acquire(&req(&s.pool, "a", 0))
            .await
            .unwrap_err()
            .name(),
        "InvalidInput"
    );
    assert_eq!(
        s.broker.pool(&s.pool).await.unwrap().in_use,
        0,
        "bad input changed nothing"
    );

    s.broker.acquire(&req(&s.pool, "a", 60)).await.unwrap();
    assert!(s.broker.delete_pool(&s.pool).await.unwrap());
    let name = PoolName::parse(&s.pool).unwrap();
    assert!(
        s.store.leases(&name).await.unwrap().is_empty(),
        "leases went with the pool"
    );
    assert!(!s.broker.delete_pool(&s.pool).await.unwrap());
}

#[tokio::test]
async fn api_mode_publishes_the_same_metrics_with_put_metric_data() {
    // GIVEN the broker configured for METRICS_MODE=api against the local CloudWatch
    let sdk = sdk_config().await;
    let namespace = unique("Leasehold-test");
    let config = BrokerConfig::from_lookup(|key| match key {
        "LEASE_TABLE" => Some(require_env("LEASE_TABLE")),
        "METRICS_MODE" => Some("api".into()),
        "METRICS_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    })
    .unwrap();
    let broker = config.broker(&sdk);
    let pool = unique("metrics");
    broker.put_pool(&pool, 1).await.unwrap();

    // WHEN a grant and a refusal happen, and a queued request is handed a released slot
    broker.acquire(&req(&pool, "a", 60)).await.unwrap();
    broker.acquire(&req(&pool, "b", 60)).await.unwrap_err();
    let queue = Broker::new(
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            require_env("LEASE_TABLE"),
        )),
        Arc::new(CloudWatchSink::new(&sdk, &namespace)),
        Arc::new(SystemClock),
    )
    .with_callbacks(Arc::new(RecordingCallbacks::default()));
    let waiting = queue
        .acquire_queued(&QueuedRequest {
            pool: pool.clone(),
            lease_id: "c".into(),
            ttl_seconds: 60,
            task_token: "token-c".into(),
            wait_seconds: 60,
            app: None,
        })
        .await
        .unwrap();
    assert!(waiting.waiting);
    assert!(queue.release(&pool, "a").await.unwrap().released);

    // THEN both metrics exist in CloudWatch under the namespace with DBName = pool
    let listed = aws_sdk_cloudwatch::Client::new(&sdk)
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    let mut names: Vec<(String, String)> = listed
        .metrics()
        .iter()
        .map(|m| {
            let dim = &m.dimensions()[0];
            (
                m.metric_name().unwrap_or_default().to_owned(),
                format!(
                    "{}={}",
                    dim.name().unwrap_or_default(),
                    dim.value().unwrap_or_default()
                ),
            )
        })
        .collect();
    names.sort();
    names.dedup();
    let expected_dim = format!("DBName={pool}");
    assert_eq!(
        names,
        vec![
            ("NoConnectionsLeftError".to_owned(), expected_dim.clone()),
            ("RemainingConnections".to_owned(), expected_dim.clone()),
            ("WaitTime".to_owned(), expected_dim.clone()),
            ("WaitingRequests".to_owned(), expected_dim),
        ]
    );
}

#[tokio::test]
async fn an_unreachable_metrics_api_never_fails_a_grant_or_a_release() {
    // GIVEN a CloudWatch endpoint where nothing listens
    let sdk = sdk_config().await;
    let dead = aws_sdk_cloudwatch::config::Builder::from(&sdk).endpoint_url("http://127.0.0.1:9");
    let sink = Arc::new(CloudWatchSink::with_config(dead, "RDSLambda"));
    let name = PoolName::parse("x").unwrap();
    assert!(
        sink.publish(&name, &[Metric::count("RemainingConnections", 1.0)])
            .await
            .is_err(),
        "the sink itself does fail"
    );
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        require_env("LEASE_TABLE"),
    ));
    let broker = Broker::new(store, sink, Arc::new(SystemClock));
    let pool = unique("nometrics");
    broker.put_pool(&pool, 1).await.unwrap();
    // THEN the lease is granted, refused and released as if metrics were fine
    let grant = broker.acquire(&req(&pool, "a", 60)).await.unwrap();
    assert_eq!(grant.remaining, 0);
    assert_eq!(
        broker
            .acquire(&req(&pool, "b", 60))
            .await
            .unwrap_err()
            .name(),
        "ConnectionsExhausted"
    );
    assert!(broker.release(&pool, "a").await.unwrap().released);
    assert_eq!(broker.pool(&pool).await.unwrap().in_use, 0);
}
