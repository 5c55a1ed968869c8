//! The pool-record writes of the DynamoDB adapter: the grant, counter changes inside
//! transactions (the pool's and its applications'), deletions owned by an application, the
//! pool's budget and applications, and the audit's repair.

use super::items::{apps_item, backoff, epoch_seconds, is_condition_failure, n, pool_record, s};
use super::{
    CONFLICT_ATTEMPTS, DynamoStore, Item, NOBODY_WAITS, UNDIVIDED, belongs_to, lease_from,
};
use crate::error::StoreError;
use crate::model::{AppName, AppShare, Lease, LeaseId, PoolName, PoolRecord};
use crate::shares;
use crate::store::{Beside, Counts, GrantAttempt};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use std::collections::HashMap;

/// A change of the pool record's counters, as one update of a transaction: the pool's
/// `inUse` and `waiting` and those of its applications, each lowering conditional on the
/// counter being above 0, each raise of an application's `inUse` on its `max`.
pub(super) struct Counter<'a> {
    in_use: i64,
    waiting: i64,
    /// (application, in-use change, waiting change)
    apps: Vec<(&'a AppName, i64, i64)>,
    condition: String,
    /// The queue there must be: `Some(None)` nobody waits, `Some(Some(b))` as `b` says
    /// (exactly that queue, or only waiters at their application's max); `None`: no condition
    /// on the queue.
    beside: Option<Option<&'a Beside>>,
}

impl<'a> Counter<'a> {
    pub(super) fn new(in_use: i64, waiting: i64, condition: impl Into<String>) -> Self {
        Counter {
            in_use,
            waiting,
            apps: Vec::new(),
            condition: condition.into(),
            beside: None,
        }
    }

    pub(super) fn beside(mut self, beside: Option<&'a Beside>) -> Self {
        self.beside = Some(beside);
        self
    }

    pub(super) fn app(mut self, app: Option<&'a AppName>, in_use: i64, waiting: i64) -> Self {
        if let Some(app) = app
            && (in_use != 0 || waiting != 0)
        {
            match self.apps.iter_mut().find(|(a, ..)| *a == app) {
                Some(entry) => {
                    entry.1 += in_use;
                    entry.2 += waiting;
                }
                None => self.apps.push((app, in_use, waiting)),
            }
        }
        self
    }
}

