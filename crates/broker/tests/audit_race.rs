//! Fault tests: a repairing audit that races grants and releases must never write a counter
//! below the live lease records (which would let the pool grant more than its budget), and a
//! grant decided on a read must not be turned away by requests queued after that read that may
//! take no slot, nor a request within its reservation by a borrower's waiter. Against
//! DynamoDB's API (moto over HTTP, through the real SDK).

use async_trait::async_trait;
use leasehold_broker::{
    AcquireRequest, AppName, AppShare, Beside, Broker, Counts, DynamoStore, EnqueueAttempt,
    Freeing, Grant, GrantAttempt, HandOver, Lease, LeaseId, LeaseStore, NullSink, PoolName,
    PoolRecord, ReclaimAttempt, ReleaseAttempt, SlotSource, StoreError, SystemClock, TaskToken,
    Waiter,
};
use leasehold_testkit::{require_env, sdk_config, unique};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type StepFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type Step = Box<dyn FnOnce(Arc<DynamoStore>) -> StepFuture + Send>;

/// A store that runs injected steps around the next lease query or before the next grant:
/// exactly the interleaving of a concurrent broker whose requests land between one broker's
/// calls. It counts the grant transactions it forwards, decided on the other applications'
/// queues and within a reservation apart.
struct Interleaving {
    inner: Arc<DynamoStore>,
    before_leases: Mutex<Option<Step>>,
    after_leases: Mutex<Option<Step>>,
    before_grant: Mutex<Option<Step>>,
    grants: AtomicUsize,
    reserved_grants: AtomicUsize,
}

impl Interleaving {
    fn around(inner: Arc<DynamoStore>) -> Self {
        Interleaving {
            inner,
            before_leases: Mutex::default(),
            after_leases: Mutex::default(),
            before_grant: Mutex::default(),
            grants: AtomicUsize::new(0),
            reserved_grants: AtomicUsize::new(0),
        }
    }

    async fn run(&self, step: &Mutex<Option<Step>>) {
        let step = step.lock().unwrap().take();
        if let Some(step) = step {
            step(self.inner.clone()).await;
        }
    }
}

#[async_trait]
impl LeaseStore for Interleaving {
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        self.inner.pool(pool).await
    }
    async fn put_pool(
        &self,
        pool: &PoolName,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, StoreError> {
        self.inner.put_pool(pool, budget, apps).await
    }
    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        self.inner.delete_pool(pool).await
    }
    async fn grant(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
        seen: Option<&PoolRecord>,
    ) -> Result<GrantAttempt, StoreError> {
        self.run(&self.before_grant).await;
        let within_reservation = matches!(beside, Some(Beside::Reserved { .. }));
        let counter = match within_reservation {
            true => &self.reserved_grants,
            false => &self.grants,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.grant(lease, beside, seen).await
    }
    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        self.inner.renew(existing, expires_at).await
    }
    async fn release(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.inner.release(pool, id, freeing).await
    }
    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.inner.release_settled(pool, id, freeing).await
    }
    async fn drain(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        expires_by: i64,
    ) -> Result<Option<Lease>, StoreError> {
        self.inner.drain(pool, id, expires_by).await
    }
    async fn lease(&self, pool: &PoolName, id: &LeaseId) -> Result<Option<Lease>, StoreError> {
        self.inner.lease(pool, id).await
    }
    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        self.run(&self.before_leases).await;
        let leases = self.inner.leases(pool).await;
        self.run(&self.after_leases).await;
        leases
    }
    async fn reclaim(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
    ) -> Result<ReclaimAttempt, StoreError> {
        self.inner.reclaim(lease, beside).await
    }
    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: &Counts,
    ) -> Result<bool, StoreError> {
        self.inner.set_in_use(pool, seen, actual).await
    }
    async fn enqueue(&self, waiter: &Waiter, capped: bool) -> Result<EnqueueAttempt, StoreError> {
        self.inner.enqueue(waiter, capped).await
    }
    async fn waiters(&self, pool: &PoolName) -> Result<Vec<Waiter>, StoreError> {
        self.inner.waiters(pool).await
    }
    async fn queue(
        &self,
        pool: &PoolName,
    ) -> Result<(Option<PoolRecord>, Vec<Waiter>), StoreError> {
        self.inner.queue(pool).await
    }
    async fn hand_over(
        &self,
        source: SlotSource<'_>,
        waiter: &Waiter,
        lease: &Lease,
    ) -> Result<HandOver, StoreError> {
        self.inner.hand_over(source, waiter, lease).await
    }
    async fn withdraw(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        app: Option<&AppName>,
    ) -> Result<bool, StoreError> {
        self.inner.withdraw(pool, id, app).await
    }
    async fn release_unclaimed(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        token: &TaskToken,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.inner.release_unclaimed(pool, id, token, freeing).await
    }
    async fn claim(&self, lease: &Lease, from: &TaskToken) -> Result<bool, StoreError> {
        self.inner.claim(lease, from).await
    }
}

