//! The lease protocol: grant, idempotent re-acquire, the wait queue with slot hand-over,
//! release, reclaim of expired leases, audit.

use crate::callback::Callbacks;
use crate::clock::Clock;
use crate::error::BrokerError;
use crate::metrics::{Metric, MetricsSink};
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord, Waiter, checked};
use crate::shares::{self, Slot, names, unknown_app};
use crate::slot::Freed;
use crate::store::{Beside, Counts, GrantAttempt, LeaseStore};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, atomic::AtomicBool};
use tracing::{info, warn};

/// Lease lifetime when the caller gives none: longer than the query function's timeout, so a
/// healthy holder always releases before expiry.
pub const DEFAULT_TTL_SECONDS: u32 = 60;
pub use crate::model::MAX_TTL_SECONDS;
/// A request for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireRequest {
    pub pool: String,
    pub lease_id: String,
    pub ttl_seconds: u32,
    /// The application asking, on a pool that divides its budget between applications.
    pub app: Option<String>,
}

impl AcquireRequest {
    pub fn new(pool: impl Into<String>, lease_id: impl Into<String>, ttl_seconds: u32) -> Self {
        AcquireRequest {
            pool: pool.into(),
            lease_id: lease_id.into(),
            ttl_seconds,
            app: None,
        }
    }

    /// The same request on behalf of an application.
    pub fn for_app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }
}

/// A granted (or re-found) lease, as the acquire handler returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub pool: PoolName,
    pub lease_id: LeaseId,
    /// Epoch seconds.
    pub expires_at: i64,
    pub remaining: u32,
    pub budget: u32,
    /// True when this call moved the expiry of a lease the id already held (an expired lease
    /// renewed in place). A re-acquire of a live lease returns it with its expiry unchanged
    /// (false), and so does a new grant.
    pub extended: bool,
    /// How long the request waited in the queue (only in the output a queued request's task
    /// is completed with: 0 when granted at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<i64>,
    /// The application the lease counts against (only on a pool divided between them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    pub pool: PoolName,
    pub lease_id: LeaseId,
    pub released: bool,
    /// The lease is draining and was left to expire (only [`Broker::release_settled`] leaves
    /// one); omitted when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// The id held no lease but waited in the queue: its waiter record was removed; omitted
    /// when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
    pub remaining: u32,
}

/// A lease left to expire because a query of its ended holder may still hold a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drained {
    pub pool: PoolName,
    pub lease_id: LeaseId,
    /// False when the id holds no lease (already released or reclaimed).
    pub draining: bool,
    /// When reclaim may free the slot (epoch seconds); absent when there is no lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The id held no lease but waited in the queue: its waiter record was removed; omitted
    /// when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reclaimed {
    pub pool: PoolName,
    pub reclaimed: u32,
    pub remaining: u32,
    /// Waiter records removed because their deadline had passed.
    pub expired_waiters: u32,
    /// Requests still queued.
    pub waiting: u32,
}

/// What an audit found: the pool's counter against its lease records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub pool: PoolName,
    pub budget: u32,
    /// The counter grants are checked against.
    pub in_use: u32,
    /// Lease records, live or expired (each counts until released or reclaimed).
    pub lease_records: u32,
    pub live_leases: u32,
    pub expired_leases: u32,
    /// The queue counter grants and enqueues are checked against.
    pub waiting: u32,
    /// Waiter records, live or past their deadline.
    pub waiter_records: u32,
    pub live_waiters: u32,
    /// Waiters past their deadline (their task has timed out); a repair removes them.
    pub expired_waiters: u32,
    /// A slot is free while live requests wait: a wake-up was lost (a repair hands the slots
    /// over).
    pub waiters_beside_free_slots: bool,
    /// `in_use == lease_records`, `waiting == waiter_records` and no live waiter beside a free
    /// slot (after repair, when one was made).
    pub consistent: bool,
    /// The counters were corrected to the number of records (or waiters were served or
    /// removed).
    pub repaired: bool,
    /// Per application of a divided pool: its counters against its records (omitted when the
    /// pool has no applications).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub applications: BTreeMap<AppName, AppAudit>,
}

/// One application's counters against its lease and waiter records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppAudit {
    pub reserved: u32,
    pub max: u32,
    pub in_use: u32,
    pub lease_records: u32,
    pub waiting: u32,
    pub waiter_records: u32,
}