impl DynamoStore {
    /// [`crate::store::LeaseStore::grant`]: one transaction; on success the pool is `seen`
    /// counted with the lease when given, read again otherwise.
    pub(super) async fn grant_transaction(
        &self,
        lease: &Lease,
        beside: Option<&Beside>,
        seen: Option<&PoolRecord>,
    ) -> Result<GrantAttempt, StoreError> {
        let open = "attribute_exists(pk) AND inUse < budget AND attribute_not_exists(closing)";
        let condition = match lease.app {
            Some(_) => open.to_owned(),
            None => format!("{open} AND {UNDIVIDED}"),
        };
        let items = vec![
            self.counter(
                &lease.pool,
                &Counter::new(1, 0, condition)
                    .beside(beside)
                    .app(lease.app.as_ref(), 1, 0),
            ),
            self.lease_put(lease),
        ];
        match self.transact("TransactWriteItems(grant)", items).await? {
            None if let Some(seen) = seen => {
                Ok(GrantAttempt::Granted(seen.with_grant(lease.app.as_ref())))
            }
            // The pool was deleted right after the grant: its deletion sweeps this lease too.
            None => Ok(match self.read_pool(&lease.pool).await? {
                Some(record) => GrantAttempt::Granted(record),
                None => GrantAttempt::PoolMissing,
            }),
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
                Some(record) if record.contains_key("closing") => Ok(GrantAttempt::PoolMissing),
                Some(record) => Ok(GrantAttempt::PoolFull(pool_record(record)?)),
                None => Ok(GrantAttempt::PoolMissing),
            },
        }
    }

    /// The transaction item of a [`Counter`] change of the pool record (which moves its
    /// version), answering with the record when a condition fails.
    pub(super) fn counter(&self, pool: &PoolName, change: &Counter<'_>) -> TransactWriteItem {
        let mut set = Vec::new();
        let mut add = vec!["counterVersion :one".to_owned()];
        let mut conditions = vec![change.condition.clone()];
        let mut values: Item = HashMap::from([(":one".to_owned(), n(1))]);
        let mut names: HashMap<String, String> = HashMap::new();
        if change.in_use != 0 {
            set.push("inUse = inUse + :inUse".to_owned());
            values.insert(":inUse".into(), n(change.in_use));
        }
        if change.waiting != 0 {
            add.push("waiting :waiting".to_owned());
            values.insert(":waiting".into(), n(change.waiting));
        }
        match change.beside {
            None => {}
            Some(None) => conditions.push(NOBODY_WAITS.to_owned()),
            Some(Some(Beside::Queue { version })) => {
                conditions.push(version_is(*version, ":besideVersion", &mut values));
            }
            Some(Some(Beside::Reserved { app })) => {
                names.insert("#reserved".into(), app.as_str().to_owned());
                conditions.push(
                    "apps.#reserved.inUse < apps.#reserved.reserved \
                     AND apps.#reserved.waiting = :zero"
                        .to_owned(),
                );
            }
            Some(Some(Beside::Capped { except, apps })) => {
                conditions.push("size(apps) = :apps".to_owned());
                values.insert(":apps".into(), n(apps.len() as i64));
                for (i, app) in apps.iter().enumerate() {
                    let path = format!("apps.#capped{i}");
                    names.insert(format!("#capped{i}"), app.as_str().to_owned());
                    conditions.push(if Some(app) == except.as_ref() {
                        format!("{path}.waiting = :zero")
                    } else {
                        format!("({path}.waiting = :zero OR {path}.inUse >= {path}.#max)")
                    });
                }
            }
        }
        for (i, (app, in_use, waiting)) in change.apps.iter().enumerate() {
            let path = format!("apps.#app{i}");
            names.insert(format!("#app{i}"), app.as_str().to_owned());
            if *in_use != 0 {
                set.push(format!("{path}.inUse = {path}.inUse + :app{i}InUse"));
                values.insert(format!(":app{i}InUse"), n(*in_use));
                conditions.push(if *in_use > 0 {
                    format!("{path}.inUse < {path}.#max")
                } else {
                    format!("{path}.inUse > :zero")
                });
            }
            if *waiting != 0 {
                set.push(format!("{path}.waiting = {path}.waiting + :app{i}Waiting"));
                values.insert(format!(":app{i}Waiting"), n(*waiting));
                if *waiting < 0 {
                    conditions.push(format!("{path}.waiting > :zero"));
                }
            }
        }
        let condition = conditions
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(" AND ");
        if condition.contains("#max") {
            names.insert("#max".into(), "max".into());
        }
        if condition.contains(":zero") {
            values.insert(":zero".to_owned(), n(0));
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression.push_str("SET ");
            expression.push_str(&set.join(", "));
            expression.push(' ');
        }
        expression.push_str("ADD ");
        expression.push_str(&add.join(", "));
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !names.is_empty() {
            update = update.set_expression_attribute_names(Some(names));
        }
        TransactWriteItem::builder()
            .update(update.build().expect("key, table and expression are set"))
            .build()
    }

    /// Deletes a lease or waiter item in a transaction when it meets `condition` and belongs
    /// to `app`, answering with the item when it does not. `token` fills `:token`.
    pub(super) fn owned_delete(
        &self,
        key: Item,
        condition: &str,
        app: Option<&AppName>,
        values: &[(&str, AttributeValue)],
    ) -> TransactWriteItem {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(format!("{condition} AND {}", belongs_to(app)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(app) = app {
            delete = delete.expression_attribute_values(":app", s(app.as_str()));
        }
        for (name, value) in values {
            delete = delete.expression_attribute_values(*name, value.clone());
        }
        TransactWriteItem::builder()
            .delete(delete.build().expect("table and key are set"))
            .build()
    }

    /// Creates the pool or changes its budget and applications (see
    /// [`crate::LeaseStore::put_pool`]).
    pub(super) async fn write_pool(
        &self,
        pool: &PoolName,
        budget: u32,
        apps: &[AppShare],
    ) -> Result<PoolRecord, StoreError> {
        let base = "SET budget = :budget, inUse = if_not_exists(inUse, :zero), \
                    waiting = if_not_exists(waiting, :zero), updatedAt = :now";
        for attempt in 0..CONFLICT_ATTEMPTS {
            let current = self.read_pool(pool).await?;
            let held = current.as_ref().map(|r| r.apps.clone()).unwrap_or_default();
            let merged = shares::merge(&held, budget, apps);
            let shared = merged.values().any(|a| !a.retired);
            let mut values: Item = HashMap::from([
                (":budget".to_owned(), n(i64::from(budget))),
                (":zero".to_owned(), n(0)),
                (":now".to_owned(), n(epoch_seconds())),
            ]);
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::pool_key(pool)))
                .return_values(ReturnValue::AllNew);
            if held.is_empty() && merged.is_empty() {
                // A pool without applications: a plain budget change, as it always was.
                request = request.update_expression(base);
            } else {
                // Applications are written whole, so the record must not have moved since it
                // was read (their counters are in it).
                request = request.update_expression(match (merged.is_empty(), shared) {
                    (true, _) => format!("{base} REMOVE apps, appsActive"),
                    (false, true) => format!("{base}, apps = :apps, appsActive = :yes"),
                    (false, false) => format!("{base}, apps = :apps REMOVE appsActive"),
                });
                if !merged.is_empty() {
                    values.insert(":apps".into(), apps_item(&merged));
                }
                if shared {
                    values.insert(":yes".into(), AttributeValue::Bool(true));
                }
                let condition = match &current {
                    None => "attribute_not_exists(pk)".to_owned(),
                    Some(seen) => {
                        values.insert(":seenInUse".into(), n(i64::from(seen.in_use)));
                        let version = version_is(seen.version, ":seenVersion", &mut values);
                        let waiting = if seen.waiting == 0 {
                            NOBODY_WAITS
                        } else {
                            values.insert(":seenWaiting".into(), n(i64::from(seen.waiting)));
                            "waiting = :seenWaiting"
                        };
                        format!("inUse = :seenInUse AND {version} AND {waiting}")
                    }
                };
                request = request.condition_expression(condition);
            }
            match request
                .set_expression_attribute_values(Some(values))
                .send()
                .await
            {
                Ok(out) => {
                    let item = out.attributes().ok_or_else(|| {
                        StoreError::Malformed("UpdateItem returned no attributes".into())
                    })?;
                    return pool_record(item);
                }
                // Moved since it was read: read again.
                Err(e) if is_condition_failure(&e) => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(StoreError::service("UpdateItem", e)),
            }
        }
        Err(StoreError::Contended {
            operation: "put pool",
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    /// Sets the counters an audit counted (see [`crate::LeaseStore::set_in_use`]).
    pub(super) async fn write_counts(
        &self,
        pool: &PoolName,
        seen: &PoolRecord,
        actual: &Counts,
    ) -> Result<bool, StoreError> {
        let mut version = Item::new();
        let version_unchanged = version_is(seen.version, ":version", &mut version);
        let mut set = vec![
            "inUse = :actual".to_owned(),
            "waiting = :waiting".to_owned(),
        ];
        let mut request = self.client.update_item();
        for (i, name) in seen.apps.keys().enumerate() {
            let (in_use, waiting) = actual.apps.get(name).copied().unwrap_or((0, 0));
            set.push(format!("apps.#app{i}.inUse = :app{i}InUse"));
            set.push(format!("apps.#app{i}.waiting = :app{i}Waiting"));
            request = request
                .expression_attribute_names(format!("#app{i}"), name.as_str())
                .expression_attribute_values(format!(":app{i}InUse"), n(i64::from(in_use)))
                .expression_attribute_values(format!(":app{i}Waiting"), n(i64::from(waiting)));
        }
        let request = request
            .table_name(&self.table)
            .set_key(Some(Self::pool_key(pool)))
            .update_expression(format!("SET {} ADD counterVersion :one", set.join(", ")))
            .condition_expression(format!(
                "inUse = :expected AND {version_unchanged} AND \
                 (attribute_not_exists(waiting) OR waiting = :seenWaiting)"
            ))
            .expression_attribute_values(":actual", n(i64::from(actual.in_use)))
            .expression_attribute_values(":waiting", n(i64::from(actual.waiting)))
            .expression_attribute_values(":seenWaiting", n(i64::from(seen.waiting)))
            .expression_attribute_values(":expected", n(i64::from(seen.in_use)))
            .expression_attribute_values(":one", n(1));
        let request = version
            .into_iter()
            .fold(request, |r, (k, v)| r.expression_attribute_values(k, v));
        let result = request.send().await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(audit)", e)),
        }
    }

    /// Removes a lease record whose slot cannot be uncounted (the pool is gone, or its counter
    /// is already 0 after drift or a repair), so that it can never be counted again. With
    /// `expires_at`, only if the record still expires then (it was not renewed meanwhile).
    pub(super) async fn remove_uncounted(
        &self,
        pool: &PoolName,
        id: &LeaseId,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        tracing::warn!(pool = %pool, lease = %id, "lease without a counted slot; removing record");
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::lease_key(pool, id)));
        let request = match expires_at {
            Some(at) => request
                .condition_expression("expiresAt = :expected")
                .expression_attribute_values(":expected", n(at)),
            None => request,
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(s)) if s.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::service("DeleteItem", e)),
        }
    }
}

