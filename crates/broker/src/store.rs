//! The port between the broker and wherever leases are kept.
//!
//! Each operation is one atomic step of the lease protocol, so that an adapter can map it to a
//! small constant number of round trips (the DynamoDB adapter uses one transaction plus at most
//! one read).

use crate::error::StoreError;
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// The outcome of trying to record a new lease and count it against its pool, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantAttempt {
    /// Recorded and counted; the pool as it is after the grant.
    Granted(PoolRecord),
    /// A lease with this id already exists (live or expired); nothing was written.
    LeaseExists(Lease),
    /// Every slot is counted, or requests are queued (they go first); nothing was written.
    PoolFull(PoolRecord),
    /// There is no such pool.
    PoolMissing,
}

/// The outcome of ending a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAttempt {
    /// False when no such lease was recorded (already released or reclaimed), or, for
    /// [`LeaseStore::release_settled`], when the lease is draining.
    pub released: bool,
    /// The lease exists but is draining, so it was left to expire.
    pub draining: bool,
    /// The lease is there but requests are queued: the slot must be handed to one of them
    /// ([`LeaseStore::hand_over`]) instead of coming back to the pool; nothing was written.
    pub waiters_first: bool,
    /// The pool after the release; `None` when the pool does not exist.
    pub pool: Option<PoolRecord>,
    /// The application the lease counted against (as found, whatever the hint said).
    pub app: Option<AppName>,
}

/// The outcome of reclaiming one expired lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimAttempt {
    /// Removed and uncounted.
    Reclaimed,
    /// Gone or renewed meanwhile: not ours to reclaim.
    Kept,
    /// Requests are queued: its slot must be handed over instead; nothing was written.
    WaitersFirst,
}

/// The outcome of queueing a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueAttempt {
    /// Recorded and counted.
    Enqueued,
    /// The id was already waiting: its record now carries the new token and deadline, and it
    /// keeps its place in the queue.
    AlreadyWaiting(Waiter),
    /// The id already holds a lease; nothing was written.
    LeaseExists,
    /// A slot is free and nobody waits: the request must be granted instead; nothing written.
    SlotFree,
    /// There is no such pool (or it is being deleted).
    PoolMissing,
}

/// How a slot is given back to the pool: the application its lease counts against (a hint:
/// the store finds the lease's own when it is another), and which requests may wait while the
/// slot becomes free (`None`: only while nobody waits; see [`Beside`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freeing<'a> {
    pub app: Option<&'a AppName>,
    pub beside: Option<&'a Beside>,
}

/// The queue beside which a slot may be granted or freed, as the broker read it when it found
/// that none of its waiters may take the slot. The store checks it in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beside {
    /// Exactly the queue read: the pool record's counter version is still the one read. Every
    /// change of a slot or a waiter moves it, so any change since (an enqueue, a withdrawal, a
    /// hand-over, even two that leave the counts where they were) sends the broker back to
    /// decide again. Used when no waiter may take the slot as the broker read the queue, e.g.
    /// because of the other applications' counts (reservations they keep), which no condition
    /// can state.
    Queue { version: u64 },
    /// Every application that has waiters is at its `max` (so none of them may take any slot,
    /// whatever the others hold), `except` has none, and the pool names these applications
    /// and no other. Unlike [`Beside::Queue`], this holds through the churn of a busy queue
    /// (enqueues and hand-overs of applications at their ceiling).
    Capped {
        except: Option<AppName>,
        apps: Vec<AppName>,
    },
    /// For a grant within `app`'s reservation: `app` holds fewer slots than it reserves and
    /// has nobody waiting; nothing about the other applications' queues. A reservation's owner
    /// goes before any borrower (whose waiters are owed no slot it keeps), and no owner waits
    /// while a slot is free, so no other waiter has a claim on the slot.
    Reserved { app: AppName },
}

impl Beside {
    /// The queue of `record`, exactly.
    pub fn of(record: &PoolRecord) -> Self {
        Beside::Queue {
            version: record.version,
        }
    }

    /// [`Beside::Capped`] for `record`, when it holds there: every request waits for an
    /// application at its `max`, and `except` waits for nothing.
    pub fn capped(record: &PoolRecord, except: Option<&AppName>) -> Option<Self> {
        let named: u32 = record.apps.values().map(|a| a.waiting).sum();
        let capped = Beside::Capped {
            except: except.cloned(),
            apps: record.apps.keys().cloned().collect(),
        };
        (!record.apps.is_empty() && named == record.waiting && Beside::holds(Some(&capped), record))
            .then_some(capped)
    }

    /// Whether `record`'s queue is still as `beside` says (`None`: nobody waits).
    pub fn holds(beside: Option<&Beside>, record: &PoolRecord) -> bool {
        match beside {
            None => record.waiting == 0,
            Some(queue @ Beside::Queue { .. }) => *queue == Beside::of(record),
            Some(Beside::Capped { except, apps }) => {
                record.apps.len() == apps.len()
                    && apps.iter().all(|name| match record.apps.get(name) {
                        None => false,
                        Some(state) if Some(name) == except.as_ref() => state.waiting == 0,
                        Some(state) => state.waiting == 0 || state.in_use >= state.max,
                    })
            }
            Some(Beside::Reserved { app }) => record
                .apps
                .get(app)
                .is_some_and(|state| state.in_use < state.reserved && state.waiting == 0),
        }
    }
}

/// What an audit counted, to set the counters to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    pub in_use: u32,
    pub waiting: u32,
    /// Lease and waiter records per application of the pool record.
    pub apps: BTreeMap<AppName, (u32, u32)>,
}

