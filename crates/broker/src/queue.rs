//! The wait queue: queued acquires, slot hand-over, withdrawal of waiters.
//!
//! A queued acquire ([`Broker::acquire_queued`]) is granted at once when a slot is free and
//! nobody waits, and its task completed with the lease; otherwise it is recorded as a waiter.
//! Whoever frees a slot while requests wait (a release, a reclaim, a budget raise, a repair)
//! hands it to the oldest live waiter in one store transaction and then completes that
//! waiter's task ([`Callbacks::succeed`]). A waiter whose task is gone gets its new lease
//! released again at once, which hands the slot on to the next one. How the store closes the
//! races between enqueues and releases is told in [`crate::dynamo`].
//!
//! Waiter records are removed by whoever serves them, by a release or drain of their id (the
//! workflow's timeout path and the execution-status cleanup both send one), and by the reclaim
//! pass and a repairing audit once their deadline has passed.

use crate::broker::{Attempt, Broker, GRANT_PASSES, Grant, grant};
use crate::callback::CallbackError;
use crate::error::BrokerError;
use crate::metrics::Metric;
use crate::model::{AppName, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter, checked};
use crate::shares;
use crate::slot::{Freed, GaveBack, handed_over};
use crate::store::{Beside, EnqueueAttempt, Freeing, HandOver, ReclaimAttempt};
use serde::Serialize;
use std::sync::atomic::Ordering;
use tracing::{info, warn};

/// Longest wait of a queued request (the waiting task's `TimeoutSeconds`): one hour.
pub const MAX_WAIT_SECONDS: u32 = 3600;
/// Attempts to complete a waiting task while Step Functions cannot be reached.
const CALLBACK_ATTEMPTS: u32 = 3;
/// How often one container's queued acquires reclaim expired leases of a full pool: a lease
/// expires only after its TTL (minutes), so a few seconds more cost nothing, and the reclaim's
/// lease query is then not repeated by every waiter.
const QUEUED_RECLAIM_SECONDS: i64 = 5;
/// Hand-overs tried for one freed slot (waiters that turn out gone pass it on).
const HANDOVER_PASSES: usize = 32;

/// A request that waits for a slot when none is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    pub pool: String,
    pub lease_id: String,
    pub ttl_seconds: u32,
    /// The waiting task's callback token (`$$.Task.Token`).
    pub task_token: String,
    /// How long the task waits (its `TimeoutSeconds`): the waiter's deadline.
    pub wait_seconds: u32,
    /// The application asking, on a pool that divides its budget between applications.
    pub app: Option<String>,
}

/// What a queued acquire did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub pool: PoolName,
    pub lease_id: LeaseId,
    /// True when the request was queued (its task completes when a slot is handed to it);
    /// false when it was granted at once and its task already completed.
    pub waiting: bool,
    /// Requests queued in the pool as this call found it (this one included when waiting).
    pub waiters: u32,
    /// When the waiter is dropped if no slot came (epoch seconds); only when waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// The lease the task was completed with; only when granted at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
}

