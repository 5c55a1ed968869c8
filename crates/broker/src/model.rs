//! Pools, leases and the rules their names follow.

use crate::error::BrokerError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Longest pool name accepted (it is also a CloudWatch dimension value, limit 1024).
pub const MAX_POOL_NAME: usize = 128;
/// Longest lease id accepted; execution ARNs are well under this.
pub const MAX_LEASE_ID: usize = 512;

/// A validated pool name: 1 to 128 characters of `A-Z a-z 0-9 _ . -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PoolName(String);

impl PoolName {
    pub fn parse(raw: &str) -> Result<Self, BrokerError> {
        if raw.is_empty() || raw.len() > MAX_POOL_NAME {
            return Err(BrokerError::InvalidInput(format!(
                "pool must be 1 to {MAX_POOL_NAME} characters long"
            )));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(BrokerError::InvalidInput(format!(
                "pool may contain only letters, digits, '_', '.' and '-', not {bad:?}"
            )));
        }
        Ok(PoolName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated lease id: 1 to 512 printable characters (a workflow passes its execution ARN).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LeaseId(String);

impl LeaseId {
    pub fn parse(raw: &str) -> Result<Self, BrokerError> {
        if raw.is_empty() || raw.len() > MAX_LEASE_ID {
            return Err(BrokerError::InvalidInput(format!(
                "leaseId must be 1 to {MAX_LEASE_ID} characters long"
            )));
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err(BrokerError::InvalidInput(
                "leaseId must not contain control characters".into(),
            ));
        }
        Ok(LeaseId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest application name accepted (a CloudWatch dimension value and a DynamoDB map key).
pub const MAX_APP_NAME: usize = 64;
/// Most applications one pool may divide its budget between: every one of them is named in
/// the conditions of a grant, and DynamoDB bounds a condition's length.
pub const MAX_APPS: usize = 16;

/// A validated application name: 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    pub fn parse(raw: &str) -> Result<Self, BrokerError> {
        if raw.is_empty() || raw.len() > MAX_APP_NAME {
            return Err(BrokerError::InvalidInput(format!(
                "app must be 1 to {MAX_APP_NAME} characters long"
            )));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(BrokerError::InvalidInput(format!(
                "app may contain only letters, digits, '_', '.' and '-', not {bad:?}"
            )));
        }
        Ok(AppName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One application's share of a pool, as configured (the seed's `Applications` property).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppShare {
    pub name: AppName,
    /// Connections the application can always get: when it is below this and waits, the next
    /// freed slot is its, before any borrower's.
    pub reserved: u32,
    /// Its ceiling; `None` means the pool's budget.
    pub max: Option<u32>,
    /// Its weight when slots are shared out above the reservations (default 1).
    pub weight: u32,
}

/// One application's share and counters, as the pool record keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    pub reserved: u32,
    pub max: u32,
    pub weight: u32,
    /// Lease records of this application counted against the pool.
    pub in_use: u32,
    /// Waiter records of this application.
    pub waiting: u32,
    /// Removed from the configuration while it still held leases or waiters: it takes no new
    /// slot (its `max` is 0) and is dropped once its counters are 0.
    pub retired: bool,
}

impl AppState {
    /// Slots it may still take before its ceiling.
    pub fn headroom(&self) -> u32 {
        self.max.saturating_sub(self.in_use)
    }

    /// Slots it holds beyond its reservation (lent to it by the pool).
    pub fn borrowed(&self) -> u32 {
        self.in_use.saturating_sub(self.reserved)
    }
}

/// The applications of a pool, by name.
pub type Apps = BTreeMap<AppName, AppState>;

/// One granted lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pool: PoolName,
    pub id: LeaseId,
    /// Epoch seconds when the lease was granted.
    pub granted_at: i64,
    /// Epoch seconds after which the lease may be reclaimed.
    pub expires_at: i64,
    /// Its holder has ended (aborted, timed out, or lost track of its query), but a query it
    /// started may still hold a database connection: the slot stays counted until the lease
    /// expires (never earlier), and only reclaim frees it.
    pub draining: bool,
    /// The task token a hand-over gave this lease to, until its holder claims it: a hand-over
    /// whose task turns out gone gives the lease back only while it is still unclaimed, so a
    /// new round of the same request (a new token) that found the lease keeps it.
    pub handed_to: Option<TaskToken>,
    /// The application it counts against, on a pool that divides its budget.
    pub app: Option<AppName>,
}

impl Lease {
    /// A lease is live while `now` is before its expiry.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// Longest task token accepted (Step Functions' own limit).
pub const MAX_TASK_TOKEN: usize = 2048;

/// A request queued for a slot: when a slot comes back, it becomes a lease with the same id and
/// its task is completed through `task_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub pool: PoolName,
    pub id: LeaseId,
    /// The callback token of the waiting Step Functions task.
    pub task_token: TaskToken,
    /// Epoch milliseconds when it was first enqueued: the queue's order (then the id).
    pub enqueued_at_ms: i64,
    /// Epoch seconds after which its task has timed out: it is skipped and removed.
    pub deadline: i64,
    /// Lifetime of the lease it gets, in seconds.
    pub ttl_seconds: u32,
    /// The application it waits for, on a pool that divides its budget.
    pub app: Option<AppName>,
}

impl Waiter {
    /// Whether its task may still be waiting at `now` (epoch seconds).
    pub fn is_live(&self, now: i64) -> bool {
        now < self.deadline
    }

    /// The queue's order: first enqueued first, ties broken by id.
    pub fn queue_order(a: &Waiter, b: &Waiter) -> std::cmp::Ordering {
        (a.enqueued_at_ms, &a.id).cmp(&(b.enqueued_at_ms, &b.id))
    }
}

/// A validated task token: 1 to 2048 characters, none of them whitespace or control characters
/// (Step Functions' tokens are opaque printable text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskToken(String);

impl TaskToken {
    pub fn parse(raw: &str) -> Result<Self, BrokerError> {
        if raw.is_empty() || raw.len() > MAX_TASK_TOKEN {
            return Err(BrokerError::InvalidInput(format!(
                "taskToken must be 1 to {MAX_TASK_TOKEN} characters long"
            )));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(BrokerError::InvalidInput(
                "taskToken must not contain whitespace or control characters".into(),
            ));
        }
        Ok(TaskToken(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The pool record: its budget and how many lease records currently count against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    pub budget: u32,
    pub in_use: u32,
    /// Moves with every change of `in_use` (grant, release, reclaim, repair). A grant and a
    /// release leave `in_use` where it was but move this twice, which is how an audit tells a
    /// quiet pool from a busy one. Records written before it existed read as 0.
    pub version: u64,
    /// Waiter records counted against the pool (requests queued for a slot). A grant commits
    /// only while this is 0, and a waiter is recorded only while no slot is free or others
    /// wait. Records written before the queue existed read as 0.
    pub waiting: u32,
    /// The applications the budget is divided between, with their counters (empty: one budget
    /// for everybody). Retired applications stay until their counters are 0.
    pub apps: Apps,
}

impl PoolRecord {
    /// The record once a new lease of `app` is counted: one more in use, for the pool and
    /// for the application (when the record names it).
    pub fn with_grant(&self, app: Option<&AppName>) -> PoolRecord {
        let mut after = self.clone();
        after.in_use += 1;
        after.version += 1;
        if let Some(state) = app.and_then(|a| after.apps.get_mut(a)) {
            state.in_use += 1;
        }
        after
    }

    /// A record with no applications.
    pub fn new(budget: u32, in_use: u32, version: u64, waiting: u32) -> Self {
        PoolRecord {
            budget,
            in_use,
            version,
            waiting,
            apps: Apps::new(),
        }
    }

    /// Free slots; zero when the budget was lowered below the slots in use.
    pub fn remaining(&self) -> u32 {
        self.budget.saturating_sub(self.in_use)
    }

    /// Whether the budget is divided between applications (an acquire must name one).
    pub fn shared(&self) -> bool {
        self.apps.values().any(|a| !a.retired)
    }
}

/// Longest lease: the longest a Lambda invocation can run (15 minutes).
pub const MAX_TTL_SECONDS: u32 = 900;

/// A request's pool, lease id and lease lifetime, validated.
pub(crate) fn checked(
    pool: &str,
    lease_id: &str,
    ttl_seconds: u32,
) -> Result<(PoolName, LeaseId, i64), BrokerError> {
    let pool = PoolName::parse(pool)?;
    let id = LeaseId::parse(lease_id)?;
    if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        return Err(BrokerError::InvalidInput(format!(
            "ttlSeconds must be between 1 and {MAX_TTL_SECONDS}"
        )));
    }
    Ok((pool, id, i64::from(ttl_seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_follow_the_documented_alphabet() {
        assert!(PoolName::parse("orders-db_1.primary").is_ok());
        for bad in ["", "has space", "slash/", "ünicode", &"x".repeat(129)] {
            let err = PoolName::parse(bad).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad:?}");
        }
    }

    #[test]
    fn lease_ids_accept_execution_arns_and_reject_control_characters() {
        let arn = "arn:aws:states:us-east-1:123456789012:execution:Connection:4f1c";
        assert_eq!(LeaseId::parse(arn).unwrap().as_str(), arn);
        assert!(LeaseId::parse("a\nb").is_err());
        assert!(LeaseId::parse("").is_err());
        assert!(LeaseId::parse(&"x".repeat(513)).is_err());
    }

    #[test]
    fn task_tokens_are_printable_and_bounded() {
        assert!(TaskToken::parse("AQCEAAAAKgAAAAMAAAAA+/=abc").is_ok());
        for bad in ["", "has space", "line\nbreak", &"t".repeat(2049)] {
            assert_eq!(TaskToken::parse(bad).unwrap_err().name(), "InvalidInput");
        }
    }

    #[test]
    fn remaining_never_underflows_after_a_budget_cut() {
        let record = PoolRecord::new(2, 5, 0, 0);
        assert_eq!(record.remaining(), 0);
    }
}