/// The pool-record condition of an enqueue. Without an application: exactly when a grant of it
/// would fail (no slot free, or others wait). With one, `capped`: while it could take no slot
/// at all (the pool full or the application at its max). Otherwise whenever its application
/// exists; whether a free slot is its to take is the broker's choice (others' kept
/// reservations), so the broker looks again once the waiter is counted.
pub(super) fn enqueue_condition(for_app: bool, capped: bool) -> String {
    let open = "attribute_exists(pk) AND attribute_not_exists(closing)";
    match (for_app, capped) {
        (true, true) => format!(
            "{open} AND attribute_exists(apps.#app0) \
             AND (inUse >= budget OR apps.#app0.inUse >= apps.#app0.#max)"
        ),
        (true, false) => format!("{open} AND attribute_exists(apps.#app0)"),
        (false, _) => format!("{open} AND {UNDIVIDED} AND (inUse >= budget OR waiting > :zero)"),
    }
}

/// The condition that the pool record's counter version is still `version` (its value put in
/// `values` as `placeholder`). A record written before versions existed has none and matches
/// only while it still has none: the first counter change adds one.
fn version_is(version: u64, placeholder: &str, values: &mut Item) -> String {
    if version == 0 {
        "attribute_not_exists(counterVersion)".to_owned()
    } else {
        values.insert(placeholder.to_owned(), n(version as i64));
        format!("counterVersion = {placeholder}")
    }
}