impl Broker {
    /// Grants a lease and completes the waiting task with it when a slot is free and nobody
    /// waits; otherwise queues the request, whose task is completed when a slot is handed to
    /// it. The token is checked (`SendTaskHeartbeat`) before anything is written, so a
    /// malformed or foreign token is `InvalidInput` with nothing changed.
    pub async fn acquire_queued(&self, request: &QueuedRequest) -> Result<Queued, BrokerError> {
        let (pool, id, _) = checked(&request.pool, &request.lease_id, request.ttl_seconds)?;
        if !(1..=MAX_WAIT_SECONDS).contains(&request.wait_seconds) {
            return Err(BrokerError::InvalidInput(format!(
                "waitSeconds must be between 1 and {MAX_WAIT_SECONDS}"
            )));
        }
        let token = TaskToken::parse(&request.task_token)?;
        let callbacks = self.callbacks.as_ref().ok_or_else(|| {
            BrokerError::Callback("no Step Functions client is configured".into())
        })?;
        // The token is checked while the pool is read (both only read): one round trip less.
        let (checked, named) = tokio::join!(
            callbacks.check(token.as_str()),
            self.application(&pool, request.app.as_deref())
        );
        checked.map_err(|e| match e {
            CallbackError::Gone(why) => BrokerError::InvalidInput(format!(
                "taskToken does not belong to a waiting task ({why})"
            )),
            CallbackError::Failed(why) => BrokerError::Callback(why),
        })?;
        let (app, mut seen) = named?;
        let ttl = i64::from(request.ttl_seconds);
        let mut reclaimed_once = false;
        for pass in 0..GRANT_PASSES * 2 {
            let now = self.clock.now();
            // The first pass leaves looking for a lease the id holds to the enqueue.
            let attempt = self
                .attempt_grant(&pool, &id, ttl, now, (app.as_ref(), seen.take()), pass > 0)
                .await?;
            let (granted, fresh) = match attempt {
                Attempt::Leased { grant, fresh, held } => {
                    // Handed over to an earlier round of this request whose task ended before
                    // it was told: claim it for this round, unless that hand-over gives it
                    // back first (then ask again).
                    if let Some(held) = &held
                        && let Some(earlier) = held.handed_to.as_ref().filter(|t| **t != token)
                        && !self.store.claim(held, earlier).await?
                    {
                        continue;
                    }
                    (grant, fresh)
                }
                Attempt::Again => continue,
                Attempt::Raced(record) if pass + 1 < GRANT_PASSES * 2 => {
                    seen = Some(record);
                    continue;
                }
                Attempt::Full(record) | Attempt::Raced(record) => {
                    if record.remaining() > 0 {
                        // Slots beside waiters (a raised budget): serve the queue, then retry.
                        // (On a divided pool free slots beside waiters are common: kept for
                        // an application, or beside applications at their max.)
                        if !record.shared() {
                            self.fill_free_slots(&pool).await?;
                        }
                    } else if !reclaimed_once
                        && self.first_reclaim_within(&pool, now, QUEUED_RECLAIM_SECONDS)
                    {
                        reclaimed_once = true;
                        if self.reclaim_expired_of(&pool, now).await? > 0 {
                            continue;
                        }
                    }
                    let waiter = Waiter {
                        pool: pool.clone(),
                        id: id.clone(),
                        task_token: token.clone(),
                        enqueued_at_ms: self.clock.now_ms(),
                        deadline: now + i64::from(request.wait_seconds),
                        ttl_seconds: request.ttl_seconds,
                        app: app.clone(),
                    };
                    // While its application can take no slot at all (the pool full, or the
                    // application at its max), it queues on that condition and is sure to be
                    // seen by whoever frees a slot it may take. Otherwise (it may not take
                    // the free slots others keep) it queues and looks again.
                    let capped = app
                        .as_ref()
                        .and_then(|a| record.apps.get(a))
                        .is_some_and(|a| record.remaining() == 0 || a.in_use >= a.max);
                    // The queue as this request found it (no second read on the hot path).
                    let (waiters, deadline) = match self.store.enqueue(&waiter, capped).await? {
                        EnqueueAttempt::Enqueued if record.shared() && !capped => {
                            // On a divided pool a request also queues beside free slots that
                            // others' waiters may not take; a slot it may take can have come
                            // free meanwhile, and its freer may not have seen this waiter:
                            // look once more, now that the waiter is counted.
                            let after = self.fill_free_slots(&pool).await?;
                            self.gauge(&pool, &after).await;
                            (after.waiting, waiter.deadline)
                        }
                        EnqueueAttempt::Enqueued => {
                            let mut seen = record.clone();
                            seen.waiting += 1;
                            self.gauge(&pool, &seen).await;
                            (seen.waiting, waiter.deadline)
                        }
                        EnqueueAttempt::AlreadyWaiting(existing) => {
                            (record.waiting, existing.deadline)
                        }
                        EnqueueAttempt::LeaseExists | EnqueueAttempt::SlotFree => continue,
                        EnqueueAttempt::PoolMissing => {
                            return Err(BrokerError::PoolNotFound(pool.to_string()));
                        }
                    };
                    info!(pool = %pool, lease = %id, waiters, deadline, "request queued");
                    return Ok(Queued {
                        pool,
                        lease_id: id,
                        waiting: true,
                        waiters,
                        deadline: Some(deadline),
                        grant: None,
                    });
                }
            };
            return self.complete_at_once(&token, granted, fresh).await;
        }
        Err(BrokerError::Store(crate::error::StoreError::Contended {
            operation: "acquire (queued)",
            attempts: (GRANT_PASSES * 2) as u32,
        }))
    }

