//! An in-memory [`LeaseStore`] for fast unit tests of the broker's logic. Integration tests and
//! every deployed or local run use [`crate::DynamoStore`].

use crate::error::StoreError;
use crate::model::{Lease, LeaseId, PoolName, PoolRecord};
use crate::store::{GrantAttempt, LeaseStore, ReleaseAttempt};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Each pool's record with its leases by id.
type Pools = HashMap<PoolName, (PoolRecord, BTreeMap<LeaseId, Lease>)>;

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
        Ok(self.with(|p| p.get(pool).map(|(r, _)| *r)))
    }

    async fn put_pool(&self, pool: &PoolName, budget: u32) -> Result<PoolRecord, StoreError> {
        Ok(self.with(|p| {
            let entry = p.entry(pool.clone()).or_insert((
                PoolRecord {
                    budget,
                    in_use: 0,
                    version: 0,
                },
                BTreeMap::new(),
            ));
            entry.0.budget = budget;
            entry.0
        }))
    }

    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        Ok(self.with(|p| p.remove(pool).is_some()))
    }

    async fn grant(&self, lease: &Lease) -> Result<GrantAttempt, StoreError> {
        Ok(self.with(|p| match p.get_mut(&lease.pool) {
            None => GrantAttempt::PoolMissing,
            Some((_, leases)) if leases.contains_key(&lease.id) => {
                GrantAttempt::LeaseExists(leases[&lease.id].clone())
            }
            Some((record, _)) if record.in_use >= record.budget => GrantAttempt::PoolFull(*record),
            Some((record, leases)) => {
                record.in_use += 1;
                record.version += 1;
                leases.insert(lease.id.clone(), lease.clone());
                GrantAttempt::Granted(*record)
            }
        }))
    }

    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            match p
                .get_mut(&existing.pool)
                .and_then(|(_, leases)| leases.get_mut(&existing.id))
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
            let lease = p.get_mut(pool)?.1.get_mut(id)?;
            lease.draining = true;
            lease.expires_at = lease.expires_at.min(expires_by);
            Some(lease.clone())
        }))
    }

    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        Ok(self.with(|p| {
            p.get(pool)
                .map(|(_, l)| l.values().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn reclaim(&self, lease: &Lease) -> Result<bool, StoreError> {
        Ok(self.with(|p| {
            let Some((record, leases)) = p.get_mut(&lease.pool) else {
                return false;
            };
            match leases.get(&lease.id) {
                Some(l) if l.expires_at == lease.expires_at => {
                    leases.remove(&lease.id);
                    record.in_use = record.in_use.saturating_sub(1);
                    record.version += 1;
                    true
                }
                _ => false,
            }
        }))
    }

    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|p| match p.get_mut(pool) {
            Some((record, _)) if record.in_use == seen.in_use && record.version == seen.version => {
                record.in_use = actual;
                record.version += 1;
                true
            }
            _ => false,
        }))
    }
}

impl MemoryStore {
    /// Removes a lease and uncounts it when `may` allows.
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
                pool: None,
            },
            Some((record, leases)) => {
                let draining = leases.get(id).is_some_and(|l| !may(l));
                let released = !draining && leases.remove(id).is_some();
                if released {
                    record.in_use = record.in_use.saturating_sub(1);
                    record.version += 1;
                }
                ReleaseAttempt {
                    released,
                    draining,
                    pool: Some(*record),
                }
            }
        })
    }

    /// Test hook: counts a slot without a lease record, the drift a lost write would leave.
    pub fn inject_drift(&self, pool: &PoolName, extra: u32) {
        self.with(|p| {
            if let Some((record, _)) = p.get_mut(pool) {
                record.in_use += extra;
                record.version += 1;
            }
        });
    }
}
