//! Conversions between the table's items and the model, and small helpers of the adapter.

use crate::error::StoreError;
use crate::model::{
    AppName, AppState, Apps, Lease, LeaseId, PoolName, PoolRecord, TaskToken, Waiter,
};
use crate::store::Beside;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Item;

pub(super) fn is_condition_failure(
    e: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().is_conditional_check_failed_exception())
}

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(raw)) => raw
            .parse()
            .map_err(|_| StoreError::Malformed(format!("{name} is not an integer: {raw}"))),
        _ => Err(StoreError::Malformed(format!(
            "missing number attribute {name}"
        ))),
    }
}

pub(super) fn count(item: &Item, name: &str) -> Result<u32, StoreError> {
    let value = number(item, name)?;
    u32::try_from(value).map_err(|_| StoreError::Malformed(format!("{name} out of range: {value}")))
}

pub(super) fn pool_record(item: &Item) -> Result<PoolRecord, StoreError> {
    let version = match item.get("counterVersion") {
        None => 0,
        Some(_) => u64::try_from(number(item, "counterVersion")?)
            .map_err(|_| StoreError::Malformed("counterVersion out of range".into()))?,
    };
    let waiting = match item.get("waiting") {
        None => 0,
        Some(_) => count(item, "waiting")?,
    };
    Ok(PoolRecord {
        budget: count(item, "budget")?,
        in_use: count(item, "inUse")?,
        version,
        waiting,
        apps: match item.get("apps") {
            None => Apps::new(),
            Some(AttributeValue::M(apps)) => apps_from(apps)?,
            Some(_) => return Err(StoreError::Malformed("apps is not a map".into())),
        },
    })
}

fn apps_from(apps: &Item) -> Result<Apps, StoreError> {
    let mut out = Apps::new();
    for (name, value) in apps {
        let AttributeValue::M(state) = value else {
            return Err(StoreError::Malformed(format!("apps.{name} is not a map")));
        };
        let name = AppName::parse(name).map_err(|e| StoreError::Malformed(e.to_string()))?;
        out.insert(
            name,
            AppState {
                reserved: count(state, "reserved")?,
                max: count(state, "max")?,
                weight: count(state, "weight")?,
                in_use: count(state, "inUse")?,
                waiting: count(state, "waiting")?,
                retired: matches!(state.get("retired"), Some(AttributeValue::Bool(true))),
            },
        );
    }
    Ok(out)
}

/// The `apps` map attribute of a pool record.
pub(super) fn apps_item(apps: &Apps) -> AttributeValue {
    AttributeValue::M(
        apps.iter()
            .map(|(name, state)| {
                let mut fields = Item::from([
                    ("reserved".to_owned(), n(i64::from(state.reserved))),
                    ("max".to_owned(), n(i64::from(state.max))),
                    ("weight".to_owned(), n(i64::from(state.weight))),
                    ("inUse".to_owned(), n(i64::from(state.in_use))),
                    ("waiting".to_owned(), n(i64::from(state.waiting))),
                ]);
                if state.retired {
                    fields.insert("retired".to_owned(), AttributeValue::Bool(true));
                }
                (name.as_str().to_owned(), AttributeValue::M(fields))
            })
            .collect(),
    )
}

/// Whether a pool record returned by a failed condition shows a queue other than `beside`.
pub(super) fn waiting_differs(record: Option<&Item>, beside: Option<&Beside>) -> bool {
    record
        .and_then(|item| pool_record(item).ok())
        .is_some_and(|r| !Beside::holds(beside, &r))
}

/// The `app` attribute of a lease or waiter item.
pub(super) fn app_of(item: &Item) -> Result<Option<AppName>, StoreError> {
    match item.get("app") {
        None => Ok(None),
        Some(AttributeValue::S(name)) => AppName::parse(name)
            .map(Some)
            .map_err(|e| StoreError::Malformed(e.to_string())),
        Some(_) => Err(StoreError::Malformed("app is not a string".into())),
    }
}

pub(super) fn waiter_from(pool: &PoolName, item: &Item) -> Result<Waiter, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.as_str()),
        _ => Err(StoreError::Malformed(format!("waiter item without {name}"))),
    };
    let malformed = |e: crate::error::BrokerError| StoreError::Malformed(e.to_string());
    Ok(Waiter {
        pool: pool.clone(),
        id: LeaseId::parse(text("leaseId")?).map_err(malformed)?,
        task_token: TaskToken::parse(text("taskToken")?).map_err(malformed)?,
        enqueued_at_ms: number(item, "enqueuedAtMs")?,
        deadline: number(item, "deadline")?,
        ttl_seconds: count(item, "ttlSeconds")?,
        app: app_of(item)?,
    })
}

pub(super) fn lease_from(pool: &PoolName, item: &Item) -> Result<Lease, StoreError> {
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
        draining: matches!(item.get("draining"), Some(AttributeValue::Bool(true))),
        handed_to: match item.get("handedTo") {
            Some(AttributeValue::S(token)) => {
                Some(TaskToken::parse(token).map_err(|e| StoreError::Malformed(e.to_string()))?)
            }
            _ => None,
        },
        app: app_of(item)?,
    })
}

pub(super) fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Full-jitter exponential backoff: uniformly random in [0, min(cap, base * 2^attempt)].
pub(super) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (10u64 << attempt.min(6)).min(500);
    Duration::from_millis(jitter(ceiling_ms + 1))
}

/// A cheap random number below `bound`; contention backoff needs spread, not cryptography.
pub(super) fn jitter(bound: u64) -> u64 {
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