    /// Completes the task of a request granted without waiting. A lease this call did not make
    /// (`fresh` false) is never given back here: another round or hand-over of the same
    /// request may be using it.
    async fn complete_at_once(
        &self,
        token: &TaskToken,
        mut granted: Grant,
        fresh: bool,
    ) -> Result<Queued, BrokerError> {
        granted.waited_ms = Some(0);
        let output = serde_json::to_value(&granted).expect("plain structs serialize");
        match self.complete(token, &output).await {
            Ok(()) => Ok(Queued {
                waiters: 0,
                waiting: false,
                deadline: None,
                pool: granted.pool.clone(),
                lease_id: granted.lease_id.clone(),
                grant: Some(granted),
            }),
            Err(CallbackError::Gone(why)) => {
                // The task ended between the check and now: nobody will use a new lease.
                if fresh {
                    self.give_back(
                        &granted.pool,
                        Freed::Release(granted.lease_id.clone(), false, granted.app.clone()),
                    )
                    .await?;
                }
                Err(BrokerError::InvalidInput(format!(
                    "taskToken does not belong to a waiting task ({why})"
                )))
            }
            // The lease stays: a retried task re-acquires it (same id) and completes then.
            Err(CallbackError::Failed(why)) => Err(BrokerError::Callback(why)),
        }
    }