/// Where the slot of a hand-over comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotSource<'a> {
    /// A lease being released; with `settled`, only if it is not draining; with `unclaimed`,
    /// only if it is still handed to that token (see [`Lease::handed_to`]).
    Release {
        id: &'a LeaseId,
        settled: bool,
        unclaimed: Option<&'a TaskToken>,
        /// The application the lease counts against.
        app: Option<&'a AppName>,
    },
    /// An expired lease, only if it is unchanged (still expiring at the same time).
    Reclaim(&'a Lease),
    /// A free slot of the pool (after a budget raise, a repair, or withdrawn waiters).
    Free,
}

/// The outcome of turning a waiter into a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOver {
    /// The source's slot is now the waiter's lease.
    Done,
    /// The waiter is gone or carries another token now; nothing was written.
    WaiterGone,
    /// The source lease is gone, renewed or (settled) draining, or no slot is free; nothing
    /// was written. `draining` tells the draining case.
    SourceGone { draining: bool },
    /// There is no such pool.
    PoolMissing,
    /// The source lease counts against another application than the one named: ask again
    /// with this one; nothing was written.
    SourceApp(Option<AppName>),
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Reads a pool record.
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError>;
    /// Creates the pool or changes its budget and its applications (already validated),
    /// keeping the slots in use and every counter.
    async fn put_pool(
        &self,
        pool: &PoolName,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, StoreError>;
    /// Removes the pool record and all its lease records; false when there was no pool.
    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError>;
    /// Records `lease` and counts it against the pool and its application, only if both have
    /// a free slot, the id is new, and the queue is as `beside` says (`None`: nobody waits). A
    /// lease without an application is refused by a pool that divides its budget (`PoolFull`
    /// with that record).
    ///
    /// `seen` is the pool as the caller read it just before deciding, if it did. A store whose
    /// grant does not answer with the pool for free (a transaction answers nothing when it
    /// succeeds) then answers `Granted` with `seen` counted with the new lease instead of
    /// reading the pool again: a round trip fewer, and the pool as the decision saw it (as a
    /// hand-over answers).
    async fn grant(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
        seen: Option<&PoolRecord>,
    ) -> Result<GrantAttempt, StoreError>;
    /// Moves the expiry of an existing lease, only if it still expires at `existing.expires_at`.
    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError>;
    /// Removes a lease record and uncounts it, only while nobody waits (`waiters_first`
    /// otherwise).
    async fn release(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError>;
    /// Like [`LeaseStore::release`], but a draining lease is left in place to expire.
    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError>;
    /// Marks a lease draining and moves its expiry to `expires_by`, unless it already expires
    /// sooner (never later). `None` when no such lease is recorded.
    async fn drain(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        expires_by: i64,
    ) -> Result<Option<Lease>, StoreError>;
    /// Every lease record of the pool, live or expired.
    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError>;
    /// One lease record, live or expired (a consistent read).
    async fn lease(&self, pool: &PoolName, id: &LeaseId) -> Result<Option<Lease>, StoreError>;
    /// Removes and uncounts `lease`, only if it is unchanged (still expiring at the same time)
    /// and the queue is as `beside` says (see [`Beside`]).
    async fn reclaim(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
    ) -> Result<ReclaimAttempt, StoreError>;
    /// Sets the in-use and waiting counts, the pool's and its applications' (audit repair),
    /// only if the pool record is still exactly `seen` (same counts and same version): a grant
    /// and a release in between move the version even when they leave the count where it was.
    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: &Counts,
    ) -> Result<bool, StoreError>;
    /// Records `waiter` and counts it (against its application too), only if its id holds no
    /// lease, and on a pool without applications only while it could not be granted (no slot
    /// free, or others already wait). On a divided pool, with `capped`, only while the pool is
    /// full or the application is at its `max`; without, whenever the application exists
    /// (whether a free slot is its to take is the broker's choice, so the broker then looks
    /// for one again once the waiter is counted). An id that already waits gets the new token
    /// and deadline.
    async fn enqueue(&self, waiter: &Waiter, capped: bool) -> Result<EnqueueAttempt, StoreError>;
    /// Every waiter record of the pool, in no particular order.
    async fn waiters(&self, pool: &PoolName) -> Result<Vec<Waiter>, StoreError>;
    /// The pool record and every waiter record, read together (one request in DynamoDB).
    async fn queue(&self, pool: &PoolName)
    -> Result<(Option<PoolRecord>, Vec<Waiter>), StoreError>;
    /// Atomically: takes the slot from `source`, removes `waiter` (only if it still carries
    /// its token) and records `lease` (its id, new) in that slot. The in-use count does not
    /// change for a released or reclaimed source: the slot is never free in between. The slot
    /// moves from the source's application to the waiter's, only within the latter's `max`.
    async fn hand_over(
        &self,
        source: SlotSource<'_>,
        waiter: &Waiter,
        lease: &Lease,
    ) -> Result<HandOver, StoreError>;
    /// Like [`LeaseStore::release`], but only while the lease is still handed to `token` and
    /// unclaimed (a hand-over whose task was gone gives it back this way).
    async fn release_unclaimed(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        token: &TaskToken,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError>;
    /// Claims a lease handed to `from` for its holder's new task: clears `handed_to` only if it
    /// is still `from`; false otherwise (given back meanwhile, or claimed already).
    async fn claim(&self, lease: &Lease, from: &TaskToken) -> Result<bool, StoreError>;
    /// Removes a waiter record and uncounts it (and its application's count; `app` is a hint,
    /// as in [`Freeing`]); false when the id was not waiting.
    async fn withdraw(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        app: Option<&AppName>,
    ) -> Result<bool, StoreError>;
}
