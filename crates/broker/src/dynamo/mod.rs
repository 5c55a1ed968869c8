//! The DynamoDB adapter of [`LeaseStore`].
//!
//! # Item layout (one table, partition key `pk`, sort key `sk`, both strings)
//! - pool record: `pk = <pool>`, `sk = "#POOL"`, `budget` (N), `inUse` (N), `counterVersion`
//!   (N, incremented by every change of a counter; absent on records of older versions, read
//!   as 0), `updatedAt` (N), `closing` (BOOL, set while the pool is being deleted: no grant
//!   commits on a closing pool). A pool divided between applications also has `apps` (M: per
//!   application name, a map of `reserved`, `max`, `weight`, `inUse`, `waiting` (N) and
//!   `retired` (BOOL)) and `appsActive` (BOOL, present while one of them is not retired: a lease
//!   or waiter without an application is refused).
//! - lease: `pk = <pool>`, `sk = "LEASE#<leaseId>"`, `leaseId` (S), `grantedAt` (N),
//!   `expiresAt` (N, epoch seconds), `draining` (BOOL, present once its holder ended while a
//!   query may still run: only expiry frees it).
//! - waiter: `pk = <pool>`, `sk = "WAIT#<leaseId>"`, `leaseId` (S), `taskToken` (S),
//!   `enqueuedAtMs` (N, the queue's order), `deadline` (N, epoch seconds), `ttlSeconds` (N);
//!   counted by the pool record's `waiting` (N, absent on older records, read as 0).
//! - lease and waiter items of a divided pool carry `app` (S), the application whose counters
//!   in `apps` count them.
//!
//! # How the queue's races are closed
//! Every change of a slot or a waiter is one transaction that also updates the pool record,
//! and each carries a condition on the record's two counters, so DynamoDB serializes them:
//! - a grant commits only if `inUse < budget` **and** `waiting = 0`: a newcomer never overtakes
//!   a queued request;
//! - an enqueue commits only if `inUse >= budget` **or** `waiting > 0`: a request is never
//!   queued while a slot is free and nobody waits;
//! - a release or a reclaim uncounts its slot only if `waiting = 0`; otherwise it fails and the
//!   broker hands the slot over instead: one transaction deletes the released lease and the
//!   oldest waiter (conditional on its token) and puts the waiter's lease, leaving `inUse` as
//!   it was and lowering `waiting`.
//!
//! So an enqueue and a release that race end in one of two orders: the enqueue first (the
//! release's `waiting = 0` fails and it hands the slot to the new waiter) or the release first
//! (the enqueue's condition fails and the request is granted the free slot). Neither leaves a
//! waiter asleep beside a free slot. Free slots with waiters can only appear when the budget is
//! raised or an audit repairs the counter; both hand those slots over at once.
//!
//! # Applications
//! On a divided pool the same transactions also move the application's counters inside the
//! pool record, with conditions of their own: a grant or a hand-over that adds a slot to an
//! application needs `apps.<app>.inUse < apps.<app>.max` (besides `inUse < budget`). Whether a
//! free slot is an application's to take also depends on the others (an active application
//! keeps its unused reservation, see `crate::shares`), which no single condition can say. So an
//! application's request queues on `inUse >= budget OR apps.<app>.inUse >= apps.<app>.max`
//! when the pool as read says so (it can take no slot at all, and whoever frees one later sees
//! it counted); otherwise (it may not take the slots others keep) it queues whenever its
//! application exists and looks for a slot once more after it is counted. Lease and waiter deletions are conditional on the
//! item's `app` too, so a release always uncounts the application the lease really counts
//! against (a wrong or missing hint costs one more try).
//!
//! Here a request may wait beside a free slot it may not take. So the "nobody waits" of a grant
//! and a release generalizes to one of two conditions, chosen after finding that no waiter may
//! take the slot:
//! - **capped**: every application with waiters is at its `max` (`apps.<a>.waiting = 0 OR
//!   apps.<a>.inUse >= apps.<a>.max` for each application, the slot's own with no waiter, and
//!   `size(apps)` as read). Such waiters can take no slot whatever the others hold, so nothing
//!   else needs checking, and the condition holds through the churn of a busy queue (enqueues
//!   and hand-overs of applications at their ceiling). It needs no read of the queue: the pool
//!   record (as read, or as a failed release answered with it) tells. An application's grant
//!   beyond its reservation always carries it (with nobody waiting at the read it says only
//!   that nobody of the grant's application waits), so requests of applications at their
//!   ceiling that queue between the read and the grant do not turn the grant away. A grant
//!   within the reservation (as read) beside waiters of other applications below their `max`
//!   (so capped does not hold) carries neither: only `apps.<app>.inUse < apps.<app>.reserved`
//!   and `apps.<app>.waiting = 0` besides the pool's own. A reservation's owner goes before
//!   any borrower, and no owner waits while a slot is free, so no other application's queue
//!   can have a claim on the slot.
//! - **exactly the queue read**: the record's `counterVersion` is still the one read; every
//!   change of a slot or a waiter moves it. The waiting counts alone would not do: a hand-over
//!   and an enqueue in between leave them where they were with another request waiting, and a
//!   broker that read the queue before both (its waiter list empty, its count 1) would give
//!   the slot back beside the newcomer. On a changed version the broker decides again. Counts
//!   that change who may take a slot without moving the queue (a release that makes its
//!   application idle, two releases deciding at once) are caught by the look at the queue
//!   every giver of a slot takes after such a write: the last of them sees them all. A request
//!   queued beside free slots looks for a slot once more after its enqueue committed, so a
//!   slot freed by someone who read the queue before the enqueue is not left beside it.
//!
//! No item grows with the number of holders: each lease is its own small item, and the pool
//! record holds only two counters. A grant or a release is one `TransactWriteItems` (lease item
//! plus pool counter, both conditional) followed by one consistent read of the pool record for
//! the `remaining` gauge; a refusal needs no read, because the failed condition returns the pool
//! record (`ReturnValuesOnConditionCheckFailure`). Expiry is decided by the broker from
//! `expiresAt`, never by DynamoDB TTL.