fn lease(pool: &str, id: &str) -> Lease {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Lease {
        pool: PoolName::parse(pool).unwrap(),
        id: LeaseId::parse(id).unwrap(),
        granted_at: now,
        expires_at: now + 60,
        draining: false,
        handed_to: None,
        app: None,
    }
}

async fn dynamo() -> Arc<DynamoStore> {
    let sdk = sdk_config().await;
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        require_env("LEASE_TABLE"),
    ))
}

/// A pool of `budget` named after `prefix`, divided between `(application, reserved, max)`.
async fn divided(
    prefix: &str,
    budget: u32,
    apps: &[(&str, u32, u32)],
) -> (Arc<DynamoStore>, String, PoolName) {
    let inner = dynamo().await;
    let pool = unique(prefix);
    let name = PoolName::parse(&pool).unwrap();
    let apps: Vec<AppShare> = apps
        .iter()
        .map(|&(app, reserved, max)| AppShare {
            name: AppName::parse(app).unwrap(),
            reserved,
            max: Some(max),
            weight: 1,
        })
        .collect();
    inner.put_pool(&name, budget, &apps).await.unwrap();
    (inner, pool, name)
}

/// A lease of `app`, as [`lease`].
fn app_lease(pool: &str, id: &str, app: &str) -> Lease {
    Lease {
        app: Some(AppName::parse(app).unwrap()),
        ..lease(pool, id)
    }
}

/// `app`'s request `id` on `pool`, acquired (polling) by a broker whose [`Interleaving`] store
/// runs `before_grant` just before its first grant: the store (its counts), the broker and
/// the grant, which must be `app`'s.
async fn acquired_through(
    inner: Arc<DynamoStore>,
    before_grant: Option<Step>,
    (pool, id, app): (&str, &str, &str),
) -> (Arc<Interleaving>, Broker, Grant) {
    let store = Arc::new(Interleaving {
        before_grant: Mutex::new(before_grant),
        ..Interleaving::around(inner)
    });
    let broker = Broker::new(store.clone(), Arc::new(NullSink), Arc::new(SystemClock));
    let request = AcquireRequest::new(pool, id, 60).for_app(app);
    let grant = broker.acquire(&request).await.unwrap();
    assert_eq!(grant.app.as_ref().map(AppName::as_str), Some(app));
    (store, broker, grant)
}

/// A request of `app` waiting as long as [`lease`] lives, its token named after its id.
fn app_waiter(pool: &str, id: &str, app: &str) -> Waiter {
    let lease = app_lease(pool, id, app);
    Waiter {
        pool: lease.pool,
        id: lease.id,
        task_token: TaskToken::parse(&format!("token-{id}")).unwrap(),
        enqueued_at_ms: 0,
        deadline: lease.expires_at,
        ttl_seconds: 60,
        app: lease.app,
    }
}

