//! The DynamoDB adapter of [`LeaseStore`].
//!
//! # Item layout (one table, partition key `pk`, sort key `sk`, both strings)
//! - pool record: `pk = <pool>`, `sk = "#POOL"`, `budget` (N), `inUse` (N), `updatedAt` (N).
//! - lease: `pk = <pool>`, `sk = "LEASE#<leaseId>"`, `leaseId` (S), `grantedAt` (N),
//!   `expiresAt` (N, epoch seconds).
//!
//! No item grows with the number of holders: each lease is its own small item, and the pool
//! record holds only two counters. A grant or a release is one `TransactWriteItems` (lease item
//! plus pool counter, both conditional) followed by one consistent read of the pool record for
//! the `remaining` gauge; a refusal needs no read, because the failed condition returns the pool
//! record (`ReturnValuesOnConditionCheckFailure`). Expiry is decided by the broker from
//! `expiresAt`, never by DynamoDB TTL.

use crate::error::StoreError;
use crate::model::{Lease, LeaseId, PoolName, PoolRecord};
use crate::store::{GrantAttempt, LeaseStore, Recount, ReleaseAttempt};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Item = HashMap<String, AttributeValue>;

const POOL_SK: &str = "#POOL";
const LEASE_PREFIX: &str = "LEASE#";
/// Attempts of one transaction while other writers keep cancelling it (`TransactionConflict`).
const CONFLICT_ATTEMPTS: u32 = 12;

pub struct DynamoStore {
    client: Client,
    table: String,
}

/// Why each item of a cancelled transaction failed, in request order.
struct Cancelled(Vec<(bool, Option<Item>)>);

impl Cancelled {
    fn failed(&self, index: usize) -> bool {
        self.0.get(index).is_some_and(|(failed, _)| *failed)
    }
    fn item(&self, index: usize) -> Option<&Item> {
        self.0.get(index).and_then(|(_, item)| item.as_ref())
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn pool_key(pool: &PoolName) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(pool.as_str())),
            ("sk".to_owned(), s(POOL_SK)),
        ])
    }

    fn lease_key(pool: &PoolName, id: &LeaseId) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(pool.as_str())),
            ("sk".to_owned(), s(&format!("{LEASE_PREFIX}{id}"))),
        ])
    }

    /// Runs a transaction, retrying while it only lost to concurrent transactions on the same
    /// items. `Ok(None)` means committed; `Ok(Some(_))` means a condition failed.
    async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Cancelled>, StoreError> {
        for attempt in 0..CONFLICT_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            match error {
                SdkError::ServiceError(ref service) => match service.err() {
                    TransactWriteItemsError::TransactionCanceledException(cancel) => {
                        let reasons: Vec<(Option<&str>, Option<Item>)> = cancel
                            .cancellation_reasons()
                            .iter()
                            .map(|r| (r.code(), r.item().cloned()))
                            .collect();
                        let conflicted = reasons.iter().any(|(code, _)| {
                            matches!(code, Some("TransactionConflict") | Some("ThrottlingError"))
                        });
                        let condition_failed = reasons
                            .iter()
                            .any(|(code, _)| *code == Some("ConditionalCheckFailed"));
                        if condition_failed {
                            return Ok(Some(Cancelled(
                                reasons
                                    .into_iter()
                                    .map(|(code, item)| {
                                        (code == Some("ConditionalCheckFailed"), item)
                                    })
                                    .collect(),
                            )));
                        }
                        if !conflicted {
                            return Err(StoreError::service(operation, error));
                        }
                    }
                    TransactWriteItemsError::TransactionInProgressException(_) => {}
                    _ => return Err(StoreError::service(operation, error)),
                },
                other => return Err(StoreError::service(operation, other)),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(StoreError::Contended {
            operation,
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    async fn read_pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem", e))?;
        out.item().map(pool_record).transpose()
    }

    fn counter_update(&self, pool: &PoolName, delta: i64, condition: &str) -> TransactWriteItem {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .update_expression("SET inUse = inUse + :delta")
            .condition_expression(condition)
            .expression_attribute_values(":delta", n(delta))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = if condition.contains(":zero") {
            update.expression_attribute_values(":zero", n(0))
        } else {
            update
        };
        TransactWriteItem::builder()
            .update(update.build().expect("key, table and expression are set"))
            .build()
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        self.read_pool(pool).await
    }

    async fn put_pool(&self, pool: &PoolName, budget: u32) -> Result<PoolRecord, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .update_expression(
                "SET budget = :budget, inUse = if_not_exists(inUse, :zero), updatedAt = :now",
            )
            .expression_attribute_values(":budget", n(i64::from(budget)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(epoch_seconds()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem", e))?;
        let item = out
            .attributes()
            .ok_or_else(|| StoreError::Malformed("UpdateItem returned no attributes".into()))?;
        pool_record(item)
    }

    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        let existed = self.read_pool(pool).await?.is_some();
        // Leases first, so that a crash half way leaves a pool record (retried by the next
        // Delete) rather than orphaned leases without one.
        for lease in self.leases(pool).await? {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::lease_key(pool, &lease.id)))
                .send()
                .await
                .map_err(|e| StoreError::service("DeleteItem", e))?;
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .send()
            .await
            .map_err(|e| StoreError::service("DeleteItem", e))?;
        Ok(existed)
    }

    async fn grant(&self, lease: &Lease) -> Result<GrantAttempt, StoreError> {
        let mut item = Self::lease_key(&lease.pool, &lease.id);
        item.insert("leaseId".into(), s(lease.id.as_str()));
        item.insert("grantedAt".into(), n(lease.granted_at));
        item.insert("expiresAt".into(), n(lease.expires_at));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table and item are set");
        let items = vec![
            self.counter_update(&lease.pool, 1, "attribute_exists(pk) AND inUse < budget"),
            TransactWriteItem::builder().put(put).build(),
        ];
        match self.transact("TransactWriteItems(grant)", items).await? {
            None => {
                let record = self.read_pool(&lease.pool).await?.ok_or_else(|| {
                    StoreError::Malformed(format!("pool {} vanished after a grant", lease.pool))
                })?;
                Ok(GrantAttempt::Granted(record))
            }
            Some(cancelled) if cancelled.failed(1) => match cancelled.item(1) {
                Some(existing) => Ok(GrantAttempt::LeaseExists(lease_from(
                    &lease.pool,
                    existing,
                )?)),
                None => Err(StoreError::Malformed(
                    "lease condition failed without the lease".into(),
                )),
            },
            Some(cancelled) => match cancelled.item(0) {
                Some(record) => Ok(GrantAttempt::PoolFull(pool_record(record)?)),
                None => Ok(GrantAttempt::PoolMissing),
            },
        }
    }

    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&existing.pool, &existing.id)))
            .update_expression("SET expiresAt = :new, grantedAt = :now")
            .condition_expression("expiresAt = :old")
            .expression_attribute_values(":new", n(expires_at))
            .expression_attribute_values(":old", n(existing.expires_at))
            .expression_attribute_values(":now", n(epoch_seconds()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(renew)", e)),
        }
    }

    async fn release(&self, pool: &PoolName, id: &LeaseId) -> Result<ReleaseAttempt, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(pool, id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.counter_update(pool, -1, "attribute_exists(pk) AND inUse > :zero"),
        ];
        let released = match self.transact("TransactWriteItems(release)", items).await? {
            None => true,
            Some(cancelled) if cancelled.failed(0) => false,
            Some(_) => {
                // The lease exists but the counter cannot go down (pool deleted, or counter
                // already at zero after drift): drop the record so it cannot be counted again.
                tracing::warn!(pool = %pool, lease = %id, "lease without a counted slot; removing record");
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::lease_key(pool, id)))
                    .send()
                    .await
                    .map_err(|e| StoreError::service("DeleteItem", e))?;
                true
            }
        };
        Ok(ReleaseAttempt {
            released,
            pool: self.read_pool(pool).await?,
        })
    }

    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        let mut leases = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pool AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pool", s(pool.as_str()))
                .expression_attribute_values(":prefix", s(LEASE_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::service("Query", e))?;
            for item in out.items() {
                leases.push(lease_from(pool, item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(leases),
            }
        }
    }

    async fn reclaim(&self, lease: &Lease) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&lease.pool, &lease.id)))
            .condition_expression("expiresAt = :expected")
            .expression_attribute_values(":expected", n(lease.expires_at))
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.counter_update(&lease.pool, -1, "attribute_exists(pk) AND inUse > :zero"),
        ];
        Ok(self
            .transact("TransactWriteItems(reclaim)", items)
            .await?
            .is_none())
    }

    async fn set_in_use(&self, pool: &PoolName, recount: Recount) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .update_expression("SET inUse = :actual")
            .condition_expression("inUse = :expected")
            .expression_attribute_values(":actual", n(i64::from(recount.actual)))
            .expression_attribute_values(":expected", n(i64::from(recount.expected)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(audit)", e)),
        }
    }
}