use crate::error::StoreError;
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter};
use crate::store::{
    Beside, Counts, EnqueueAttempt, Freeing, GrantAttempt, HandOver, LeaseStore, ReclaimAttempt,
    ReleaseAttempt, SlotSource,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use std::collections::HashMap;

mod items;
mod writes;

use writes::{Counter, enqueue_condition};

use items::{
    app_of, backoff, epoch_seconds, is_condition_failure, lease_from, n, pool_record, s,
    waiter_from, waiting_differs,
};

type Item = HashMap<String, AttributeValue>;

const POOL_SK: &str = "#POOL";
const LEASE_PREFIX: &str = "LEASE#";
const WAIT_PREFIX: &str = "WAIT#";
/// Nobody waits (records written before the queue existed have no counter).
const NOBODY_WAITS: &str = "(attribute_not_exists(waiting) OR waiting = :zero)";
/// Attempts of one transaction while other writers keep cancelling it (`TransactionConflict`).
const CONFLICT_ATTEMPTS: u32 = 12;
/// A lease or waiter without an application may only be counted by an undivided pool
/// (`shared` would read better, but it is one of DynamoDB's reserved words).
pub(super) const UNDIVIDED: &str = "attribute_not_exists(appsActive)";

/// The condition that a lease or waiter item belongs to `app` (or to none).
fn belongs_to(app: Option<&AppName>) -> &'static str {
    if app.is_some() {
        "app = :app"
    } else {
        "attribute_not_exists(app)"
    }
}

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

    fn waiter_key(pool: &PoolName, id: &LeaseId) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(pool.as_str())),
            ("sk".to_owned(), s(&format!("{WAIT_PREFIX}{id}"))),
        ])
    }

    fn lease_put(&self, lease: &Lease) -> TransactWriteItem {
        let mut item = Self::lease_key(&lease.pool, &lease.id);
        item.insert("leaseId".into(), s(lease.id.as_str()));
        item.insert("grantedAt".into(), n(lease.granted_at));
        item.insert("expiresAt".into(), n(lease.expires_at));
        if let Some(token) = &lease.handed_to {
            item.insert("handedTo".into(), s(token.as_str()));
        }
        if let Some(app) = &lease.app {
            item.insert("app".into(), s(app.as_str()));
        }
        self.put_new(item)
    }

    /// A transaction item that puts `item` only if no item has its key, answering with the
    /// existing item when one does.
    fn put_new(&self, item: Item) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    /// Every item of the pool whose sort key starts with `prefix`, read consistently.
    async fn query_prefix(&self, pool: &PoolName, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(if prefix.is_empty() {
                    "pk = :pool"
                } else {
                    "pk = :pool AND begins_with(sk, :prefix)"
                })
                .expression_attribute_values(":pool", s(pool.as_str()))
                .set_expression_attribute_values(Some(if prefix.is_empty() {
                    HashMap::from([(":pool".to_owned(), s(pool.as_str()))])
                } else {
                    HashMap::from([
                        (":pool".to_owned(), s(pool.as_str())),
                        (":prefix".to_owned(), s(prefix)),
                    ])
                }))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::service("Query", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
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

    /// Removes a lease and uncounts it (from its application too), when the lease item meets
    /// `condition` and exactly `freeing.beside` requests wait. The application is a hint: a
    /// lease of another one is released with its own on a second try.
    async fn release_where(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        condition: &str,
        token: Option<&TaskToken>,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        let mut app = freeing.app.cloned();
        let values: Vec<(&str, AttributeValue)> = token
            .map(|t| vec![(":token", s(t.as_str()))])
            .unwrap_or_default();
        for _ in 0..3 {
            let items = vec![
                self.owned_delete(Self::lease_key(pool, id), condition, app.as_ref(), &values),
                self.counter(
                    pool,
                    &Counter::new(-1, 0, "attribute_exists(pk) AND inUse > :zero")
                        .beside(freeing.beside)
                        .app(app.as_ref(), -1, 0),
                ),
            ];
            let (released, draining) =
                match self.transact("TransactWriteItems(release)", items).await? {
                    None => (true, false),
                    Some(cancelled) if cancelled.failed(0) => match cancelled.item(0) {
                        // The lease counts against another application: again with that one,
                        // unless requests wait: whether one of them may take the slot depends
                        // on whose it is, so the broker decides again.
                        Some(item) if app_of(item)? != app && freeing.beside.is_some() => {
                            return Ok(ReleaseAttempt {
                                released: false,
                                draining: false,
                                waiters_first: true,
                                pool: self.read_pool(pool).await?,
                                app: app_of(item)?,
                            });
                        }
                        Some(item) if app_of(item)? != app => {
                            app = app_of(item)?;
                            continue;
                        }
                        // The lease is gone, or it is there but the condition kept it
                        // (draining, or claimed by its holder).
                        item => (
                            false,
                            item.is_some_and(|i| {
                                matches!(i.get("draining"), Some(AttributeValue::Bool(true)))
                            }),
                        ),
                    },
                    Some(cancelled) if waiting_differs(cancelled.item(1), freeing.beside) => {
                        // The failed condition answered with the pool record: no read needed.
                        return Ok(ReleaseAttempt {
                            released: false,
                            draining: false,
                            waiters_first: true,
                            pool: cancelled.item(1).map(pool_record).transpose()?,
                            app,
                        });
                    }
                    Some(_) => (self.remove_uncounted(pool, id, None).await?, false),
                };
            return Ok(ReleaseAttempt {
                released,
                draining,
                waiters_first: false,
                pool: self.read_pool(pool).await?,
                app,
            });
        }
        Err(StoreError::Contended {
            operation: "release",
            attempts: 3,
        })
    }

    /// An update of one lease item that answers with the item as it is afterwards.
    fn lease_update(
        &self,
        pool: &PoolName,
        id: &LeaseId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(pool, id)))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
    }

    /// Sends a lease update: the lease afterwards, or `None` when its condition failed.
    async fn updated_lease(
        &self,
        pool: &PoolName,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        operation: &'static str,
    ) -> Result<Option<Lease>, StoreError> {
        match update.send().await {
            Ok(out) => out
                .attributes()
                .map(|item| lease_from(pool, item))
                .transpose(),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::service(operation, e)),
        }
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
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn pool(&self, pool: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
        self.read_pool(pool).await
    }

    async fn put_pool(
        &self,
        pool: &PoolName,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, StoreError> {
        self.write_pool(pool, budget, apps).await
    }

    async fn delete_pool(&self, pool: &PoolName) -> Result<bool, StoreError> {
        let existed = self.read_pool(pool).await?.is_some();
        // Close the pool first: a grant's condition requires it open, so no lease can commit
        // after this point, and every lease that committed before it is found by the sweep
        // below (a consistent query). Without it, a grant landing between the sweep and the
        // deletion of the pool record would leave a lease record without its pool.
        if existed {
            let closed = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::pool_key(pool)))
                .update_expression("SET closing = :yes")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await;
            match closed {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(StoreError::service("UpdateItem(close)", e)),
            }
        }
        // Leases next, so that a crash half way leaves a (closed) pool record, retried by the
        // next Delete, rather than orphaned leases without one.
        let mut keys: Vec<Item> = self
            .leases(pool)
            .await?
            .iter()
            .map(|lease| Self::lease_key(pool, &lease.id))
            .collect();
        keys.extend(
            self.waiters(pool)
                .await?
                .iter()
                .map(|w| Self::waiter_key(pool, &w.id)),
        );
        for key in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
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

    async fn grant(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
        seen: Option<&PoolRecord>,
    ) -> Result<GrantAttempt, StoreError> {
        self.grant_transaction(lease, beside, seen).await
    }

    async fn renew(&self, existing: &Lease, expires_at: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&existing.pool, &existing.id)))
            .update_expression("SET expiresAt = :new, grantedAt = :now REMOVE draining")
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

    async fn release(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.release_where(pool, id, "attribute_exists(pk)", None, freeing)
            .await
    }

    async fn release_settled(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.release_where(
            pool,
            id,
            "attribute_exists(pk) AND attribute_not_exists(draining)",
            None,
            freeing,
        )
        .await
    }

    async fn release_unclaimed(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        token: &TaskToken,
        freeing: Freeing<'_>,
    ) -> Result<ReleaseAttempt, StoreError> {
        self.release_where(pool, id, "handedTo = :token", Some(token), freeing)
            .await
    }

    async fn claim(&self, lease: &Lease, from: &TaskToken) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(&lease.pool, &lease.id)))
            .update_expression("REMOVE handedTo")
            .condition_expression("handedTo = :from")
            .expression_attribute_values(":from", s(from.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(claim)", e)),
        }
    }

    async fn drain(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        expires_by: i64,
    ) -> Result<Option<Lease>, StoreError> {
        // Shorten and mark in one conditional write; a lease that already expires sooner is
        // only marked (DynamoDB has no min(), hence the second, rarer write).
        let shorten = self
            .lease_update(pool, id)
            .update_expression("SET expiresAt = :by, draining = :yes")
            .condition_expression("attribute_exists(pk) AND expiresAt > :by")
            .expression_attribute_values(":by", n(expires_by));
        if let Some(lease) = self
            .updated_lease(pool, shorten, "UpdateItem(drain)")
            .await?
        {
            return Ok(Some(lease));
        }
        let mark = self
            .lease_update(pool, id)
            .update_expression("SET draining = :yes")
            .condition_expression("attribute_exists(pk)");
        self.updated_lease(pool, mark, "UpdateItem(drain)").await
    }

    async fn lease(&self, pool: &PoolName, id: &LeaseId) -> Result<Option<Lease>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(pool, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(lease)", e))?;
        out.item().map(|item| lease_from(pool, item)).transpose()
    }

    async fn leases(&self, pool: &PoolName) -> Result<Vec<Lease>, StoreError> {
        self.query_prefix(pool, LEASE_PREFIX)
            .await?
            .iter()
            .map(|item| lease_from(pool, item))
            .collect()
    }

    async fn reclaim(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
    ) -> Result<ReclaimAttempt, StoreError> {
        let items = vec![
            self.owned_delete(
                Self::lease_key(&lease.pool, &lease.id),
                "expiresAt = :expected",
                lease.app.as_ref(),
                &[(":expected", n(lease.expires_at))],
            ),
            self.counter(
                &lease.pool,
                &Counter::new(-1, 0, "attribute_exists(pk) AND inUse > :zero")
                    .beside(beside)
                    .app(lease.app.as_ref(), -1, 0),
            ),
        ];
        match self.transact("TransactWriteItems(reclaim)", items).await? {
            None => Ok(ReclaimAttempt::Reclaimed),
            // Gone or renewed meanwhile: not ours to reclaim.
            Some(cancelled) if cancelled.failed(0) => Ok(ReclaimAttempt::Kept),
            Some(cancelled) if waiting_differs(cancelled.item(1), beside) => {
                Ok(ReclaimAttempt::WaitersFirst)
            }
            Some(_) => Ok(
                if self
                    .remove_uncounted(&lease.pool, &lease.id, Some(lease.expires_at))
                    .await?
                {
                    ReclaimAttempt::Reclaimed
                } else {
                    ReclaimAttempt::Kept
                },
            ),
        }
    }

    async fn set_in_use(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: &Counts,
    ) -> Result<bool, StoreError> {
        self.write_counts(pool, seen, actual).await
    }

    async fn enqueue(&self, waiter: &Waiter, capped: bool) -> Result<EnqueueAttempt, StoreError> {
        let pool = &waiter.pool;
        let mut item = Self::waiter_key(pool, &waiter.id);
        item.insert("leaseId".into(), s(waiter.id.as_str()));
        item.insert("taskToken".into(), s(waiter.task_token.as_str()));
        item.insert("enqueuedAtMs".into(), n(waiter.enqueued_at_ms));
        item.insert("deadline".into(), n(waiter.deadline));
        item.insert("ttlSeconds".into(), n(i64::from(waiter.ttl_seconds)));
        if let Some(app) = &waiter.app {
            item.insert("app".into(), s(app.as_str()));
        }
        let no_lease = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(pool, &waiter.id)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table, key and condition are set");
        let condition = enqueue_condition(waiter.app.is_some(), capped);
        let items = vec![
            self.counter(
                pool,
                &Counter::new(0, 1, condition).app(waiter.app.as_ref(), 0, 1),
            ),
            self.put_new(item),
            TransactWriteItem::builder()
                .condition_check(no_lease)
                .build(),
        ];
        match self.transact("TransactWriteItems(enqueue)", items).await? {
            None => Ok(EnqueueAttempt::Enqueued),
            Some(cancelled) if cancelled.failed(2) => Ok(EnqueueAttempt::LeaseExists),
            Some(cancelled) if cancelled.failed(1) => {
                // Already queued: carry the new token (a retried task has a new one) and
                // keep the place.
                let update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::waiter_key(pool, &waiter.id)))
                    .update_expression("SET taskToken = :token, deadline = :deadline")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":token", s(waiter.task_token.as_str()))
                    .expression_attribute_values(":deadline", n(waiter.deadline))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await;
                match update {
                    Ok(out) => match out.attributes() {
                        Some(item) => Ok(EnqueueAttempt::AlreadyWaiting(waiter_from(pool, item)?)),
                        None => Err(StoreError::Malformed(
                            "UpdateItem returned no attributes".into(),
                        )),
                    },
                    // Served or withdrawn in between: ask again.
                    Err(e) if is_condition_failure(&e) => Ok(EnqueueAttempt::SlotFree),
                    Err(e) => Err(StoreError::service("UpdateItem(enqueue)", e)),
                }
            }
            Some(cancelled) => Ok(match cancelled.item(0) {
                Some(record) if record.contains_key("closing") => EnqueueAttempt::PoolMissing,
                Some(_) => EnqueueAttempt::SlotFree,
                None => EnqueueAttempt::PoolMissing,
            }),
        }
    }

    async fn waiters(&self, pool: &PoolName) -> Result<Vec<Waiter>, StoreError> {
        self.query_prefix(pool, WAIT_PREFIX)
            .await?
            .iter()
            .map(|item| waiter_from(pool, item))
            .collect()
    }

    async fn queue(
        &self,
        pool: &PoolName,
    ) -> Result<(Option<PoolRecord>, Vec<Waiter>), StoreError> {
        // One query of the whole partition ("#POOL" sorts before "LEASE#" and "WAIT#"): the
        // record and the waiters as of one moment; the lease items come along unused.
        let mut record = None;
        let mut waiters = Vec::new();
        for item in self.query_prefix(pool, "").await? {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == POOL_SK => record = Some(pool_record(&item)?),
                Some(AttributeValue::S(sk)) if sk.starts_with(WAIT_PREFIX) => {
                    waiters.push(waiter_from(pool, &item)?)
                }
                _ => {}
            }
        }
        Ok((record, waiters))
    }

    async fn hand_over(
        &self,
        source: SlotSource<'_>,
        waiter: &Waiter,
        lease: &Lease,
    ) -> Result<HandOver, StoreError> {
        let pool = &waiter.pool;
        let remove_waiter = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::waiter_key(pool, &waiter.id)))
            .condition_expression("taskToken = :token")
            .expression_attribute_values(":token", s(waiter.task_token.as_str()))
            .build()
            .expect("table and key are set");
        let mut items = vec![
            TransactWriteItem::builder().delete(remove_waiter).build(),
            self.lease_put(lease),
        ];
        // The slot leaves the source's application and joins the waiter's (within its max).
        let (from, counter) = match source {
            SlotSource::Release {
                id,
                settled,
                unclaimed,
                app,
            } => {
                let condition = match (settled, unclaimed) {
                    (_, Some(_)) => "handedTo = :expected",
                    (true, None) => "attribute_exists(pk) AND attribute_not_exists(draining)",
                    (false, None) => "attribute_exists(pk)",
                };
                let values: Vec<(&str, AttributeValue)> = unclaimed
                    .map(|t| vec![(":expected", s(t.as_str()))])
                    .unwrap_or_default();
                items.push(self.owned_delete(Self::lease_key(pool, id), condition, app, &values));
                (
                    app,
                    Counter::new(0, -1, "attribute_exists(pk) AND waiting > :zero"),
                )
            }
            SlotSource::Reclaim(expired) => {
                items.push(self.owned_delete(
                    Self::lease_key(pool, &expired.id),
                    "expiresAt = :expected",
                    expired.app.as_ref(),
                    &[(":expected", n(expired.expires_at))],
                ));
                (
                    expired.app.as_ref(),
                    Counter::new(0, -1, "attribute_exists(pk) AND waiting > :zero"),
                )
            }
            SlotSource::Free => (
                None,
                Counter::new(
                    1,
                    -1,
                    "attribute_exists(pk) AND inUse < budget AND waiting > :zero",
                ),
            ),
        };
        let counter =
            counter
                .app(from, -1, 0)
                .app(lease.app.as_ref(), 1, 0)
                .app(waiter.app.as_ref(), 0, -1);
        items.push(self.counter(pool, &counter));
        let pool_index = items.len() - 1;
        match self
            .transact("TransactWriteItems(hand over)", items)
            .await?
        {
            None => Ok(HandOver::Done),
            Some(cancelled) if cancelled.failed(0) => Ok(HandOver::WaiterGone),
            Some(cancelled) if cancelled.failed(1) => {
                // The waiter's id holds a lease already: it is not waiting for one.
                self.withdraw(pool, &waiter.id, waiter.app.as_ref()).await?;
                Ok(HandOver::WaiterGone)
            }
            Some(cancelled) if pool_index == 3 && cancelled.failed(2) => {
                let named = match source {
                    SlotSource::Release { app, .. } => app.cloned(),
                    SlotSource::Reclaim(expired) => expired.app.clone(),
                    SlotSource::Free => None,
                };
                match cancelled.item(2) {
                    Some(item) if app_of(item)? != named => Ok(HandOver::SourceApp(app_of(item)?)),
                    item => Ok(HandOver::SourceGone {
                        draining: item.is_some_and(|i| {
                            matches!(i.get("draining"), Some(AttributeValue::Bool(true)))
                        }),
                    }),
                }
            }
            Some(cancelled) => Ok(match cancelled.item(pool_index) {
                None => HandOver::PoolMissing,
                // The waiter's application reached its max meanwhile: not this waiter now.
                Some(item)
                    if lease.app.as_ref().is_some_and(|app| {
                        pool_record(item)
                            .ok()
                            .and_then(|r| r.apps.get(app).map(|a| a.in_use >= a.max))
                            .unwrap_or(false)
                    }) =>
                {
                    HandOver::WaiterGone
                }
                // The waiting counter drifted to 0 (a repair will fix it) or no slot is free.
                Some(_) => HandOver::SourceGone { draining: false },
            }),
        }
    }

    async fn withdraw(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        app: Option<&AppName>,
    ) -> Result<bool, StoreError> {
        let mut app = app.cloned();
        for _ in 0..3 {
            let items = vec![
                self.owned_delete(
                    Self::waiter_key(pool, id),
                    "attribute_exists(pk)",
                    app.as_ref(),
                    &[],
                ),
                self.counter(
                    pool,
                    &Counter::new(0, -1, "attribute_exists(pk) AND waiting > :zero").app(
                        app.as_ref(),
                        0,
                        -1,
                    ),
                ),
            ];
            return match self.transact("TransactWriteItems(withdraw)", items).await? {
                None => Ok(true),
                Some(cancelled) if cancelled.failed(0) => match cancelled.item(0) {
                    // Waiting for another application: again with that one.
                    Some(item) if app_of(item)? != app => {
                        app = app_of(item)?;
                        continue;
                    }
                    _ => Ok(false),
                },
                // The counter is already 0 (drift, or the pool is gone): remove the record alone.
                Some(_) => {
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(Self::waiter_key(pool, id)))
                        .send()
                        .await
                        .map_err(|e| StoreError::service("DeleteItem(withdraw)", e))?;
                    Ok(true)
                }
            };
        }
        Err(StoreError::Contended {
            operation: "withdraw",
            attempts: 3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
