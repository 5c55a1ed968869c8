//! The port between the broker and wherever leases are kept.
//!
//! Each operation is one atomic step of the lease protocol, so that an adapter can map it to a
//! small constant number of round trips (the DynamoDB adapter uses one transaction plus at most
//! one read).

use crate::error::StoreError;
use crate::model::{Lease, LeaseId, PoolName, PoolRecord};
use async_trait::async_trait;

/// The outcome of trying to record a new lease and count it against its pool, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantAttempt {
    /// Recorded and counted; the pool as it is after the grant.
    Granted(PoolRecord),
    /// A lease with this id already exists (live or expired); nothing was written.
    LeaseExists(Lease),
    /// Every slot is counted; nothing was written.
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
    /// The pool after the release; `None` when the pool does not exist.
    pub pool: Option<PoolRecord>,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Reads a pool record.
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError>;
    /// Creates the pool or changes its budget, keeping the slots in use.
    async fn put_pool(&self, pool: &PoolName, budget: u32) -> Result<PoolRecord, StoreError>;
    /// Removes the pool record and all its lease records; false when there was no pool.
    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError>;
    /// Records `lease` and counts it, only if the pool has a free slot and the id is new.
    async fn grant(&self, lease: &Lease) -> Result<GrantAttempt, StoreError>;
    /// Moves the expiry of an existing lease, only if it still expires at `existing.expires_at`.
    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError>;
    /// Removes a lease record and uncounts it.
    async fn release(&self, pool: &PoolName, id: &LeaseId) -> Result<ReleaseAttempt, StoreError>;
    /// Like [`LeaseStore::release`], but a draining lease is left in place to expire.
    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
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
    /// Removes and uncounts `lease`, only if it is unchanged (still expiring at the same time).
    async fn reclaim(&self, lease: &Lease) -> Result<bool, StoreError>;
    /// Sets the in-use count (audit repair), only if the pool record is still exactly `seen`
    /// (same count and same version): a grant and a release in between move the version even
    /// when they leave the count where it was.
    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: u32,
    ) -> Result<bool, StoreError>;
}
