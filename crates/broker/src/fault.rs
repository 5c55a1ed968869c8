//! Fault injection for local fault tests: a [`LeaseStore`] decorator that commits a grant and
//! then loses its answer, as when DynamoDB's response (or the read after it) never reaches the
//! handler. Off unless `LEASEHOLD_FAULT_LOSE_GRANT_RESPONSES` (a probability from 0 to 1) is
//! set; the template never sets it, only tests of the local stack do.

use crate::error::StoreError;
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter};
use crate::store::{
    Beside, Counts, EnqueueAttempt, Freeing, GrantAttempt, HandOver, LeaseStore, ReclaimAttempt,
    ReleaseAttempt, SlotSource,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that turns lost grant answers on.
pub const LOSE_GRANT_RESPONSES: &str = "LEASEHOLD_FAULT_LOSE_GRANT_RESPONSES";

/// Loses the answer of a grant (new or existing lease) with a probability, after the store did
/// the work.
pub struct LosingGrants {
    inner: Arc<dyn LeaseStore>,
    probability: f64,
    state: AtomicU64,
}

impl LosingGrants {
    pub fn new(inner: Arc<dyn LeaseStore>, probability: f64, seed: u64) -> Self {
        LosingGrants {
            inner,
            probability,
            state: AtomicU64::new(seed),
        }
    }

    fn draw(&self) -> f64 {
        // splitmix64: enough for a fault knob, no dependency.
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Reads the probability from the variable's value: `None` when unset or empty.
pub fn probability(raw: Option<&str>) -> Result<Option<f64>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .map(Some)
            .ok_or_else(|| {
                format!("{LOSE_GRANT_RESPONSES} must be a probability from 0 to 1, got {text:?}")
            }),
    }
}

#[async_trait]
impl LeaseStore for LosingGrants {
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
        let attempt = self.inner.grant(lease, beside, seen).await?;
        let answered_with_a_lease = matches!(
            attempt,
            GrantAttempt::Granted(_) | GrantAttempt::LeaseExists(_)
        );
        if answered_with_a_lease && self.draw() < self.probability {
            return Err(StoreError::Contended {
                operation: "grant (answer lost by fault injection)",
                attempts: 1,
            });
        }
        Ok(attempt)
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
        self.inner.leases(pool).await
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