#[tokio::test]
async fn a_release_and_a_grant_around_the_lease_query_do_not_make_the_repair_undercount() {
    // GIVEN a pool of 2 holding lease "a", whose counter drifted one too high (a slot counted
    // without a record, as a crashed non-atomic writer would leave)
    let inner = dynamo().await;
    let pool = unique("audit-race");
    let name = PoolName::parse(&pool).unwrap();
    inner.put_pool(&name, 2, &[]).await.unwrap();
    assert!(matches!(
        inner.grant(&lease(&pool, "a"), None, None).await.unwrap(),
        GrantAttempt::Granted(_)
    ));
    let seen = inner.pool(&name).await.unwrap().unwrap();
    assert!(
        inner
            .set_in_use(
                &name,
                &seen,
                &Counts {
                    in_use: 2,
                    ..Counts::default()
                }
            )
            .await
            .unwrap()
    );

    // WHEN a repairing audit runs while another broker releases "a" just before the audit's
    // lease query and grants "b" just after it (the counter reads 2 before and after)
    let (release_pool, grant_pool) = (pool.clone(), pool.clone());
    let store = Arc::new(Interleaving {
        before_leases: Mutex::new(Some(Box::new(move |s: Arc<DynamoStore>| {
            Box::pin(async move {
                let name = PoolName::parse(&release_pool).unwrap();
                let id = LeaseId::parse("a").unwrap();
                assert!(
                    s.release(&name, &id, Freeing::default())
                        .await
                        .unwrap()
                        .released
                );
            })
        }))),
        after_leases: Mutex::new(Some(Box::new(move |s: Arc<DynamoStore>| {
            Box::pin(async move {
                let granted = s.grant(&lease(&grant_pool, "b"), None, None).await.unwrap();
                assert!(matches!(granted, GrantAttempt::Granted(_)));
            })
        }))),
        ..Interleaving::around(inner.clone())
    });
    let broker = Broker::new(store, Arc::new(NullSink), Arc::new(SystemClock));
    broker.audit(&pool, true).await.unwrap();

    // THEN the counter still covers the live lease "b": it equals the records, and the pool
    // grants only one more (its budget of 2 holds)
    let after = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (after.in_use, after.lease_records, after.consistent),
        (1, 1, true),
        "the repair must not drop a slot that a grant took while the audit counted"
    );
    let plain = Broker::new(inner, Arc::new(NullSink), Arc::new(SystemClock));
    assert!(
        plain
            .acquire(&AcquireRequest::new(&pool, "c", 60))
            .await
            .is_ok()
    );
    assert_eq!(
        plain
            .acquire(&AcquireRequest::new(&pool, "d", 60))
            .await
            .unwrap_err()
            .name(),
        "ConnectionsExhausted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_grants_releases_and_repairing_audits_keep_counter_equal_to_records() {
    // GIVEN a pool of 3, eight workers churning leases with random holds, and two auditors that
    // repair whatever they find, all at once
    let store = dynamo().await;
    let broker = Arc::new(Broker::new(
        store.clone(),
        Arc::new(NullSink),
        Arc::new(SystemClock),
    ));
    let pool = unique("audit-churn");
    broker.put_pool(&pool, 3).await.unwrap();
    let seed = std::process::id() as u64;
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (broker, pool) = (broker.clone(), pool.clone());
            tokio::spawn(async move {
                let mut rng = seed ^ (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for round in 0..12 {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = format!("w{w}-r{round}");
                    if broker
                        .acquire(&AcquireRequest::new(&pool, &id, 60))
                        .await
                        .is_ok()
                    {
                        tokio::time::sleep(Duration::from_millis(rng >> 60)).await;
                        broker.release(&pool, &id).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let auditors: Vec<_> = (0..2)
        .map(|_| {
            let (broker, pool) = (broker.clone(), pool.clone());
            tokio::spawn(async move {
                let mut audits = 0;
                for _ in 0..40 {
                    broker.audit(&pool, true).await.unwrap();
                    audits += 1;
                }
                audits
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    for a in auditors {
        assert_eq!(a.await.unwrap(), 40);
    }

    // THEN once the work stops, every audit finds the counter equal to the records: zero
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.lease_records, audit.consistent),
        (0, 0, true)
    );
}

#[tokio::test]
async fn a_grant_decided_with_nobody_waiting_commits_beside_a_request_at_its_ceiling_queued_since()
{
    // GIVEN a pool of 4 divided between "steady" (nothing reserved, so its grant is decided
    // on the other applications' queues) and "hot" (at most 1), where hot holds its one slot,
    // and a broker whose store lets another request land just before its next grant: a hot
    // request, queued on the condition that hot is at its ceiling
    let (inner, pool, _) = divided("grant-race", 4, &[("steady", 0, 4), ("hot", 0, 1)]).await;
    let held = app_lease(&pool, "h1", "hot");
    let held = inner.grant(&held, None, None).await.unwrap();
    assert!(matches!(held, GrantAttempt::Granted(_)));
    let waiter = app_waiter(&pool, "h2", "hot");
    let step: Step = Box::new(move |s: Arc<DynamoStore>| {
        Box::pin(async move {
            let queued = s.enqueue(&waiter, true).await.unwrap();
            assert!(matches!(queued, EnqueueAttempt::Enqueued), "{queued:?}");
        })
    });

    // WHEN steady asks for a slot: it reads the pool (nobody waits), then the hot request
    // queues, then its grant is written
    let (store, broker, _) = acquired_through(inner, Some(step), (&pool, "s1", "steady")).await;

    // THEN the first grant transaction commits (the queued request may take no slot, so it
    // does not send the grant back to read and decide again), and the queue keeps the hot one
    assert_eq!(
        store.grants.load(Ordering::SeqCst),
        1,
        "one grant transaction"
    );
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.waiting, audit.consistent),
        (2, 1, true)
    );
}

#[tokio::test]
async fn a_request_within_its_reservation_is_granted_beside_a_borrowers_waiter_in_one_transaction()
{
    // GIVEN a pool of 4 divided between "steady" (reserves 2, idle) and "hot" (reserves
    // nothing), where hot holds a slot and one of its requests waits below its max (as in a
    // burst, between losing a race and looking again)
    let (inner, pool, _) = divided("reserved", 4, &[("steady", 2, 4), ("hot", 0, 4)]).await;
    let held = app_lease(&pool, "h1", "hot");
    let held = inner.grant(&held, None, None).await.unwrap();
    assert!(matches!(held, GrantAttempt::Granted(_)));
    let queued = inner
        .enqueue(&app_waiter(&pool, "h2", "hot"), false)
        .await
        .unwrap();
    assert!(matches!(queued, EnqueueAttempt::Enqueued), "{queued:?}");

    // WHEN steady asks for a slot
    let (store, broker, grant) = acquired_through(inner, None, (&pool, "s1", "steady")).await;

    // THEN one transaction within its reservation grants it (the borrower's waiter does not
    // turn an owner away), answered with the pool as read counted with it
    assert_eq!(grant.remaining, 2);
    assert_eq!(
        (
            store.reserved_grants.load(Ordering::SeqCst),
            store.grants.load(Ordering::SeqCst)
        ),
        (1, 0),
        "one grant within the reservation, none decided on the queues"
    );
    // (the counters equal the records; hot's waiter still sits beside the last free slot, as
    // given, until someone looks at the queue again)
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (
            audit.in_use,
            audit.lease_records,
            audit.waiting,
            audit.waiter_records
        ),
        (2, 2, 1, 1)
    );
    assert!(audit.waiters_beside_free_slots, "{audit:?}");
}

#[tokio::test]
async fn a_grant_lost_to_a_race_with_nobody_waiting_decides_again_instead_of_refusing() {
    // GIVEN a pool of 4 divided between "hot" (reserves 1, at most 3) and "steady", where a
    // steady request waits below its max (so a hot request within its reservation is granted
    // on the reservation's conditions), and a broker whose store lets two things land just
    // before its grant: the steady request goes, and another hot request takes hot's
    // reservation. The request, read within hot's reservation, then finds hot at it, nobody
    // waiting and slots still free to borrow
    let (inner, pool, _) = divided("raced", 4, &[("hot", 1, 3), ("steady", 0, 4)]).await;
    let steady = AppName::parse("steady").unwrap();
    let waiter = app_waiter(&pool, "s1", "steady");
    let queued = inner.enqueue(&waiter, false).await.unwrap();
    assert!(matches!(queued, EnqueueAttempt::Enqueued), "{queued:?}");
    let other = app_lease(&pool, "h0", "hot");
    let step: Step = Box::new(move |s: Arc<DynamoStore>| {
        Box::pin(async move {
            assert!(
                s.withdraw(&waiter.pool, &waiter.id, Some(&steady))
                    .await
                    .unwrap()
            );
            let granted = s.grant(&other, None, None).await.unwrap();
            assert!(matches!(granted, GrantAttempt::Granted(_)), "{granted:?}");
        })
    });

    // WHEN a hot request asks (polling: a refusal would be final)
    let (store, broker, _) = acquired_through(inner, Some(step), (&pool, "h1", "hot")).await;

    // THEN its grant within the reservation is refused, and it borrows on the refusal's
    // record: granted, nothing queued
    assert_eq!(
        (
            store.reserved_grants.load(Ordering::SeqCst),
            store.grants.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    let audit = broker.audit(&pool, false).await.unwrap();
    assert_eq!(
        (audit.in_use, audit.waiting, audit.consistent),
        (2, 0, true)
    );
}
