//! The wait queue against DynamoDB's API (moto over HTTP, through the real SDK): FIFO service
//! under contention, and the enqueue/release race checked by an audit after every step.
//! Waiting tasks are completed through the recording callbacks; the Step Functions side is
//! tested with the local stack (crates/local/tests/wait_queue.rs).

use leasehold_broker::{
    AcquireRequest, Beside, Broker, DynamoStore, Freeing, LeaseId, LeaseStore, NullSink, PoolName,
    QueuedRequest, RecordingCallbacks, SystemClock, Waiter,
};
use leasehold_testkit::{require_env, sdk_config, unique};
use std::sync::Arc;

struct Setup {
    broker: Arc<Broker>,
    store: Arc<DynamoStore>,
    calls: Arc<RecordingCallbacks>,
    pool: String,
}

async fn setup(budget: u32) -> Setup {
    let sdk = sdk_config().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        require_env("LEASE_TABLE"),
    ));
    let calls = Arc::new(RecordingCallbacks::default());
    let broker = Arc::new(
        Broker::new(store.clone(), Arc::new(NullSink), Arc::new(SystemClock))
            .with_callbacks(calls.clone()),
    );
    let pool = unique("queue");
    broker.put_pool(&pool, budget).await.unwrap();
    Setup {
        broker,
        store,
        calls,
        pool,
    }
}

fn queued(pool: &str, id: &str) -> QueuedRequest {
    QueuedRequest {
        pool: pool.into(),
        lease_id: id.into(),
        ttl_seconds: 120,
        task_token: format!("token-{id}"),
        wait_seconds: 120,
        app: None,
    }
}

