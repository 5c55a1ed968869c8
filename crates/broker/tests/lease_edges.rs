//! Edges of the lease protocol that must not leak a record or hide what happened: a re-acquire
//! says whether it moved the expiry, reclaim removes an orphaned record even when the counter
//! is already 0, and a grant racing the deletion of its pool leaves no record behind. Against
//! DynamoDB's API (moto over HTTP, through the real SDK).

use leasehold_broker::{
    AcquireRequest, Broker, Clock, Counts, DynamoStore, LeaseStore, ManualClock, NullSink,
    PoolName, SystemClock,
};
use leasehold_testkit::{require_env, sdk_config, unique};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

async fn store() -> Arc<DynamoStore> {
    let sdk = sdk_config().await;
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        require_env("LEASE_TABLE"),
    ))
}

/// The `extended` field of a grant as the acquire handler returns it (JSON).
fn extended(grant: &leasehold_broker::Grant) -> Option<bool> {
    serde_json::to_value(grant).unwrap()["extended"].as_bool()
}

#[tokio::test]
async fn a_re_acquire_says_whether_it_moved_the_expiry() {
    // GIVEN lease "a" granted at t=1000 for 60 s
    let clock = Arc::new(ManualClock::new(1_000));
    let broker = Broker::new(store().await, Arc::new(NullSink), clock.clone());
    let pool = unique("extend");
    broker.put_pool(&pool, 2).await.unwrap();
    let first = broker
        .acquire(&AcquireRequest::new(&pool, "a", 60))
        .await
        .unwrap();
    assert_eq!(extended(&first), Some(false), "a new grant extends nothing");

    // WHEN it is acquired again while live: the same lease, expiry not moved, and it says so
    clock.advance(10);
    let again = broker
        .acquire(&AcquireRequest::new(&pool, "a", 60))
        .await
        .unwrap();
    assert_eq!(
        (again.expires_at, extended(&again)),
        (first.expires_at, Some(false))
    );

    // WHEN it is acquired after expiry, before any reclaim: renewed in place, and it says so
    clock.advance(100);
    let renewed = broker
        .acquire(&AcquireRequest::new(&pool, "a", 60))
        .await
        .unwrap();
    assert_eq!(
        (renewed.expires_at, extended(&renewed)),
        (clock.now() + 60, Some(true))
    );
    assert_eq!(broker.audit(&pool, false).await.unwrap().lease_records, 1);
}

