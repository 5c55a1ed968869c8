//! An in-memory [`LeaseStore`] for fast unit tests of the broker's logic. Integration tests and
//! every deployed or local run use [`crate::DynamoStore`].

use crate::error::StoreError;
use crate::model::{Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter};
use crate::store::{
    EnqueueAttempt, GrantAttempt, HandOver, LeaseStore, ReclaimAttempt, ReleaseAttempt, SlotSource,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// One pool: its record, its leases and its waiters by id.
#[derive(Debug)]
struct PoolState {
    record: PoolRecord,
    leases: BTreeMap<LeaseId, Lease>,
    waiters: BTreeMap<LeaseId, Waiter>,
}

impl PoolState {
    fn count(&mut self, in_use: i64, waiting: i64) {
        self.record.in_use = (i64::from(self.record.in_use) + in_use).max(0) as u32;
        self.record.waiting = (i64::from(self.record.waiting) + waiting).max(0) as u32;
        self.record.version += 1;
    }
}

type Pools = HashMap<PoolName, PoolState>;

#[derive(Debug, Default)]
pub struct MemoryStore {
    pools: Mutex<Pools>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Pools) -> T) -> T {
        // A poisoned lock only means another test thread panicked; the map is still usable.
        let mut guard = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        Ok(self.with(|p| p.get(pool).map(|s| s.record)))
    }

    async fn put_pool(&self, pool: &PoolName, budget: u32) -> Result<PoolRecord, StoreError> {
        Ok(self.with(|p| {
            let entry = p.entry(pool.clone()).or_insert(PoolState {
                record: PoolRecord {
                    budget,
                    in_use: 0,
                    version: 0,
                    waiting: 0,
                },
                leases: BTreeMap::new(),
                waiters: BTreeMap::new(),
            });
            entry.record.budget = budget;
            entry.record
        }))
    }

    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        Ok(self.with(|p| p.remove(pool).is_some()))
    }

    async fn grant(&self, lease: &Lease) -> Result<GrantAttempt, StoreError> {
        Ok(self.with(|p| match p.get_mut(&lease.pool) {
            None => GrantAttempt::PoolMissing,
            Some(s) if s.leases.contains_key(&lease.id) => {
                GrantAttempt::LeaseExists(s.leases[&lease.id].clone())
            }
            Some(s) if s.record.in_use >= s.record.budget || s.record.waiting > 0 => {
                GrantAttempt::PoolFull(s.record)
            }
            Some(s) => {
                s.count(1, 0);
                s.leases.insert(lease.id.clone(), lease.clone());
                GrantAttempt::Granted(s.record)
            }
        }))
    }

    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            match p
                .get_mut(&existing.pool)
                .and_then(|s| s.leases.get_mut(&existing.id))
            {
                Some(l) if l.expires_at == existing.expires_at => {
                    l.expires_at = expires_at;
                    l.draining = false;
                    true
                }
                _ => false,
            }
        }))
    }

    async fn release(&self, pool: &PoolName, id: &LeaseId) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, |_| true))
    }

    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
    ) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, |lease| !lease.draining))
    }

    async fn drain(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        expires_by: i64,
    ) -> Result<Option<Lease>, StoreError> {
        Ok(self.with(|p| {
            let lease = p.get_mut(pool)?.leases.get_mut(id)?;
            lease.draining = true;
            lease.expires_at = lease.expires_at.min(expires_by);
            Some(lease.clone())
        }))
    }

    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        Ok(self.with(|p| {
            p.get(pool)
                .map(|s| s.leases.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn reclaim(&self, lease: &Lease) -> Result<ReclaimAttempt, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(&lease.pool) else {
                return ReclaimAttempt::Kept;
            };
            match s.leases.get(&lease.id) {
                Some(l) if l.expires_at == lease.expires_at => {
                    if s.record.waiting > 0 {
                        return ReclaimAttempt::WaitersFirst;
                    }
                    s.leases.remove(&lease.id);
                    s.count(-1, 0);
                    ReclaimAttempt::Reclaimed
                }
                _ => ReclaimAttempt::Kept,
            }
        }))
    }

    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: u32,
        waiting: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|p| match p.get_mut(pool) {
            Some(s) if s.record == *seen => {
                s.record.in_use = actual;
                s.record.waiting = waiting;
                s.record.version += 1;
                true
            }
            _ => false,
        }))
    }

    async fn enqueue(&self, waiter: &Waiter) -> Result<EnqueueAttempt, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(&waiter.pool) else {
                return EnqueueAttempt::PoolMissing;
            };
            if s.leases.contains_key(&waiter.id) {
                return EnqueueAttempt::LeaseExists;
            }
            if let Some(existing) = s.waiters.get_mut(&waiter.id) {
                existing.task_token = waiter.task_token.clone();
                existing.deadline = waiter.deadline;
                return EnqueueAttempt::AlreadyWaiting(existing.clone());
            }
            if s.record.in_use < s.record.budget && s.record.waiting == 0 {
                return EnqueueAttempt::SlotFree;
            }
            s.count(0, 1);
            s.waiters.insert(waiter.id.clone(), waiter.clone());
            EnqueueAttempt::Enqueued
        }))
    }

    async fn waiters(&self, pool: &PoolName) -> Result<Vec<Waiter>, StoreError> {
        Ok(self.with(|p| {
            p.get(pool)
                .map(|s| s.waiters.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn queue(
        &self,
        pool: &PoolName,
    ) -> Result<(Option<PoolRecord>, Vec<Waiter>), StoreError> {
        Ok(self.with(|p| match p.get(pool) {
            None => (None, Vec::new()),
            Some(s) => (Some(s.record), s.waiters.values().cloned().collect()),
        }))
    }

    async fn hand_over(
        &self,
        source: SlotSource<'_>,
        waiter: &Waiter,
        lease: &Lease,
    ) -> Result<HandOver, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(&waiter.pool) else {
                return HandOver::PoolMissing;
            };
            let source_ok = match source {
                SlotSource::Release {
                    id,
                    settled,
                    unclaimed,
                } => match s.leases.get(id) {
                    None => return HandOver::SourceGone { draining: false },
                    Some(l) if settled && l.draining => {
                        return HandOver::SourceGone { draining: true };
                    }
                    Some(l) => unclaimed.is_none_or(|t| l.handed_to.as_ref() == Some(t)),
                },
                SlotSource::Reclaim(expired) => s
                    .leases
                    .get(&expired.id)
                    .is_some_and(|l| l.expires_at == expired.expires_at),
                SlotSource::Free => s.record.in_use < s.record.budget,
            };
            if !source_ok {
                return HandOver::SourceGone { draining: false };
            }
            let waiting = s
                .waiters
                .get(&waiter.id)
                .is_some_and(|w| w.task_token == waiter.task_token);
            if !waiting || s.leases.contains_key(&lease.id) {
                return HandOver::WaiterGone;
            }
            match source {
                SlotSource::Release { id, .. } => {
                    s.leases.remove(id);
                    s.count(0, -1);
                }
                SlotSource::Reclaim(expired) => {
                    s.leases.remove(&expired.id);
                    s.count(0, -1);
                }
                SlotSource::Free => s.count(1, -1),
            }
            s.waiters.remove(&waiter.id);
            s.leases.insert(lease.id.clone(), lease.clone());
            HandOver::Done
        }))
    }

    async fn release_unclaimed(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        token: &TaskToken,
    ) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, |lease| lease.handed_to.as_ref() == Some(token)))
    }

    async fn claim(&self, lease: &Lease, from: &TaskToken) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            match p
                .get_mut(&lease.pool)
                .and_then(|s| s.leases.get_mut(&lease.id))
            {
                Some(l) if l.handed_to.as_ref() == Some(from) => {
                    l.handed_to = None;
                    true
                }
                _ => false,
            }
        }))
    }

    async fn withdraw(&self, pool: &PoolName, id: &LeaseId) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(pool) else {
                return false;
            };
            let removed = s.waiters.remove(id).is_some();
            if removed {
                s.count(0, -1);
            }
            removed
        }))
    }
}

impl MemoryStore {
    /// Removes a lease and uncounts it when `may` allows and nobody waits.
    fn release_where(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        may: impl Fn(&Lease) -> bool,
    ) -> ReleaseAttempt {
        self.with(|p| match p.get_mut(pool) {
            None => ReleaseAttempt {
                released: false,
                draining: false,
                waiters_first: false,
                pool: None,
            },
            Some(s) => {
                let kept = s.leases.get(id).is_some_and(|l| !may(l));
                let draining = kept && s.leases.get(id).is_some_and(|l| l.draining);
                let present = s.leases.contains_key(id);
                let waiters_first = present && !kept && s.record.waiting > 0;
                let released = present && !kept && !waiters_first;
                if released {
                    s.leases.remove(id);
                    s.count(-1, 0);
                }
                ReleaseAttempt {
                    released,
                    draining,
                    waiters_first,
                    pool: Some(s.record),
                }
            }
        })
    }

    /// Test hook: counts a slot without a lease record, the drift a lost write would leave.
    pub fn inject_drift(&self, pool: &PoolName, extra: u32) {
        self.with(|p| {
            if let Some(s) = p.get_mut(pool) {
                s.count(i64::from(extra), 0);
            }
        });
    }
}
