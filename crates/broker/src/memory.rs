//! An in-memory [`LeaseStore`] for fast unit tests of the broker's logic. Integration tests and
//! every deployed or local run use [`crate::DynamoStore`].

use crate::error::StoreError;
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter};
use crate::shares;
use crate::store::{
    Beside, Counts, EnqueueAttempt, Freeing, GrantAttempt, HandOver, LeaseStore, ReclaimAttempt,
    ReleaseAttempt, SlotSource,
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

    /// Moves an application's counters (nothing for `None` or an application the record does
    /// not name).
    fn count_app(&mut self, app: Option<&AppName>, in_use: i64, waiting: i64) {
        if let Some(state) = app.and_then(|a| self.record.apps.get_mut(a)) {
            state.in_use = (i64::from(state.in_use) + in_use).max(0) as u32;
            state.waiting = (i64::from(state.waiting) + waiting).max(0) as u32;
        }
    }

    /// Whether one more slot fits the application's ceiling (and a lease without one is
    /// allowed only on a pool that does not divide its budget).
    fn app_fits(&self, app: Option<&AppName>) -> bool {
        match app {
            None => !self.record.shared(),
            Some(app) => self.record.apps.get(app).is_some_and(|a| a.in_use < a.max),
        }
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
        Ok(self.with(|p| p.get(pool).map(|s| s.record.clone())))
    }

    async fn put_pool(
        &self,
        pool: &PoolName,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, StoreError> {
        Ok(self.with(|p| {
            let entry = p.entry(pool.clone()).or_insert(PoolState {
                record: PoolRecord::new(budget, 0, 0, 0),
                leases: BTreeMap::new(),
                waiters: BTreeMap::new(),
            });
            entry.record.budget = budget;
            entry.record.apps = shares::merge(&entry.record.apps, budget, apps);
            entry.record.clone()
        }))
    }

    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        Ok(self.with(|p| p.remove(pool).is_some()))
    }

    /// Answers the pool as it is (no read to save), whatever the caller saw.
    async fn grant(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
        _seen: Option<&PoolRecord>,
    ) -> Result<GrantAttempt, StoreError> {
        Ok(self.with(|p| match p.get_mut(&lease.pool) {
            None => GrantAttempt::PoolMissing,
            Some(s) if s.leases.contains_key(&lease.id) => {
                GrantAttempt::LeaseExists(s.leases[&lease.id].clone())
            }
            Some(s)
                if s.record.in_use >= s.record.budget
                    || !Beside::holds(beside, &s.record)
                    || !s.app_fits(lease.app.as_ref()) =>
            {
                GrantAttempt::PoolFull(s.record.clone())
            }
            Some(s) => {
                s.count(1, 0);
                s.count_app(lease.app.as_ref(), 1, 0);
                s.leases.insert(lease.id.clone(), lease.clone());
                GrantAttempt::Granted(s.record.clone())
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

    async fn release(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, freeing, |_| true))
    }

    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, freeing, |lease| !lease.draining))
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

    async fn lease(&self, pool: &PoolName, id: &LeaseId) -> Result<Option<Lease>, StoreError> {
        Ok(self.with(|p| p.get(pool).and_then(|s| s.leases.get(id).cloned())))
    }

    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        Ok(self.with(|p| {
            p.get(pool)
                .map(|s| s.leases.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn reclaim(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
    ) -> Result<ReclaimAttempt, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(&lease.pool) else {
                return ReclaimAttempt::Kept;
            };
            match s.leases.get(&lease.id) {
                Some(l) if l.expires_at == lease.expires_at => {
                    if !Beside::holds(beside, &s.record) {
                        return ReclaimAttempt::WaitersFirst;
                    }
                    let app = l.app.clone();
                    s.leases.remove(&lease.id);
                    s.count(-1, 0);
                    s.count_app(app.as_ref(), -1, 0);
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
        actual: &Counts,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|p| match p.get_mut(pool) {
            Some(s) if s.record == *seen => {
                s.record.in_use = actual.in_use;
                s.record.waiting = actual.waiting;
                for (name, state) in s.record.apps.iter_mut() {
                    let (in_use, waiting) = actual.apps.get(name).copied().unwrap_or((0, 0));
                    state.in_use = in_use;
                    state.waiting = waiting;
                }
                s.record.version += 1;
                true
            }
            _ => false,
        }))
    }

    async fn enqueue(&self, waiter: &Waiter, capped: bool) -> Result<EnqueueAttempt, StoreError> {
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
            if waiter.app.is_none() && s.record.shared() {
                // Not queued: the grant it goes back to refuses it (a divided pool serves
                // named applications only).
                return EnqueueAttempt::SlotFree;
            }
            if waiter.app.is_none() && s.record.in_use < s.record.budget && s.record.waiting == 0 {
                return EnqueueAttempt::SlotFree;
            }
            if let Some(app) = &waiter.app {
                let Some(state) = s.record.apps.get(app) else {
                    // As the grant it goes back to: that one names the unknown application.
                    return EnqueueAttempt::SlotFree;
                };
                if capped && s.record.in_use < s.record.budget && state.in_use < state.max {
                    return EnqueueAttempt::SlotFree;
                }
            }
            s.count(0, 1);
            s.count_app(waiter.app.as_ref(), 0, 1);
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
            Some(s) => (
                Some(s.record.clone()),
                s.waiters.values().cloned().collect(),
            ),
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
                    ..
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
            let from = match source {
                SlotSource::Release { id, .. } => s.leases.get(id).and_then(|l| l.app.clone()),
                SlotSource::Reclaim(expired) => {
                    s.leases.get(&expired.id).and_then(|l| l.app.clone())
                }
                SlotSource::Free => None,
            };
            let moves = from != lease.app || matches!(source, SlotSource::Free);
            if moves && lease.app.is_some() && !s.app_fits(lease.app.as_ref()) {
                // Its application is at its max: not this waiter now.
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
            if moves {
                s.count_app(from.as_ref(), -1, 0);
                s.count_app(lease.app.as_ref(), 1, 0);
            }
            s.count_app(waiter.app.as_ref(), 0, -1);
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
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        Ok(self.release_where(pool, id, freeing, |lease| {
            lease.handed_to.as_ref() == Some(token)
        }))
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

    async fn withdraw(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        _app: Option<&AppName>,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            let Some(s) = p.get_mut(pool) else {
                return false;
            };
            match s.waiters.remove(id) {
                Some(waiter) => {
                    s.count(0, -1);
                    s.count_app(waiter.app.as_ref(), 0, -1);
                    true
                }
                None => false,
            }
        }))
    }
}

impl MemoryStore {
    /// Removes a lease and uncounts it when `may` allows and exactly `freeing.beside` requests
    /// wait (and, while some do, only when the lease is `freeing.app`'s, as named).
    fn release_where(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
        may: impl Fn(&Lease) -> bool,
    ) -> ReleaseAttempt {
        self.with(|p| match p.get_mut(pool) {
            None => ReleaseAttempt {
                released: false,
                draining: false,
                waiters_first: false,
                pool: None,
                app: None,
            },
            Some(s) => {
                let kept = s.leases.get(id).is_some_and(|l| !may(l));
                let draining = kept && s.leases.get(id).is_some_and(|l| l.draining);
                let present = s.leases.contains_key(id);
                let app = s.leases.get(id).and_then(|l| l.app.clone());
                let misnamed = freeing.beside.is_some() && app.as_ref() != freeing.app;
                let waiters_first =
                    present && !kept && (!Beside::holds(freeing.beside, &s.record) || misnamed);
                let released = present && !kept && !waiters_first;
                if released {
                    s.leases.remove(id);
                    s.count(-1, 0);
                    s.count_app(app.as_ref(), -1, 0);
                }
                ReleaseAttempt {
                    released,
                    draining,
                    waiters_first,
                    pool: Some(s.record.clone()),
                    app,
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