/// The broker: stateless apart from its ports, so one instance serves a whole container.
pub struct Broker {
    pub(crate) store: Arc<dyn LeaseStore>,
    metrics: Arc<dyn MetricsSink>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Completes waiting tasks; without it nothing can be queued.
    pub(crate) callbacks: Option<Arc<dyn Callbacks>>,
    /// This process last found requests queued when it freed a slot: read the queue first.
    pub(crate) queue_seen: AtomicBool,
    /// The clock second of this process's last reclaim pass per pool, so that a storm of
    /// refused acquires costs one lease query per pool and second, not one per refusal.
    reclaimed_at: Mutex<HashMap<PoolName, i64>>,
}

/// How often a grant is re-tried after the store reports a race it can resolve (an expired
/// lease renewed or reclaimed by someone else between two steps).
pub(crate) const GRANT_PASSES: usize = 4;
/// How often an audit re-reads when the pool changed while it was counting.
const AUDIT_PASSES: usize = 5;

impl Broker {
    pub fn new(
        store: Arc<dyn LeaseStore>,
        metrics: Arc<dyn MetricsSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Broker {
            store,
            metrics,
            clock,
            callbacks: None,
            queue_seen: AtomicBool::new(false),
            reclaimed_at: Mutex::new(HashMap::new()),
        }
    }

    /// The broker with a way to complete waiting tasks (needed by queued acquires, and by
    /// whoever frees slots while requests wait).
    pub fn with_callbacks(mut self, callbacks: Arc<dyn Callbacks>) -> Self {
        self.callbacks = Some(callbacks);
        self
    }

    /// Creates a pool or changes its budget; live leases are kept. The pool has no
    /// applications afterwards (see [`Broker::put_shared_pool`]).
    pub async fn put_pool(&self, pool: &str, budget: u32) -> Result<PoolRecord, BrokerError> {
        self.put_shared_pool(pool, budget, &[]).await
    }