    /// Completes a waiting task, retrying while Step Functions cannot be reached.
    async fn complete(
        &self,
        token: &TaskToken,
        output: &serde_json::Value,
    ) -> Result<(), CallbackError> {
        let Some(callbacks) = &self.callbacks else {
            return Err(CallbackError::Failed(
                "no Step Functions client is configured".into(),
            ));
        };
        let mut last = String::new();
        for attempt in 0..CALLBACK_ATTEMPTS {
            match callbacks.succeed(token.as_str(), output).await {
                Ok(()) => return Ok(()),
                Err(CallbackError::Gone(why)) => return Err(CallbackError::Gone(why)),
                Err(CallbackError::Failed(why)) => {
                    last = why;
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        Err(CallbackError::Failed(last))
    }

    /// Gives back the slot of `source`: to the oldest live waiter while requests are queued
    /// (then completes its task), to the pool otherwise. The outcome is the source's.
    ///
    /// Both orders of asking are correct (the store's conditions decide); they differ in cost.
    /// While this process last found requests queued, it reads the queue first (one query,
    /// then the hand-over); otherwise it tries the plain release first, whose failed condition
    /// tells it that requests wait.
    pub(crate) async fn give_back(
        &self,
        pool: &PoolName,
        source: Freed,
    ) -> Result<GaveBack, BrokerError> {
        let (outcome, look_again) = self.give_back_once(pool, source).await?;
        // On a divided pool whether a waiter may take a free slot also depends on the others'
        // counts (an application going idle lends its reservation), which concurrent slot
        // givers each decided on without the other's: each that freed a slot beside waiters,
        // or made an application idle, looks again after its write; whoever finishes last
        // sees them all and serves any waiter that may now take a free slot.
        if look_again
            && let Some(record) = &outcome.record
            && record.shared()
            && record.remaining() > 0
            && record.waiting > 0
        {
            self.fill_free_slots(pool).await?;
        }
        Ok(outcome)
    }

    /// [`Broker::give_back`] without the look at the queue afterwards; also says whether that
    /// look is needed (a slot freed beside waiters, or an application made idle).
    async fn give_back_once(
        &self,
        pool: &PoolName,
        mut source: Freed,
    ) -> Result<(GaveBack, bool), BrokerError> {
        let mut look_again = false;
        let mut outcome: Option<GaveBack> = None;
        // (a free slot has no plain path: it is only ever handed to a waiter)
        let mut queue_first =
            matches!(source, Freed::Free) || self.queue_seen.load(Ordering::Relaxed);
        // The pool record as last seen, for the choice of waiter, the handed-over grant and
        // the gauges.
        let mut known: Option<PoolRecord> = None;
        // Live waiters as last read, oldest first. A hand-over that finds its waiter gone
        // (served by a concurrent release, or withdrawn) tries the next one instead of reading
        // the queue again: concurrent releases then serve the oldest few, one each.
        let mut candidates: Vec<Waiter> = Vec::new();
        // Who may wait while the slot goes back to the pool: nobody, waiters all at their
        // max (as the record shows), or the queue as read (none may take it); store-checked.
        let mut beside: Option<Beside> = None;
        // Whether the plain path was tried beside waiters that may take nothing, as the
        // record a failed release answered with shows them (once: then the queue is read).
        let mut tried_capped = false;
        for _ in 0..HANDOVER_PASSES {
            if !queue_first {
                let plain = self
                    .give_back_plainly(pool, &mut source, beside.as_ref(), &mut known)
                    .await?;
                match plain {
                    Some(done) => {
                        self.queue_seen.store(false, Ordering::Relaxed);
                        // Decided on the queue's exact counts: others deciding at the same
                        // time may have counted on this slot staying taken.
                        look_again |= matches!(beside, Some(Beside::Queue { .. })) && done.released;
                        return Ok((outcome.unwrap_or(done), look_again));
                    }
                    None => {
                        self.queue_seen.store(true, Ordering::Relaxed);
                        // Every waiter's application at its max, none of this slot's: back
                        // to the pool on that condition, without reading the queue.
                        beside = known
                            .as_ref()
                            .filter(|_| !tried_capped && !matches!(source, Freed::Free))
                            .and_then(|record| Beside::capped(record, source.app()));
                        tried_capped |= beside.is_some();
                        queue_first = beside.is_none();
                        if beside.is_some() {
                            continue;
                        }
                    }
                }
            }
            let now = self.clock.now();
            if candidates.is_empty() {
                let Some((record, live)) = self.live_queue(pool, known.take(), now).await? else {
                    break;
                };
                candidates = live;
                known = Some(record);
            }
            let Some(record) = known.clone() else {
                break;
            };
            let slot = source.as_slot();
            // A released id that also waits (a new round of its request) is not its own heir.
            if let Freed::Release(id, ..) | Freed::Unclaimed(id, ..) = &source {
                candidates.retain(|w| w.id != *id);
            }
            let Some(index) = shares::pick(&record, &candidates, slot) else {
                if matches!(source, Freed::Free) {
                    break;
                }
                // Nobody (live) who may take it: the slot goes back to the pool, beside the
                // requests still counted (none of which may take it).
                beside = (record.waiting > 0).then(|| {
                    Beside::capped(&record, source.app()).unwrap_or_else(|| Beside::of(&record))
                });
                queue_first = false;
                known = None;
                candidates.clear();
                continue;
            };
            let waiter = candidates.remove(index);
            let lease = Lease {
                pool: pool.clone(),
                id: waiter.id.clone(),
                granted_at: now,
                expires_at: now + i64::from(waiter.ttl_seconds),
                draining: false,
                handed_to: Some(waiter.task_token.clone()),
                app: waiter.app.clone(),
            };
            match self.store.hand_over(source.slot(), &waiter, &lease).await? {
                HandOver::Done => {
                    let free = matches!(source, Freed::Free);
                    let after = handed_over(&record, source.app(), waiter.app.as_ref(), free);
                    look_again |= !free
                        && source
                            .app()
                            .and_then(|a| after.apps.get(a))
                            .is_some_and(|a| a.in_use == 0 && a.waiting == 0);
                    known = Some(after.clone());
                    outcome.get_or_insert(GaveBack {
                        released: true,
                        draining: false,
                        record: Some(after.clone()),
                    });
                    self.gauge(pool, &after).await;
                    match self.wake(&waiter, lease, &after).await {
                        Some(gone) => {
                            // Its task is gone: the slot goes on to the next one, unless a new
                            // round of the same request claimed the lease meanwhile.
                            source = Freed::Unclaimed(
                                gone,
                                waiter.task_token.clone(),
                                waiter.app.clone(),
                            );
                            queue_first = after.waiting > 0;
                            beside = None;
                        }
                        None => break,
                    }
                }
                HandOver::WaiterGone => {}
                HandOver::SourceApp(app) => {
                    // The released lease is another application's: the same waiter again.
                    source.set_app(app);
                    candidates.insert(index, waiter);
                }
                HandOver::SourceGone { draining } => {
                    outcome.get_or_insert(GaveBack {
                        released: false,
                        draining,
                        record: Some(record),
                    });
                    break;
                }
                HandOver::PoolMissing => break,
            }
        }
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => GaveBack {
                released: false,
                draining: false,
                record: self.store.pool(pool).await?,
            },
        };
        Ok((outcome, look_again))
    }

    /// The pool record (`known`, or read with the queue) and its live waiters in queue order,
    /// the timed-out ones withdrawn on the way; `None` when there is no pool.
    async fn live_queue(
        &self,
        pool: &PoolName,
        known: Option<PoolRecord>,
        now: i64,
    ) -> Result<Option<(PoolRecord, Vec<Waiter>)>, BrokerError> {
        let (record, mut waiters) = match known {
            Some(record) => (Some(record), self.store.waiters(pool).await?),
            None => self.store.queue(pool).await?,
        };
        let Some(mut record) = record else {
            return Ok(None);
        };
        let mut live = Vec::new();
        if record.waiting > 0 {
            waiters.sort_by(Waiter::queue_order);
            let removed;
            (live, removed) = self.drop_timed_out(pool, waiters, now).await?;
            record.waiting = record.waiting.saturating_sub(removed);
            record.version += u64::from(removed);
        }
        Ok(Some((record, live)))
    }

    /// Gives the slot of `source` straight back to the pool, when nobody waits (or only the
    /// queue `beside`): `Some` with what that did, `None` when requests wait first (then the
    /// slot is to be handed over). Records the lease's application in `source` and the pool as
    /// the store answered in `known`.
    async fn give_back_plainly(
        &self,
        pool: &PoolName,
        source: &mut Freed,
        beside: Option<&Beside>,
        known: &mut Option<PoolRecord>,
    ) -> Result<Option<GaveBack>, BrokerError> {
        let freeing = Freeing {
            app: source.app(),
            beside,
        };
        let released = match &*source {
            Freed::Release(id, true, _) => {
                Some(self.store.release_settled(pool, id, freeing).await?)
            }
            Freed::Release(id, false, _) => Some(self.store.release(pool, id, freeing).await?),
            Freed::Unclaimed(id, token, _) => Some(
                self.store
                    .release_unclaimed(pool, id, token, freeing)
                    .await?,
            ),
            Freed::Reclaim(_) | Freed::Free => None,
        };
        Ok(match released {
            Some(attempt) => {
                source.set_app(attempt.app.clone());
                if attempt.pool.is_some() {
                    *known = attempt.pool.clone();
                }
                if !attempt.waiters_first
                    && let Some(record) = &attempt.pool
                {
                    self.gauge(pool, record).await;
                }
                (!attempt.waiters_first).then_some(GaveBack {
                    released: attempt.released,
                    draining: attempt.draining,
                    record: attempt.pool,
                })
            }
            // Not read for a reclaim: the reclaim pass reads the pool once at its end.
            None => match &*source {
                Freed::Reclaim(lease) => match self.store.reclaim(lease, beside).await? {
                    ReclaimAttempt::WaitersFirst => None,
                    done => Some(GaveBack {
                        released: done == ReclaimAttempt::Reclaimed,
                        draining: false,
                        record: known.clone(),
                    }),
                },
                _ => None,
            },
        })
    }

    /// Completes the task of a waiter that was just handed a slot. Returns its id when its
    /// task is gone (the lease must be given back), `None` otherwise.
    async fn wake(&self, waiter: &Waiter, lease: Lease, record: &PoolRecord) -> Option<LeaseId> {
        let waited_ms = (self.clock.now_ms() - waiter.enqueued_at_ms).max(0);
        let mut granted = grant(lease, record, false);
        granted.waited_ms = Some(waited_ms);
        let output = serde_json::to_value(&granted).expect("plain structs serialize");
        match self.complete(&waiter.task_token, &output).await {
            Ok(()) => {
                info!(pool = %waiter.pool, lease = %waiter.id, waited_ms, "slot handed to waiter");
                let mut waited = vec![Metric::milliseconds("WaitTime", waited_ms as f64)];
                if let Some(app) = &waiter.app {
                    waited.push(Metric::milliseconds("WaitTime", waited_ms as f64).for_app(app));
                }
                self.publish(&waiter.pool, &waited).await;
                None
            }
            Err(CallbackError::Gone(why)) => {
                info!(pool = %waiter.pool, lease = %waiter.id, why, "waiter's task is gone; slot passed on");
                Some(waiter.id.clone())
            }
            Err(CallbackError::Failed(why)) => {
                // Its task times out and the workflow gives the lease back (or reclaim does).
                warn!(pool = %waiter.pool, lease = %waiter.id, why, "slot handed over but the waiter was not told");
                None
            }
        }
    }

    /// Hands free slots to waiters while both exist (after a budget raise or a repair);
    /// returns the pool as it is afterwards. The queue is read only while the record shows a
    /// waiter that may take a free slot: whoever changes that afterwards looks again itself.
    pub(crate) async fn fill_free_slots(&self, pool: &PoolName) -> Result<PoolRecord, BrokerError> {
        let mut record = self.pool_or_missing(pool).await?;
        for _ in 0..HANDOVER_PASSES {
            if !shares::queue_may_take(&record) {
                break;
            }
            if !self.give_back_once(pool, Freed::Free).await?.0.released {
                // Nobody live was waiting who may take a free slot (or only stale counts,
                // which an audit repairs): nothing more to do, however busy the pool is.
                break;
            }
            record = self.pool_or_missing(pool).await?;
        }
        Ok(record)
    }

    /// Removes the id's waiter record; false when it was not waiting.
    pub(crate) async fn withdraw(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        app: Option<&AppName>,
    ) -> Result<bool, BrokerError> {
        let withdrawn = self.store.withdraw(pool, id, app).await?;
        if withdrawn {
            info!(pool = %pool, lease = %id, "waiter withdrawn");
            if let Some(mut record) = self.store.pool(pool).await? {
                if record.shared() && record.remaining() > 0 && record.waiting > 0 {
                    // Its application may have gone idle: the slots it kept are lent now.
                    record = self.fill_free_slots(pool).await?;
                }
                self.gauge(pool, &record).await;
            }
        }
        Ok(withdrawn)
    }

    /// Removes every waiter whose deadline has passed; returns how many.
    pub(crate) async fn withdraw_expired_waiters(
        &self,
        pool: &PoolName,
        now: i64,
    ) -> Result<u32, BrokerError> {
        let waiters = self.store.waiters(pool).await?;
        Ok(self.drop_timed_out(pool, waiters, now).await?.1)
    }

    /// Withdraws the waiters whose deadline has passed at `now`; the live ones in their order,
    /// and how many were removed.
    async fn drop_timed_out(
        &self,
        pool: &PoolName,
        waiters: Vec<Waiter>,
        now: i64,
    ) -> Result<(Vec<Waiter>, u32), BrokerError> {
        let mut live = Vec::with_capacity(waiters.len());
        let mut removed = 0;
        for waiter in waiters {
            if waiter.is_live(now) {
                live.push(waiter);
            } else if self
                .store
                .withdraw(pool, &waiter.id, waiter.app.as_ref())
                .await?
            {
                info!(pool = %pool, lease = %waiter.id, "waiter past its deadline removed");
                removed += 1;
            }
        }
        Ok((live, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::AcquireRequest;
    use crate::callback::RecordingCallbacks;
    use crate::clock::ManualClock;
    use crate::memory::MemoryStore;
    use crate::metrics::NullSink;
    use crate::store::{LeaseStore, SlotSource};
    use std::sync::Arc;

    struct Fixture {
        broker: Broker,
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        calls: Arc<RecordingCallbacks>,
    }

    async fn fixture(budget: u32) -> Fixture {
        let clock = Arc::new(ManualClock::new(10_000));
        let calls = Arc::new(RecordingCallbacks::default());
        let store = Arc::new(MemoryStore::default());
        let broker = Broker::new(store.clone(), Arc::new(NullSink), clock.clone())
            .with_callbacks(calls.clone());
        broker.put_pool("db", budget).await.unwrap();
        Fixture {
            broker,
            store,
            clock,
            calls,
        }
    }

    fn queued(id: &str) -> QueuedRequest {
        QueuedRequest {
            pool: "db".into(),
            lease_id: id.into(),
            ttl_seconds: 60,
            task_token: format!("token-{id}"),
            wait_seconds: 30,
            app: None,
        }
    }

    /// Lease ids whose tasks were completed, in order.
    fn served(f: &Fixture) -> Vec<String> {
        f.calls
            .completed()
            .into_iter()
            .map(|(_, output)| output["leaseId"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_free_slot_is_granted_at_once_and_the_task_completed_with_the_lease() {
        let f = fixture(1).await;
        let done = f.broker.acquire_queued(&queued("a")).await.unwrap();
        assert!(!done.waiting);
        let (token, output) = f.calls.completed().remove(0);
        assert_eq!(token, "token-a");
        assert_eq!(output["leaseId"], "a");
        assert_eq!(output["waitedMs"], 0);
        assert_eq!(output["remaining"], 0);
    }

    #[tokio::test]
    async fn waiters_are_served_in_enqueue_order_and_the_slot_is_never_free_in_between() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        for id in ["w1", "w2", "w3"] {
            f.clock.advance(1);
            let q = f.broker.acquire_queued(&queued(id)).await.unwrap();
            assert!(q.waiting, "{id} waits");
        }
        assert_eq!(f.broker.pool("db").await.unwrap().waiting, 3);
        for (released, next) in [("holder", "w1"), ("w1", "w2"), ("w2", "w3")] {
            let r = f.broker.release("db", released).await.unwrap();
            assert!(r.released);
            let record = f.broker.pool("db").await.unwrap();
            assert_eq!(record.in_use, 1, "the slot went straight to {next}");
            assert_eq!(served(&f).last().unwrap(), next);
        }
        assert_eq!(served(&f), ["holder", "w1", "w2", "w3"]);
        let (_, output) = f.calls.completed().remove(1);
        assert_eq!(
            output["waitedMs"], 2000,
            "w1 waited from second 1 to second 3"
        );
        f.broker.release("db", "w3").await.unwrap();
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
    }

    #[tokio::test]
    async fn nobody_overtakes_the_queue() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("waiter")).await.unwrap();
        // A polling newcomer is refused even though it asks after a release... of nothing.
        let polling = f
            .broker
            .acquire(&AcquireRequest::new("db", "poller", 60))
            .await;
        assert_eq!(polling.unwrap_err().name(), "ConnectionsExhausted");
        // A raised budget serves the waiter, not a newcomer.
        f.broker.put_pool("db", 2).await.unwrap();
        assert_eq!(served(&f), ["holder", "waiter"]);
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (2, 0));
    }

    #[tokio::test]
    async fn a_waiter_whose_task_is_gone_is_skipped_without_losing_the_slot() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("stopped")).await.unwrap();
        f.clock.advance(1);
        f.broker.acquire_queued(&queued("next")).await.unwrap();
        f.calls.mark_gone("token-stopped");
        f.broker.release("db", "holder").await.unwrap();
        assert_eq!(served(&f), ["holder", "next"]);
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (1, 0));
        assert!(!f.broker.release("db", "stopped").await.unwrap().released);
        // With nobody left, a gone waiter's slot goes back to the pool.
        f.broker.acquire_queued(&queued("last")).await.unwrap();
        f.calls.mark_gone("token-last");
        f.broker.release("db", "next").await.unwrap();
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
    }

    #[tokio::test]
    async fn a_waiter_past_its_deadline_is_skipped_and_removed() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("late")).await.unwrap();
        f.clock.advance(31);
        f.broker.release("db", "holder").await.unwrap();
        assert_eq!(served(&f), ["holder"]);
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
    }

    #[tokio::test]
    async fn the_reclaim_pass_removes_timed_out_waiters_and_hands_expired_leases_on() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("crashed")).await.unwrap();
        f.broker.acquire_queued(&queued("late")).await.unwrap();
        f.clock.advance(31);
        let mut fresh = queued("fresh");
        fresh.wait_seconds = 60;
        f.broker.acquire_queued(&fresh).await.unwrap();
        f.clock.advance(30);
        let r = f.broker.reclaim_expired("db").await.unwrap();
        assert_eq!((r.reclaimed, r.expired_waiters, r.waiting), (1, 1, 0));
        assert_eq!(served(&f), ["crashed", "fresh"]);
    }

    #[tokio::test]
    async fn releasing_or_draining_a_waiting_id_withdraws_it() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("timed-out")).await.unwrap();
        f.broker.acquire_queued(&queued("aborted")).await.unwrap();
        let r = f.broker.release("db", "timed-out").await.unwrap();
        assert!(r.withdrawn && !r.released);
        let d = f.broker.drain("db", "aborted", 30).await.unwrap();
        assert!(d.withdrawn && !d.draining);
        assert_eq!(f.broker.pool("db").await.unwrap().waiting, 0);
        f.broker.release("db", "holder").await.unwrap();
        assert_eq!(served(&f), ["holder"], "withdrawn waiters never get a slot");
    }

    #[tokio::test]
    async fn bad_and_foreign_tokens_are_invalid_input_and_change_nothing() {
        let f = fixture(1).await;
        f.calls.mark_gone("foreign");
        for token in ["", "with space", "foreign"] {
            let mut request = queued("a");
            request.task_token = token.into();
            let err = f.broker.acquire_queued(&request).await.unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{token:?}");
        }
        let mut request = queued("a");
        request.wait_seconds = 0;
        assert_eq!(
            f.broker.acquire_queued(&request).await.unwrap_err().name(),
            "InvalidInput"
        );
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
        assert!(f.calls.completed().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_step_functions_is_retried_then_a_dependency_failure() {
        let f = fixture(2).await;
        f.calls.fail_next("token-a", 2);
        assert!(!f.broker.acquire_queued(&queued("a")).await.unwrap().waiting);
        f.calls.fail_next("token-b", 10);
        let err = f.broker.acquire_queued(&queued("b")).await.unwrap_err();
        assert_eq!(err.name(), "DependencyFailure");
        // The lease stays for the retried task, which re-acquires it by id.
        let mut retry = queued("b");
        retry.task_token = "token-b2".into();
        assert!(!f.broker.acquire_queued(&retry).await.unwrap().waiting);
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 2);
    }

    #[tokio::test]
    async fn a_retried_wait_keeps_its_place_with_the_new_token() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("first")).await.unwrap();
        f.clock.advance(1);
        f.broker.acquire_queued(&queued("second")).await.unwrap();
        f.clock.advance(1);
        let mut retried = queued("first");
        retried.task_token = "token-first-retry".into();
        assert!(f.broker.acquire_queued(&retried).await.unwrap().waiting);
        assert_eq!(f.broker.pool("db").await.unwrap().waiting, 2);
        f.broker.release("db", "holder").await.unwrap();
        let (token, output) = f.calls.completed().pop().unwrap();
        assert_eq!(
            (token.as_str(), &output["leaseId"]),
            ("token-first-retry", &"first".into())
        );
    }

    #[tokio::test]
    async fn audit_reports_waiters_and_repair_removes_the_timed_out() {
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("late")).await.unwrap();
        let report = f.broker.audit("db", false).await.unwrap();
        assert_eq!(
            (report.waiting, report.waiter_records, report.live_waiters),
            (1, 1, 1)
        );
        assert!(report.consistent);
        f.clock.advance(31);
        let report = f.broker.audit("db", false).await.unwrap();
        assert_eq!(report.expired_waiters, 1);
        let repaired = f.broker.audit("db", true).await.unwrap();
        assert_eq!((repaired.waiting, repaired.waiter_records), (0, 0));
        assert!(repaired.consistent);
    }

    #[tokio::test]
    async fn a_new_round_claims_a_lease_handed_to_its_ended_round_and_keeps_it() {
        // GIVEN a slot handed to a waiter whose round (token-w) ended before it was told
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("w")).await.unwrap();
        let pool = PoolName::parse("db").unwrap();
        let waiter = f.store.waiters(&pool).await.unwrap().remove(0);
        let handed = Lease {
            pool: pool.clone(),
            id: waiter.id.clone(),
            granted_at: 10_000,
            expires_at: 10_060,
            draining: false,
            handed_to: Some(waiter.task_token.clone()),
            app: None,
        };
        let holder = LeaseId::parse("holder").unwrap();
        let source = SlotSource::Release {
            id: &holder,
            settled: false,
            unclaimed: None,
            app: None,
        };
        assert_eq!(
            f.store.hand_over(source, &waiter, &handed).await.unwrap(),
            HandOver::Done
        );
        // WHEN its next round (a new token) asks before the hand-over gives the lease back
        let mut next_round = queued("w");
        next_round.task_token = "token-w-2".into();
        let done = f.broker.acquire_queued(&next_round).await.unwrap();
        // THEN the new round gets the lease, and the late give-back leaves it alone
        assert!(!done.waiting);
        assert_eq!(f.calls.completed().last().unwrap().0, "token-w-2");
        let late = f
            .store
            .release_unclaimed(&pool, &waiter.id, &waiter.task_token, Freeing::default())
            .await
            .unwrap();
        assert!(!late.released);
        assert_eq!(f.broker.pool("db").await.unwrap().in_use, 1);
        assert_eq!(f.store.leases(&pool).await.unwrap()[0].id.as_str(), "w");
    }

    #[tokio::test]
    async fn a_lease_handed_to_an_ended_round_goes_on_when_nobody_claimed_it() {
        // GIVEN a waiter whose task is gone, and nobody behind it
        let f = fixture(1).await;
        f.broker.acquire_queued(&queued("holder")).await.unwrap();
        f.broker.acquire_queued(&queued("w")).await.unwrap();
        f.calls.mark_gone("token-w");
        // WHEN the holder releases
        f.broker.release("db", "holder").await.unwrap();
        // THEN the slot was handed over, found unclaimed and given back to the pool
        let record = f.broker.pool("db").await.unwrap();
        assert_eq!((record.in_use, record.waiting), (0, 0));
        // AND the request's next round is granted the free slot at once
        let mut next_round = queued("w");
        next_round.task_token = "token-w-2".into();
        assert!(!f.broker.acquire_queued(&next_round).await.unwrap().waiting);
    }
}