#[tokio::test]
async fn reclaim_removes_an_expired_record_even_when_the_counter_is_already_zero() {
    // GIVEN an expired lease whose slot is no longer counted (the counter was repaired down
    // to 0 while its record stayed: an orphan)
    let clock = Arc::new(ManualClock::new(5_000));
    let store = store().await;
    let broker = Broker::new(store.clone(), Arc::new(NullSink), clock.clone());
    let pool = unique("orphan");
    let name = PoolName::parse(&pool).unwrap();
    broker.put_pool(&pool, 1).await.unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "a", 5))
        .await
        .unwrap();
    let seen = store.pool(&name).await.unwrap().unwrap();
    assert!(
        store
            .set_in_use(&name, &seen, &Counts::default())
            .await
            .unwrap()
    );
    clock.advance(60);

    // WHEN the reaper runs
    let reclaimed = broker.reclaim_expired(&pool).await.unwrap();

    // THEN the orphaned record is gone and the counter did not go below zero
    assert_eq!(reclaimed.reclaimed, 1);
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.lease_records, audit.consistent),
        (0, 0, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grants_racing_the_deletion_of_their_pool_leave_no_record() {
    for round in 0..3 {
        // GIVEN a pool with room for everyone and twelve holders acquiring as fast as they can
        let store = store().await;
        let broker = Arc::new(Broker::new(
            store.clone(),
            Arc::new(NullSink),
            Arc::new(SystemClock),
        ));
        let pool = unique(&format!("deleted-{round}"));
        broker.put_pool(&pool, 10_000).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let granted = Arc::new(AtomicU32::new(0));
        let holders: Vec<_> = (0..12)
            .map(|h| {
                let (broker, pool, stop, granted) =
                    (broker.clone(), pool.clone(), stop.clone(), granted.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) && n < 200 {
                        let id = format!("h{h}-{n}");
                        match broker.acquire(&AcquireRequest::new(&pool, &id, 60)).await {
                            Ok(_) => {
                                granted.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                assert_eq!(e.name(), "PoolNotFound", "{e}");
                                return;
                            }
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        while granted.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }

        // WHEN the pool is deleted while they keep acquiring
        assert!(broker.delete_pool(&pool).await.unwrap());
        stop.store(true, Ordering::SeqCst);
        for h in holders {
            h.await.unwrap();
        }

        // THEN no lease record of the pool survives, and the pool is gone
        let name = PoolName::parse(&pool).unwrap();
        let left = store.leases(&name).await.unwrap();
        assert!(
            left.is_empty(),
            "round {round}: {} orphaned records",
            left.len()
        );
        assert!(store.pool(&name).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_draining_lease_is_kept_until_it_expires_then_reclaimed() {
    // GIVEN lease "a" granted at t=2000 for 300 s, and "b" for 5 s
    let clock = Arc::new(ManualClock::new(2_000));
    let broker = Broker::new(store().await, Arc::new(NullSink), clock.clone());
    let pool = unique("drain");
    broker.put_pool(&pool, 2).await.unwrap();
    for (id, ttl) in [("a", 300), ("b", 5)] {
        broker
            .acquire(&AcquireRequest::new(&pool, id, ttl))
            .await
            .unwrap();
    }

    // WHEN both holders end while their queries may still run for up to 45 s
    let a = broker.drain(&pool, "a", 45).await.unwrap();
    let b = broker.drain(&pool, "b", 45).await.unwrap();
    let gone = broker.drain(&pool, "never-held", 45).await.unwrap();

    // THEN "a" now expires within 45 s, "b" keeps its sooner expiry (never extended), and an
    // id without a lease is simply not draining
    assert_eq!((a.draining, a.expires_at), (true, Some(2_045)));
    assert_eq!((b.draining, b.expires_at), (true, Some(2_005)));
    assert_eq!((gone.draining, gone.expires_at), (false, None));
    // AND the cleanup of a failed execution leaves a draining lease in place
    let settled = broker.release_settled(&pool, "a").await.unwrap();
    assert_eq!((settled.released, settled.draining), (false, true));
    assert_eq!(
        broker
            .acquire(&AcquireRequest::new(&pool, "c", 60))
            .await
            .unwrap_err()
            .name(),
        "ConnectionsExhausted",
        "a draining lease still counts"
    );
    // AND once expired, reclaim frees both slots
    clock.advance(46);
    assert_eq!(broker.reclaim_expired(&pool).await.unwrap().reclaimed, 2);
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!((audit.in_use, audit.lease_records), (0, 0));
    assert_eq!(
        broker.drain(&pool, "a", 0).await.unwrap_err().name(),
        "InvalidInput"
    );
}

#[tokio::test]
async fn release_settled_frees_a_lease_that_is_not_draining() {
    let broker = Broker::new(store().await, Arc::new(NullSink), Arc::new(SystemClock));
    let pool = unique("settled");
    broker.put_pool(&pool, 1).await.unwrap();
    broker
        .acquire(&AcquireRequest::new(&pool, "a", 60))
        .await
        .unwrap();
    let released = broker.release_settled(&pool, "a").await.unwrap();
    assert_eq!(
        (released.released, released.draining, released.remaining),
        (true, false, 1)
    );
    let again = broker.release_settled(&pool, "a").await.unwrap();
    assert_eq!((again.released, again.draining), (false, false));
}