fn is_condition_failure(
    e: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().is_conditional_check_failed_exception())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(raw)) => raw
            .parse()
            .map_err(|_| StoreError::Malformed(format!("{name} is not an integer: {raw}"))),
        _ => Err(StoreError::Malformed(format!(
            "missing number attribute {name}"
        ))),
    }
}

fn count(item: &Item, name: &str) -> Result<u32, StoreError> {
    let value = number(item, name)?;
    u32::try_from(value).map_err(|_| StoreError::Malformed(format!("{name} out of range: {value}")))
}

fn pool_record(item: &Item) -> Result<PoolRecord, StoreError> {
    Ok(PoolRecord {
        budget: count(item, "budget")?,
        in_use: count(item, "inUse")?,
    })
}

fn lease_from(pool: &PoolName, item: &Item) -> Result<Lease, StoreError> {
    let id = match item.get("leaseId") {
        Some(AttributeValue::S(id)) => {
            LeaseId::parse(id).map_err(|e| StoreError::Malformed(e.to_string()))?
        }
        _ => return Err(StoreError::Malformed("lease item without leaseId".into())),
    };
    Ok(Lease {
        pool: pool.clone(),
        id,
        granted_at: number(item, "grantedAt")?,
        expires_at: number(item, "expiresAt")?,
    })
}

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Full-jitter exponential backoff: uniformly random in [0, min(cap, base * 2^attempt)].
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (10u64 << attempt.min(6)).min(500);
    Duration::from_millis(jitter(ceiling_ms + 1))
}

/// A cheap random number below `bound`; contention backoff needs spread, not cryptography.
fn jitter(bound: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % bound.max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_cap() {
        for attempt in 0..20 {
            assert!(backoff(attempt) <= Duration::from_millis(500));
        }
    }

    #[test]
    fn items_that_do_not_have_the_layout_are_reported_not_panicked_on() {
        let pool = PoolName::parse("p").unwrap();
        let item = HashMap::from([("leaseId".to_owned(), s("a"))]);
        assert!(matches!(
            lease_from(&pool, &item),
            Err(StoreError::Malformed(_))
        ));
        let item = HashMap::from([("budget".to_owned(), n(-1)), ("inUse".to_owned(), n(0))]);
        assert!(matches!(pool_record(&item), Err(StoreError::Malformed(_))));
    }
}