    /// Creates a pool or changes its budget and the applications it is divided between
    /// (none: one budget for everybody). Live leases and waiters are kept, also those of an
    /// application whose share shrinks or that is removed (it then takes no new slot).
    pub async fn put_shared_pool(
        &self,
        pool: &str,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, BrokerError> {
        let pool = PoolName::parse(pool)?;
        if budget == 0 {
            return Err(BrokerError::InvalidInput(
                "budget must be at least 1".into(),
            ));
        }
        shares::validate(budget, apps)?;
        let mut record = self.store.put_pool(&pool, budget, apps).await?;
        info!(pool = %pool, budget, in_use = record.in_use, applications = apps.len(), "pool budget set");
        if record.waiting > 0 && record.remaining() > 0 {
            // A raised budget serves the queue first.
            record = self.fill_free_slots(&pool).await?;
        }
        Ok(record)
    }

    /// Removes a pool and its lease records. Returns whether the pool existed.
    pub async fn delete_pool(&self, pool: &str) -> Result<bool, BrokerError> {
        let pool = PoolName::parse(pool)?;
        Ok(self.store.delete_pool(&pool).await?)
    }

    pub async fn pool(&self, pool: &str) -> Result<PoolRecord, BrokerError> {
        let name = PoolName::parse(pool)?;
        self.store
            .pool(&name)
            .await?
            .ok_or_else(|| BrokerError::PoolNotFound(name.to_string()))
    }

    /// Grants a lease, or returns the live lease the same id already holds.
    ///
    /// When the pool is full, expired leases of the pool are reclaimed first.
    pub async fn acquire(&self, request: &AcquireRequest) -> Result<Grant, BrokerError> {
        let (pool, id, ttl) = checked(&request.pool, &request.lease_id, request.ttl_seconds)?;
        let (app, mut seen) = self.application(&pool, request.app.as_deref()).await?;
        let mut reclaimed_once = false;
        for _ in 0..GRANT_PASSES {
            let now = self.clock.now();
            match self
                .attempt_grant(&pool, &id, ttl, now, (app.as_ref(), seen.take()), true)
                .await?
            {
                Attempt::Leased { grant, .. } => return Ok(grant),
                Attempt::Again => {}
                Attempt::Raced(record) => seen = Some(record),
                Attempt::Full(record) => {
                    if !reclaimed_once && self.first_reclaim_this_second(&pool, now) {
                        reclaimed_once = true;
                        if self.reclaim_expired_of(&pool, now).await? > 0 {
                            continue;
                        }
                    }
                    info!(pool = %pool, lease = %id, budget = record.budget, app = ?app, "pool exhausted");
                    let mut refused = vec![Metric::count("NoConnectionsLeftError", 1.0)];
                    if let Some(app) = &app {
                        refused.push(Metric::count("NoConnectionsLeftError", 1.0).for_app(app));
                    }
                    self.publish(&pool, &refused).await;
                    return Err(BrokerError::ConnectionsExhausted {
                        pool: pool.to_string(),
                        budget: record.budget,
                    });
                }
            }
        }
        // Every pass lost a race against concurrent renewals or reclaims of the same id.
        Err(BrokerError::Store(crate::error::StoreError::Contended {
            operation: "acquire",
            attempts: GRANT_PASSES as u32,
        }))
    }

    /// One grant attempt for `id` at `now`, shared by the polling and the queued acquire: a
    /// new lease, the live lease the id already holds, or its expired one renewed in place.
    ///
    /// Without `look_up_held`, a request of an application that may take no slot is `Full`
    /// without looking for a lease its id holds: the queued acquire's enqueue checks that.
    pub(crate) async fn attempt_grant(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        ttl: i64,
        now: i64,
        (app, seen): (Option<&AppName>, Option<PoolRecord>),
        look_up_held: bool,
    ) -> Result<Attempt, BrokerError> {
        let lease = Lease {
            pool: pool.clone(),
            id: id.clone(),
            granted_at: now,
            expires_at: now + ttl,
            draining: false,
            handed_to: None,
            app: app.cloned(),
        };
        let mut attempt = match app {
            Some(app) => {
                // Whether it may take a free slot depends on the other applications (their
                // kept reservations): decided on the pool as read (and answered with it, no
                // second read); the store's conditions keep the budget and every max.
                let record = match seen {
                    Some(record) => record,
                    None => self.pool_or_missing(pool).await?,
                };
                if shares::may_take(&record, Some(app)) {
                    // Only beside waiters at their max, queued before or after the read; or,
                    // within its reservation, beside anyone but its own (owners go first).
                    let beside = Beside::capped(&record, Some(app)).or_else(|| {
                        shares::within_reservation(&record, app)
                            .then(|| Beside::Reserved { app: app.clone() })
                    });
                    self.store
                        .grant(&lease, beside.as_ref(), Some(&record))
                        .await?
                } else if !look_up_held {
                    return Ok(Attempt::Full(record));
                } else {
                    match self.store.lease(pool, id).await? {
                        Some(existing) => GrantAttempt::LeaseExists(existing),
                        None => return Ok(Attempt::Full(record)),
                    }
                }
            }
            None => self.store.grant(&lease, None, None).await?,
        };
        if let GrantAttempt::PoolFull(record) = &attempt {
            if app.is_none() && record.shared() {
                return Err(BrokerError::InvalidInput(format!(
                    "pool {pool} divides its budget between applications ({}): name one in app",
                    names(record)
                )));
            }
            if let Some(app) = app
                && record.apps.get(app).is_none_or(|a| a.retired)
            {
                return Err(unknown_app(pool, app, record));
            }
            // Free slots beside waiters none of whom may take them: a newcomer that may takes
            // one, if the queue has not moved. Waiters all at their max show in the record.
            if record.shared() && record.waiting > 0 && shares::may_take(record, app) {
                let queue = match Beside::capped(record, app) {
                    None => {
                        let mut live = self.store.waiters(pool).await?;
                        live.retain(|w| w.is_live(now));
                        live.sort_by(Waiter::queue_order);
                        (u32::try_from(live.len()).is_ok_and(|n| n == record.waiting)
                            && shares::pick(record, &live, Slot::Free).is_none())
                        .then(|| Beside::of(record))
                    }
                    capped => capped,
                };
                if let Some(queue) = queue {
                    attempt = self.store.grant(&lease, Some(&queue), Some(record)).await?;
                }
            }
        }
        Ok(match attempt {
            GrantAttempt::Granted(record) => {
                info!(pool = %pool, lease = %id, remaining = record.remaining(), "lease granted");
                self.gauge(pool, &record).await;
                Attempt::Leased {
                    grant: grant(lease, &record, false),
                    fresh: true,
                    held: None,
                }
            }
            GrantAttempt::LeaseExists(existing) if existing.is_live(now) => {
                let record = self.pool_or_missing(pool).await?;
                info!(pool = %pool, lease = %id, "lease already held; returned as is");
                Attempt::Leased {
                    grant: grant(existing.clone(), &record, false),
                    fresh: false,
                    held: Some(existing),
                }
            }
            GrantAttempt::LeaseExists(expired) => {
                // The holder came back after its lease expired but before anyone reclaimed
                // it: the record still counts against the pool, so renewing it takes no new
                // slot.
                if !self.store.renew(&expired, lease.expires_at).await? {
                    return Ok(Attempt::Again);
                }
                let record = self.pool_or_missing(pool).await?;
                info!(pool = %pool, lease = %id, "expired lease renewed");
                Attempt::Leased {
                    grant: grant(
                        Lease {
                            app: expired.app.clone(),
                            ..lease
                        },
                        &record,
                        true,
                    ),
                    fresh: false,
                    held: None,
                }
            }
            GrantAttempt::PoolMissing => return Err(BrokerError::PoolNotFound(pool.to_string())),
            // Nobody waits and a slot it may take is still free: it lost a race to grants that
            // moved the counts (its application reached its reservation, say). Deciding again
            // on the refusal's record beats queueing beside free slots.
            GrantAttempt::PoolFull(record)
                if record.shared() && record.waiting == 0 && shares::may_take(&record, app) =>
            {
                Attempt::Raced(record)
            }
            GrantAttempt::PoolFull(record) => Attempt::Full(record),
        })
    }

    /// The application a request names, checked against the pool: `None` when it names none
    /// (a pool divided between applications then refuses it at the grant), or when the pool
    /// is not divided (the name is then ignored); `InvalidInput` for a name the pool does not
    /// have. Reads the pool record only when a name is given, and hands it on for the first
    /// grant attempt.
    pub(crate) async fn application(
        &self,
        pool: &PoolName,
        app: Option<&str>,
    ) -> Result<(Option<AppName>, Option<PoolRecord>), BrokerError> {
        let Some(raw) = app else {
            return Ok((None, None));
        };
        let app = AppName::parse(raw)?;
        let record = self.pool_or_missing(pool).await?;
        if !record.shared() {
            return Ok((None, None));
        }
        match record.apps.get(&app) {
            Some(state) if !state.retired => Ok((Some(app), Some(record))),
            _ => Err(unknown_app(pool, &app, &record)),
        }
    }

    /// Ends a lease. Releasing a lease that is already gone is not an error.
    ///
    /// While requests wait, the slot goes straight to the oldest of them. An id that holds no
    /// lease but waits in the queue is withdrawn from it.
    pub async fn release(&self, pool: &str, lease_id: &str) -> Result<Released, BrokerError> {
        self.release_for(pool, lease_id, None).await
    }

    /// [`Broker::release`] with the application the lease was acquired for, when the caller
    /// knows it (saves a second try on a divided pool; a wrong name costs only that).
    pub async fn release_for(
        &self,
        pool: &str,
        lease_id: &str,
        app: Option<&str>,
    ) -> Result<Released, BrokerError> {
        let pool = PoolName::parse(pool)?;
        let id = LeaseId::parse(lease_id)?;
        let app = app.map(AppName::parse).transpose()?;
        self.release_or_withdraw(pool, id, false, app).await
    }

    async fn release_or_withdraw(
        &self,
        pool: PoolName,
        id: LeaseId,
        settled: bool,
        app: Option<AppName>,
    ) -> Result<Released, BrokerError> {
        let mut outcome = self
            .give_back(&pool, Freed::Release(id.clone(), settled, app.clone()))
            .await?;
        let mut withdrawn = false;
        if !outcome.released && !outcome.draining && outcome.record.is_some() {
            withdrawn = self.withdraw(&pool, &id, app.as_ref()).await?;
            if !withdrawn {
                // Neither a lease nor a waiter: a hand-over may have turned the waiter into a
                // lease between the two steps, so look for the lease once more.
                outcome = self
                    .give_back(&pool, Freed::Release(id.clone(), settled, app.clone()))
                    .await?;
            }
        }
        let record = outcome
            .record
            .ok_or_else(|| BrokerError::PoolNotFound(pool.to_string()))?;
        info!(pool = %pool, lease = %id, released = outcome.released, draining = outcome.draining, withdrawn, remaining = record.remaining(), "lease released");
        Ok(Released {
            pool,
            lease_id: id,
            released: outcome.released,
            draining: outcome.draining,
            withdrawn,
            remaining: record.remaining(),
        })
    }

    /// Ends a lease unless it is draining (then it stays until it expires): what an execution
    /// that failed should give back, since a failed execution may have left its lease draining
    /// on purpose.
    pub async fn release_settled(
        &self,
        pool: &str,
        lease_id: &str,
    ) -> Result<Released, BrokerError> {
        let pool = PoolName::parse(pool)?;
        let id = LeaseId::parse(lease_id)?;
        self.release_or_withdraw(pool, id, true, None).await
    }

    /// Marks a lease draining: its holder has ended, but a query it started may still hold a
    /// database connection for up to `within_seconds`. The lease then expires within that time
    /// (never later than it would have), and reclaim frees the slot; releasing it by the normal
    /// path early is what would let the pool grant a slot whose connection is still open.
    pub async fn drain(
        &self,
        pool: &str,
        lease_id: &str,
        within_seconds: u32,
    ) -> Result<Drained, BrokerError> {
        let pool = PoolName::parse(pool)?;
        let id = LeaseId::parse(lease_id)?;
        if !(1..=MAX_TTL_SECONDS).contains(&within_seconds) {
            return Err(BrokerError::InvalidInput(format!(
                "drainSeconds must be between 1 and {MAX_TTL_SECONDS}"
            )));
        }
        let by = self.clock.now() + i64::from(within_seconds);
        let mut lease = self.store.drain(&pool, &id, by).await?;
        let mut withdrawn = false;
        if lease.is_none() {
            // No lease: the holder was still waiting (a stopped execution); it must never get
            // a slot now. A hand-over between the two steps leaves a lease to drain instead.
            withdrawn = self.withdraw(&pool, &id, None).await?;
            if !withdrawn {
                lease = self.store.drain(&pool, &id, by).await?;
            }
        }
        info!(pool = %pool, lease = %id, draining = lease.is_some(), withdrawn, "lease left to drain");
        Ok(Drained {
            pool,
            lease_id: id,
            draining: lease.is_some(),
            expires_at: lease.map(|l| l.expires_at),
            withdrawn,
        })
    }

    /// Reclaims every expired lease of the pool.
    pub async fn reclaim_expired(&self, pool: &str) -> Result<Reclaimed, BrokerError> {
        let pool = PoolName::parse(pool)?;
        let now = self.clock.now();
        let expired_waiters = self.withdraw_expired_waiters(&pool, now).await?;
        let reclaimed = self.reclaim_expired_of(&pool, now).await?;
        let record = self.fill_free_slots(&pool).await?;
        if reclaimed > 0 {
            self.publish(
                &pool,
                &[Metric::count("LeasesReclaimed", f64::from(reclaimed))],
            )
            .await;
        }
        self.gauge(&pool, &record).await;
        Ok(Reclaimed {
            pool,
            reclaimed,
            remaining: record.remaining(),
            expired_waiters,
            waiting: record.waiting,
        })
    }

    /// Compares the pool's counter with its lease records and, when asked, repairs the counter.
    ///
    /// The pool record and the lease records are read in separate requests; the audit re-reads
    /// until the record's version did not move while it was counting (the count alone does
    /// not tell: a release and a grant in between leave it where it was). A repair is
    /// conditional on the record seen before the lease query, so a grant or release that slips
    /// in after the last read makes the repair a no-op instead of a wrong count.
    pub async fn audit(&self, pool: &str, repair: bool) -> Result<AuditReport, BrokerError> {
        let name = PoolName::parse(pool)?;
        if repair {
            // Waiters past their deadline have timed out: their tasks wait no more.
            self.withdraw_expired_waiters(&name, self.clock.now())
                .await?;
        }
        let (mut record, mut leases, mut waiters) = self.counted(&name).await?;
        for _ in 1..AUDIT_PASSES {
            let after = self.pool_or_missing(&name).await?;
            if after == record {
                break;
            }
            (record, leases, waiters) = self.counted(&name).await?;
        }
        let now = self.clock.now();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let records = count(leases.len());
        let live = count(leases.iter().filter(|l| l.is_live(now)).count());
        let waiter_records = count(waiters.len());
        let mut live_list: Vec<Waiter> =
            waiters.iter().filter(|w| w.is_live(now)).cloned().collect();
        live_list.sort_by(Waiter::queue_order);
        let live_waiters = count(live_list.len());
        // Records per application, and the pool as its records say it is.
        let mut actual = Counts {
            in_use: records,
            waiting: waiter_records,
            apps: BTreeMap::new(),
        };
        for name in record.apps.keys() {
            let of = |app: &Option<AppName>| app.as_ref() == Some(name);
            actual.apps.insert(
                name.clone(),
                (
                    count(leases.iter().filter(|l| of(&l.app)).count()),
                    count(waiters.iter().filter(|w| of(&w.app)).count()),
                ),
            );
        }
        let mut as_recorded = record.clone();
        as_recorded.in_use = records;
        for (name, state) in as_recorded.apps.iter_mut() {
            (state.in_use, state.waiting) = actual.apps[name];
        }
        let beside_free = records < record.budget
            && !live_list.is_empty()
            && shares::pick(&as_recorded, &live_list, Slot::Free).is_some();
        let applications: BTreeMap<AppName, AppAudit> = record
            .apps
            .iter()
            .map(|(name, state)| {
                let (leases, waiters) = actual.apps[name];
                (
                    name.clone(),
                    AppAudit {
                        reserved: state.reserved,
                        max: state.max,
                        in_use: state.in_use,
                        lease_records: leases,
                        waiting: state.waiting,
                        waiter_records: waiters,
                    },
                )
            })
            .collect();
        let apps_drift: u32 = applications
            .values()
            .map(|a| a.in_use.abs_diff(a.lease_records) + a.waiting.abs_diff(a.waiter_records))
            .sum();
        let mut report = AuditReport {
            pool: name.clone(),
            budget: record.budget,
            in_use: record.in_use,
            lease_records: records,
            live_leases: live,
            expired_leases: records - live,
            waiting: record.waiting,
            waiter_records,
            live_waiters,
            expired_waiters: waiter_records - live_waiters,
            waiters_beside_free_slots: beside_free,
            consistent: record.in_use == records
                && record.waiting == waiter_records
                && apps_drift == 0
                && !beside_free,
            repaired: false,
            applications,
        };
        // How far the counters are from the records (0 when consistent), before any repair: a
        // scheduled audit's alarm watches it.
        let drift = record.in_use.abs_diff(records)
            + record.waiting.abs_diff(waiter_records)
            + apps_drift
            + u32::from(beside_free);
        self.publish(
            &name,
            &[Metric::count("LeaseCounterDrift", f64::from(drift))],
        )
        .await;
        if !repair || report.consistent {
            return Ok(report);
        }
        let counters_right =
            record.in_use == records && record.waiting == waiter_records && apps_drift == 0;
        if counters_right || self.store.set_in_use(&name, &record, &actual).await? {
            if !counters_right {
                warn!(pool = %name, was = record.in_use, now = records, waiting_was = record.waiting, waiting = waiter_records, apps_drift, "counters repaired");
            }
            let after = self.fill_free_slots(&name).await?;
            report.in_use = after.in_use;
            report.waiting = after.waiting;
            for (name, state) in &after.apps {
                if let Some(app) = report.applications.get_mut(name) {
                    app.in_use = state.in_use;
                    app.waiting = state.waiting;
                }
            }
            let (_, mut left) = self.store.queue(&name).await?;
            left.retain(|w| w.is_live(now));
            left.sort_by(Waiter::queue_order);
            report.waiters_beside_free_slots = after.remaining() > 0
                && !left.is_empty()
                && shares::pick(&after, &left, Slot::Free).is_some();
            report.consistent = !report.waiters_beside_free_slots;
            report.repaired = true;
        }
        Ok(report)
    }

    /// The pool record, then its lease records, then its waiter records.
    async fn counted(
        &self,
        pool: &PoolName,
    ) -> Result<(PoolRecord, Vec<Lease>, Vec<Waiter>), BrokerError> {
        let record = self.pool_or_missing(pool).await?;
        let leases = self.store.leases(pool).await?;
        Ok((record, leases, self.store.waiters(pool).await?))
    }

    /// True for the first full-pool reclaim of `pool` in clock second `now` in this process.
    /// Leases expire on whole seconds, so a second pass within the same second finds nothing
    /// the first one did not.
    pub(crate) fn first_reclaim_this_second(&self, pool: &PoolName, now: i64) -> bool {
        self.first_reclaim_within(pool, now, 1)
    }

    /// True when this process last reclaimed `pool` at least `window` seconds before `now`
    /// (and marks `now`).
    pub(crate) fn first_reclaim_within(&self, pool: &PoolName, now: i64, window: i64) -> bool {
        let mut marks = self.reclaimed_at.lock().unwrap_or_else(|e| e.into_inner());
        match marks.get(pool) {
            Some(&last) if now < last + window => false,
            _ => {
                marks.insert(pool.clone(), now);
                true
            }
        }
    }

    /// Frees every expired lease of the pool: to the queue first, then to the pool.
    pub(crate) async fn reclaim_expired_of(
        &self,
        pool: &PoolName,
        now: i64,
    ) -> Result<u32, BrokerError> {
        let mut reclaimed = 0;
        for lease in self.store.leases(pool).await? {
            if lease.is_live(now) {
                continue;
            }
            let expired_at = lease.expires_at;
            let id = lease.id.clone();
            if self.give_back(pool, Freed::Reclaim(lease)).await?.released {
                info!(pool = %pool, lease = %id, expired_at, "expired lease reclaimed");
                reclaimed += 1;
            }
        }
        Ok(reclaimed)
    }

    pub(crate) async fn pool_or_missing(&self, pool: &PoolName) -> Result<PoolRecord, BrokerError> {
        self.store
            .pool(pool)
            .await?
            .ok_or_else(|| BrokerError::PoolNotFound(pool.to_string()))
    }

    /// The pool's gauges, and on a divided pool each application's: the slots it may still
    /// take, its waiting requests and the slots it holds beyond its reservation.
    pub(crate) async fn gauge(&self, pool: &PoolName, record: &PoolRecord) {
        let mut metrics = vec![
            Metric::count("RemainingConnections", f64::from(record.remaining())),
            Metric::count("WaitingRequests", f64::from(record.waiting)),
        ];
        for (app, state) in record.apps.iter().filter(|(_, a)| !a.retired) {
            metrics.extend([
                Metric::count(
                    "RemainingConnections",
                    f64::from(shares::takeable(record, Some(app))),
                )
                .for_app(app),
                Metric::count("WaitingRequests", f64::from(state.waiting)).for_app(app),
                Metric::count("BorrowedConnections", f64::from(state.borrowed())).for_app(app),
            ]);
        }
        self.publish(pool, &metrics).await;
    }

    /// Metrics never fail or undo the operation they describe: a failure is logged and dropped.
    pub(crate) async fn publish(&self, pool: &PoolName, metrics: &[Metric]) {
        if let Err(error) = self.metrics.publish(pool, metrics).await {
            warn!(pool = %pool, error = %error, "metrics not published");
        }
    }
}

/// What one grant attempt found ([`Broker::attempt_grant`]).
pub(crate) enum Attempt {
    /// A lease for the id: `fresh` when this attempt made it; `held` the live lease the id
    /// already held, when that is what was returned.
    Leased {
        grant: Grant,
        fresh: bool,
        held: Option<Lease>,
    },
    /// No free slot, or requests are queued; the pool as the refusal saw it.
    Full(PoolRecord),
    /// Refused though nobody waits and a slot it may take is free (a race it lost): decide
    /// again on this record, the pool as the refusal saw it.
    Raced(PoolRecord),
    /// Lost a race with a renewal or a reclaim of the same id: try again.
    Again,
}

pub(crate) fn grant(lease: Lease, record: &PoolRecord, extended: bool) -> Grant {
    Grant {
        extended,
        waited_ms: None,
        app: lease.app,
        pool: lease.pool,
        lease_id: lease.id,
        expires_at: lease.expires_at,
        remaining: record.remaining(),
        budget: record.budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::MemoryStore;
    use crate::metrics::tests::{FailingSink, RecordingSink};

    struct Fixture {
        broker: Broker,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        sink: Arc<RecordingSink>,
    }

    async fn fixture(budget: u32) -> Fixture {
        let store = Arc::new(MemoryStore::default());
        let clock = Arc::new(ManualClock::new(10_000));
        let sink = Arc::new(RecordingSink::default());
        let broker = Broker::new(store.clone(), sink.clone(), clock.clone());
        broker.put_pool("db", budget).await.unwrap();
        Fixture {
            broker,
            store,
            clock,
            sink,
        }
    }

    fn req(id: &str) -> AcquireRequest {
        AcquireRequest::new("db", id, 30)
    }

    #[tokio::test]
    async fn grants_until_the_budget_then_refuses_with_connections_exhausted() {
        let f = fixture(2).await;
        assert_eq!(f.broker.acquire(&req("a")).await.unwrap().remaining, 1);
        assert_eq!(f.broker.acquire(&req("b")).await.unwrap().remaining, 0);
        let err = f.broker.acquire(&req("c")).await.unwrap_err();
        assert_eq!(err.name(), "ConnectionsExhausted");
        assert_eq!(
            f.sink.names(),
            [
                "RemainingConnections",
                "WaitingRequests",
                "RemainingConnections",
                "WaitingRequests",
                "NoConnectionsLeftError"
            ]
        );
    }

    #[tokio::test]
    async fn acquiring_twice_with_one_id_takes_one_slot_and_returns_the_same_lease() {
        let f = fixture(2).await;
        let first = f.broker.acquire(&req("a")).await.unwrap();
        f.clock.advance(5);
        let again = f.broker.acquire(&req("a")).await.unwrap();
        assert_eq!(again.expires_at, first.expires_at);
        assert_eq!(again.remaining, 1);
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 1);
    }

    #[tokio::test]
    async fn an_expired_lease_held_by_the_same_id_is_renewed_without_a_new_slot() {
        let f = fixture(1).await;
        let first = f.broker.acquire(&req("a")).await.unwrap();
        f.clock.advance(31);
        let renewed = f.broker.acquire(&req("a")).await.unwrap();
        assert_eq!(renewed.expires_at, first.expires_at + 31);
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 1);
    }