/// Lease ids of the completed tasks, in completion order.
fn served(calls: &RecordingCallbacks) -> Vec<String> {
    calls
        .completed()
        .into_iter()
        .map(|(_, output)| output["leaseId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_enqueued_concurrently_are_served_in_enqueue_order() {
    // GIVEN a pool of 1 held by one lease
    let s = setup(1).await;
    let name = PoolName::parse(&s.pool).unwrap();
    assert!(
        !s.broker
            .acquire_queued(&queued(&s.pool, "holder"))
            .await
            .unwrap()
            .waiting
    );

    // WHEN twelve requests queue at once while pollers keep trying to take the slot
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (broker, pool) = (s.broker.clone(), s.pool.clone());
        tasks.push(tokio::spawn(async move {
            broker
                .acquire_queued(&queued(&pool, &format!("w{i:02}")))
                .await
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap().waiting);
    }
    let mut expected: Vec<Waiter> = s.store.waiters(&name).await.unwrap();
    expected.sort_by(Waiter::queue_order);
    let expected: Vec<String> = expected.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(expected.len(), 12);

    // AND every holder releases as soon as it is served, while pollers race for the slot
    let mut holder = "holder".to_owned();
    for _ in 0..12 {
        let newcomer = AcquireRequest::new(&s.pool, unique("poller"), 60);
        let poller = s.broker.acquire(&newcomer);
        let (released, polled) = tokio::join!(s.broker.release(&s.pool, &holder), poller);
        assert!(released.unwrap().released);
        assert_eq!(polled.unwrap_err().name(), "ConnectionsExhausted");
        holder = served(&s.calls).last().unwrap().clone();
        let record = s.store.pool(&name).await.unwrap().unwrap();
        assert_eq!(
            record.in_use, 1,
            "the slot never came free while requests waited"
        );
    }

    // THEN they were served exactly in the order they were enqueued, and nothing is left
    assert_eq!(served(&s.calls)[1..], expected[..]);
    s.broker.release(&s.pool, &holder).await.unwrap();
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert!(audit.consistent, "{audit:?}");
    assert_eq!(
        (audit.in_use, audit.waiting, audit.waiter_records),
        (0, 0, 0)
    );
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn a_slot_given_back_beside_the_queue_as_read_is_refused_once_the_queue_moved_to_the_same_count()
 {
    // GIVEN a pool of 2 held by "a" and "b", with "w1" queued, and the queue as a release of
    // "a" read it (one waiting)
    let s = setup(2).await;
    let name = PoolName::parse(&s.pool).unwrap();
    for (id, waits) in [("a", false), ("b", false), ("w1", true)] {
        let queued = s.broker.acquire_queued(&queued(&s.pool, id)).await.unwrap();
        assert_eq!(queued.waiting, waits, "{id}");
    }
    let read = s.store.pool(&name).await.unwrap().unwrap();
    assert_eq!(read.waiting, 1);

    // WHEN meanwhile "b" goes to "w1" and "w2" queues: one waiting again, another one
    assert!(s.broker.release(&s.pool, "b").await.unwrap().released);
    assert_eq!(served(&s.calls).last().map(String::as_str), Some("w1"));
    assert!(
        s.broker
            .acquire_queued(&queued(&s.pool, "w2"))
            .await
            .unwrap()
            .waiting
    );
    assert_eq!(s.store.pool(&name).await.unwrap().unwrap().waiting, 1);

    // THEN giving "a"'s slot back beside the queue as read is refused, and nothing changed:
    // "w2" would otherwise wait beside a free slot
    let beside = Beside::of(&read);
    let freeing = Freeing {
        app: None,
        beside: Some(&beside),
    };
    let a = LeaseId::parse("a").unwrap();
    let attempt = s.store.release(&name, &a, freeing).await.unwrap();
    assert!(!attempt.released && attempt.waiters_first, "{attempt:?}");
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.waiting, audit.waiters_beside_free_slots),
        (2, 1, false)
    );

    // AND the broker's own release of "a" hands the slot to "w2"
    assert!(s.broker.release(&s.pool, "a").await.unwrap().released);
    assert_eq!(served(&s.calls).last().map(String::as_str), Some("w2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_enqueues_and_releases_never_leave_a_waiter_beside_a_free_slot() {
    // GIVEN a pool of 3, and a randomized run of steps of concurrent queued acquires,
    // releases of served holders, and tasks that are gone before they are served
    let budget = 3;
    let s = setup(budget).await;
    let seed = std::env::var("WAIT_QUEUE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let mut next_id = 0;
    let mut released: std::collections::HashSet<String> = Default::default();
    for step in 0..30 {
        let holders: Vec<String> = served(&s.calls)
            .into_iter()
            .filter(|id| !released.contains(id))
            .collect();
        let mut ops = Vec::new();
        for _ in 0..(2 + rng.below(4)) {
            let (broker, pool, calls) = (s.broker.clone(), s.pool.clone(), s.calls.clone());
            if !holders.is_empty() && rng.below(2) == 0 {
                let id = holders[rng.below(holders.len() as u64) as usize].clone();
                if !released.insert(id.clone()) {
                    continue;
                }
                ops.push(tokio::spawn(async move {
                    broker.release(&pool, &id).await.map(|_| ())
                }));
            } else {
                next_id += 1;
                let id = format!("r{next_id:03}");
                let gone = rng.below(6) == 0;
                ops.push(tokio::spawn(async move {
                    let out = broker.acquire_queued(&queued(&pool, &id)).await.map(|_| ());
                    if gone {
                        // Its execution is stopped while it waits (or right after its grant).
                        calls.mark_gone(&format!("token-{id}"));
                    }
                    out
                }));
            }
        }
        for op in ops {
            op.await.unwrap().unwrap();
        }

        // THEN after every step the audit finds the counters equal to the records, never more
        // leases than the budget, and no live waiter beside a free slot
        let audit = s.broker.audit(&s.pool, false).await.unwrap();
        assert!(audit.consistent, "step {step} (seed {seed:#x}): {audit:?}");
        assert!(audit.lease_records <= budget, "step {step}: {audit:?}");
        assert!(!audit.waiters_beside_free_slots, "step {step}: {audit:?}");
    }

    // AND once every holder lets go, the queue drains to nothing
    for _ in 0..40 {
        let holders: Vec<String> = served(&s.calls)
            .into_iter()
            .filter(|id| !released.contains(id))
            .collect();
        if holders.is_empty() {
            break;
        }
        for id in holders {
            released.insert(id.clone());
            s.broker.release(&s.pool, &id).await.unwrap();
        }
    }
    // Served-but-gone holders were released by the broker itself; withdraw what is left.
    let name = PoolName::parse(&s.pool).unwrap();
    for lease in s.store.leases(&name).await.unwrap() {
        s.broker.release(&s.pool, lease.id.as_str()).await.unwrap();
    }
    let audit = s.broker.audit(&s.pool, false).await.unwrap();
    assert!(audit.consistent, "{audit:?}");
    assert_eq!(
        (audit.lease_records, audit.waiter_records),
        (0, 0),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reclaim_pass_removes_waiters_whose_wait_has_ended() {
    // GIVEN a full pool with a request queued for one second
    let s = setup(1).await;
    assert!(
        !s.broker
            .acquire_queued(&queued(&s.pool, "holder"))
            .await
            .unwrap()
            .waiting
    );
    let mut short = queued(&s.pool, "short");
    short.wait_seconds = 1;
    assert!(s.broker.acquire_queued(&short).await.unwrap().waiting);

    // WHEN its wait is over (whole seconds: two are certainly past it) and the reclaim runs
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let reclaimed = s.broker.reclaim_expired(&s.pool).await.unwrap();

    // THEN the waiter is gone and counted off, and it never gets the slot when it comes free
    assert_eq!((reclaimed.expired_waiters, reclaimed.waiting), (1, 0));
    let released = s.broker.release(&s.pool, "holder").await.unwrap();
    assert!(released.released && released.remaining == 1, "{released:?}");
    assert_eq!(served(&s.calls), ["holder"]);
}