    #[tokio::test]
    async fn a_full_pool_reclaims_expired_leases_before_refusing() {
        let f = fixture(1).await;
        f.broker.acquire(&req("crashed")).await.unwrap();
        assert!(f.broker.acquire(&req("next")).await.is_err());
        f.clock.advance(30);
        let grant = f.broker.acquire(&req("next")).await.unwrap();
        assert_eq!(grant.lease_id.as_str(), "next");
        let released = f.broker.release("db", "crashed").await.unwrap();
        assert!(!released.released, "the reclaimed lease is gone");
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 1);
    }

    #[tokio::test]
    async fn release_frees_once() {
        let f = fixture(1).await;
        f.broker.acquire(&req("a")).await.unwrap();
        let first = f.broker.release("db", "a").await.unwrap();
        let second = f.broker.release("db", "a").await.unwrap();
        assert!(first.released && !second.released);
        assert_eq!((first.remaining, second.remaining), (1, 1));
    }

    #[tokio::test]
    async fn unknown_pools_and_bad_input_are_typed_errors_and_change_nothing() {
        let f = fixture(1).await;
        let cases = [
            (AcquireRequest::new("nope", "a", 30), "PoolNotFound"),
            (AcquireRequest::new("db", "a", 0), "InvalidInput"),
            (AcquireRequest::new("db", "a", 901), "InvalidInput"),
            (AcquireRequest::new("bad pool", "a", 30), "InvalidInput"),
            (AcquireRequest::new("db", "", 30), "InvalidInput"),
        ];
        for (request, name) in cases {
            assert_eq!(f.broker.acquire(&request).await.unwrap_err().name(), name);
        }
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 0);
        assert_eq!(
            f.broker.release("nope", "a").await.unwrap_err().name(),
            "PoolNotFound"
        );
    }

    #[tokio::test]
    async fn lowering_the_budget_keeps_live_leases_and_blocks_new_ones() {
        let f = fixture(3).await;
        for id in ["a", "b", "c"] {
            f.broker.acquire(&req(id)).await.unwrap();
        }
        f.broker.put_pool("db", 1).await.unwrap();
        assert_eq!(f.broker.release("db", "a").await.unwrap().remaining, 0);
        assert!(f.broker.acquire(&req("d")).await.is_err());
        f.broker.release("db", "b").await.unwrap();
        f.broker.release("db", "c").await.unwrap();
        assert_eq!(f.broker.acquire(&req("d")).await.unwrap().remaining, 0);
    }

    #[tokio::test]
    async fn audit_finds_and_repairs_drift() {
        let f = fixture(5).await;
        f.broker.acquire(&req("a")).await.unwrap();
        f.store.inject_drift(&PoolName::parse("db").unwrap(), 2);
        let found = f.broker.audit("db", false).await.unwrap();
        assert!(!found.consistent && !found.repaired);
        assert_eq!((found.in_use, found.lease_records), (3, 1));
        let fixed = f.broker.audit("db", true).await.unwrap();
        assert!(fixed.consistent && fixed.repaired);
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 1);
        f.broker.audit("db", false).await.unwrap();
        // The drift each audit found, before its repair: what the scheduled audit alarms on.
        assert_eq!(f.sink.values("LeaseCounterDrift"), [2.0, 2.0, 0.0]);
    }

    #[tokio::test]
    async fn a_failing_metrics_sink_never_fails_a_grant_or_a_release() {
        let store = Arc::new(MemoryStore::default());
        let broker = Broker::new(store, Arc::new(FailingSink), Arc::new(ManualClock::new(0)));
        broker.put_pool("db", 1).await.unwrap();
        assert!(broker.acquire(&req("a")).await.is_ok());
        assert_eq!(
            broker.acquire(&req("b")).await.unwrap_err().name(),
            "ConnectionsExhausted"
        );
        assert!(broker.release("db", "a").await.unwrap().released);
    }
}
