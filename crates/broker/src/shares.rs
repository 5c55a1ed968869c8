//! Applications sharing one pool: their configuration and who gets a freed slot.
//!
//! A pool may divide its budget between named applications. Each has a `reserved` share, a
//! `max` ceiling (default: the budget) and a `weight`. The rules, all enforced by the store's
//! conditions or by the choice below:
//!
//! - A lease counts against the pool and its application in one transaction: neither the
//!   budget nor the application's `max` can be exceeded.
//! - **Borrowing**: an application below its `max` may take a free slot that is unreserved or
//!   reserved by an application that is idle (holds no lease and does not wait). An active
//!   application's unused reserved slots stay free for its next requests, so an application
//!   running within its reservation never waits for a borrower; within its reservation an
//!   application may always take a free slot.
//! - **Giving back**: a freed slot goes to a waiting application that is below its reservation
//!   first (a slot lent while its owner was idle comes back at its holder's release; no
//!   running query is preempted), then to the waiting application with the lowest in-use /
//!   weight, ties to the oldest waiter; within one application, first come, first served.
//! - A newcomer takes a free slot only when it may (above) and no waiter may (each waiting
//!   application is at its `max`, or above its reservation beside slots others keep);
//!   otherwise it queues (or, polling, is refused) behind them.
//!
//! Who may take a slot depends on every application's counts, so the broker decides on the
//! pool record as read, and the store's conditions guard what must never break (the budget,
//! every `max`, and the queue it decided beside: either every waiting application still at its
//! `max`, which no other count can change, or exactly the queue it read, after which whoever
//! gave a slot back looks at the queue again, so that concurrent decisions never leave a waiter
//! beside a slot it may take; see `crate::store::Beside`).

use crate::error::BrokerError;
use crate::model::{AppName, AppShare, AppState, Apps, MAX_APPS, PoolName, PoolRecord, Waiter};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Checks a pool's applications against its budget: at most [`MAX_APPS`], unique names, a
/// weight of at least 1, `max` at least 1 and not below `reserved`, and reservations that fit
/// in the budget together.
pub fn validate(budget: u32, shares: &[AppShare]) -> Result<(), BrokerError> {
    let invalid = |why: String| Err(BrokerError::InvalidInput(why));
    if shares.len() > MAX_APPS {
        return invalid(format!(
            "a pool may name at most {MAX_APPS} applications, got {}",
            shares.len()
        ));
    }
    let mut names = BTreeSet::new();
    let mut reserved: u64 = 0;
    for share in shares {
        if !names.insert(&share.name) {
            return invalid(format!("application {} is named twice", share.name));
        }
        if share.weight == 0 {
            return invalid(format!(
                "application {}: weight must be at least 1",
                share.name
            ));
        }
        if let Some(max) = share.max {
            if max == 0 {
                return invalid(format!(
                    "application {}: max must be at least 1",
                    share.name
                ));
            }
            if max < share.reserved {
                return invalid(format!(
                    "application {}: max ({max}) is below reserved ({})",
                    share.name, share.reserved
                ));
            }
        }
        reserved += u64::from(share.reserved);
    }
    if reserved > u64::from(budget) {
        return invalid(format!(
            "the reservations add up to {reserved}, above the budget of {budget}"
        ));
    }
    Ok(())
}

/// The applications of a pool after a configuration change: the configured ones with their
/// counters kept (live leases stay, like budget cuts); removed ones that still hold leases or
/// waiters are kept retired (no new slot) until their counters reach 0.
pub fn merge(current: &Apps, budget: u32, shares: &[AppShare]) -> Apps {
    let mut apps = Apps::new();
    for share in shares {
        let counters = current.get(&share.name).copied().unwrap_or_default();
        apps.insert(
            share.name.clone(),
            AppState {
                reserved: share.reserved,
                max: share.max.unwrap_or(budget),
                weight: share.weight,
                in_use: counters.in_use,
                waiting: counters.waiting,
                retired: false,
            },
        );
    }
    for (name, state) in current {
        if !apps.contains_key(name) && (state.in_use > 0 || state.waiting > 0) {
            apps.insert(
                name.clone(),
                AppState {
                    reserved: 0,
                    max: 0,
                    retired: true,
                    ..*state
                },
            );
        }
    }
    apps
}

/// The slot being handed on: an existing free one, or one a lease gives back (of an
/// application, or of none on a pool that was not divided when it was granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    Free,
    Lease(Option<&'a AppName>),
}

/// The pool as it is once `slot` is free: a lease's slot uncounted from the pool and its
/// application.
pub fn with_free(record: &PoolRecord, slot: Slot<'_>) -> PoolRecord {
    let mut view = record.clone();
    if let Slot::Lease(app) = slot {
        view.in_use = view.in_use.saturating_sub(1);
        if let Some(state) = app.and_then(|a| view.apps.get_mut(a)) {
            state.in_use = state.in_use.saturating_sub(1);
        }
    }
    view
}

/// Free slots an application above its reservation must leave alone: the unused reservations
/// of the other applications that are active (holding or waiting). An idle application's
/// reservation is lent; an active one's stays free for its next requests, so an application
/// running within its reservation never waits for a borrower.
fn kept_for_others(view: &PoolRecord, app: Option<&AppName>) -> u32 {
    view.apps
        .iter()
        .filter(|(name, state)| {
            Some(*name) != app && !state.retired && (state.in_use > 0 || state.waiting > 0)
        })
        .map(|(_, state)| state.reserved.saturating_sub(state.in_use))
        .sum()
}

/// How many of `view`'s free slots requests of `app` may take now: within its `max`, and
/// beyond its reservation only slots no active application keeps. On a pool without
/// applications: every free slot. (The per-application `RemainingConnections` gauge.)
pub fn takeable(view: &PoolRecord, app: Option<&AppName>) -> u32 {
    let free = view.remaining();
    if view.apps.is_empty() {
        return free;
    }
    match app.map(|a| view.apps.get(a)) {
        // Retired (max 0) or unknown.
        Some(None) => 0,
        Some(Some(state)) if state.in_use < state.reserved => free.min(state.headroom()),
        Some(Some(state)) => free
            .saturating_sub(kept_for_others(view, app))
            .min(state.headroom()),
        // A waiter from before the pool was divided.
        None => free.saturating_sub(kept_for_others(view, None)),
    }
}

/// Whether a request of `app` is within its application's reservation on `view`: it holds
/// fewer slots than it reserves (and than its `max`), nobody of it waits, and a slot is free.
/// Such a request takes a free slot whoever else waits (see
/// [`crate::store::Beside::Reserved`]).
pub fn within_reservation(view: &PoolRecord, app: &AppName) -> bool {
    view.remaining() > 0
        && view
            .apps
            .get(app)
            .is_some_and(|a| !a.retired && a.in_use < a.reserved.min(a.max) && a.waiting == 0)
}

/// Whether a request of `app` may take one of `view`'s free slots now ([`takeable`]).
pub fn may_take(view: &PoolRecord, app: Option<&AppName>) -> bool {
    takeable(view, app) > 0
}

/// Whether a request counted in `record`'s queue may take one of its free slots, as its
/// counters show: false when no slot is free, nobody waits, or every waiter belongs to an
/// application that may take none ([`may_take`]). Waiters of no named application (from
/// before the pool was divided) count as able to.
pub fn queue_may_take(record: &PoolRecord) -> bool {
    if record.remaining() == 0 || record.waiting == 0 {
        return false;
    }
    let named: u32 = record.apps.values().map(|a| a.waiting).sum();
    record.apps.is_empty()
        || named != record.waiting
        || record
            .apps
            .iter()
            .any(|(name, state)| state.waiting > 0 && may_take(record, Some(name)))
}

/// An application's standing in the choice: its name, in-use count and share; `None` for a
/// waiter from before the pool was divided.
type Standing<'a> = Option<(&'a AppName, &'a AppState)>;

/// The waiter a slot goes to: an index into `waiters` (live, in queue order), or `None` when
/// none of them may take it (see [`may_take`]), on the pool as it is once `slot` is free.
///
/// On a pool without applications, the oldest waiter.
pub fn pick(record: &PoolRecord, waiters: &[Waiter], slot: Slot<'_>) -> Option<usize> {
    if record.apps.is_empty() {
        return (!waiters.is_empty()).then_some(0);
    }
    let view = with_free(record, slot);
    // The head (oldest waiter) of each application that may take the slot.
    let mut heads: Vec<(usize, Standing)> = Vec::new();
    for (index, waiter) in waiters.iter().enumerate() {
        let app = waiter.app.as_ref();
        if heads
            .iter()
            .any(|(_, other)| other.map(|(name, _)| name) == app)
        {
            continue;
        }
        if !may_take(&view, app) {
            continue;
        }
        let entry = app.and_then(|a| view.apps.get_key_value(a));
        heads.push((index, entry));
    }
    let below_reservation =
        |e: &Standing| e.is_some_and(|(_, state)| state.in_use < state.reserved);
    heads
        .iter()
        .min_by(|(ia, a), (ib, b)| {
            // Reservation owners first, in queue order.
            match (below_reservation(a), below_reservation(b)) {
                (true, false) => return Ordering::Less,
                (false, true) => return Ordering::Greater,
                (true, true) => return ia.cmp(ib),
                (false, false) => {}
            }
            // Then the lowest in-use / weight (cross-multiplied), then the oldest.
            let share = |e: &Standing| {
                e.map_or((0u64, 1u64), |(_, state)| {
                    (u64::from(state.in_use), u64::from(state.weight.max(1)))
                })
            };
            let ((ua, wa), (ub, wb)) = (share(a), share(b));
            (ua * wb).cmp(&(ub * wa)).then(ia.cmp(ib))
        })
        .map(|(index, _)| *index)
}

/// The applications a pool names, for error messages.
pub(crate) fn names(record: &PoolRecord) -> String {
    record
        .apps
        .iter()
        .filter(|(_, a)| !a.retired)
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn unknown_app(pool: &PoolName, app: &AppName, record: &PoolRecord) -> BrokerError {
    BrokerError::InvalidInput(format!(
        "pool {pool} has no application {app} (it has: {})",
        names(record)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LeaseId, PoolName, TaskToken};

    fn share(name: &str, reserved: u32, max: Option<u32>, weight: u32) -> AppShare {
        AppShare {
            name: AppName::parse(name).unwrap(),
            reserved,
            max,
            weight,
        }
    }

    fn record(budget: u32, apps: &[(&str, u32, u32, u32, u32)]) -> PoolRecord {
        // (name, reserved, max, weight, in_use)
        let mut record = PoolRecord::new(budget, 0, 0, 0);
        for (name, reserved, max, weight, in_use) in apps {
            record.in_use += in_use;
            record.apps.insert(
                AppName::parse(name).unwrap(),
                AppState {
                    reserved: *reserved,
                    max: *max,
                    weight: *weight,
                    in_use: *in_use,
                    ..AppState::default()
                },
            );
        }
        record
    }

    fn waiter(id: &str, app: &str, at: i64) -> Waiter {
        Waiter {
            pool: PoolName::parse("db").unwrap(),
            id: LeaseId::parse(id).unwrap(),
            task_token: TaskToken::parse(&format!("t-{id}")).unwrap(),
            enqueued_at_ms: at,
            deadline: i64::MAX,
            ttl_seconds: 60,
            app: Some(AppName::parse(app).unwrap()),
        }
    }

    #[test]
    fn bad_shares_are_refused_with_the_reason() {
        let cases = [
            (
                vec![share("a", 6, None, 1), share("b", 5, None, 1)],
                "add up to 11",
            ),
            (vec![share("a", 3, Some(2), 1)], "below reserved"),
            (vec![share("a", 1, None, 0)], "weight"),
            (
                vec![share("a", 1, None, 1), share("a", 1, None, 1)],
                "twice",
            ),
            (vec![share("a", 0, Some(0), 1)], "max must be at least 1"),
        ];
        for (shares, why) in cases {
            let err = validate(10, &shares).unwrap_err();
            assert_eq!(err.name(), "InvalidInput");
            assert!(err.to_string().contains(why), "{err}");
        }
        assert!(validate(10, &[share("a", 6, None, 1), share("b", 4, Some(10), 2)]).is_ok());
    }

    #[test]
    fn a_reconfiguration_keeps_counters_and_retires_busy_applications() {
        let before = record(
            10,
            &[
                ("a", 2, 10, 1, 3),
                ("gone", 1, 10, 1, 1),
                ("idle", 1, 10, 1, 0),
            ],
        )
        .apps;
        let after = merge(&before, 8, &[share("a", 1, None, 3)]);
        let a = after[&AppName::parse("a").unwrap()];
        assert_eq!((a.reserved, a.max, a.weight, a.in_use), (1, 8, 3, 3));
        let gone = after[&AppName::parse("gone").unwrap()];
        assert!(gone.retired && gone.max == 0 && gone.in_use == 1);
        assert!(!after.contains_key(&AppName::parse("idle").unwrap()));
    }

    #[test]
    fn a_reservation_owner_is_served_before_older_borrowers() {
        // steady holds 1 of its 4 reserved; hot borrows 9 of 10 and waits for more.
        let r = record(10, &[("steady", 4, 10, 1, 1), ("hot", 0, 10, 1, 9)]);
        let waiters = [waiter("h1", "hot", 1), waiter("s1", "steady", 2)];
        let hot = AppName::parse("hot").unwrap();
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&hot))), Some(1));
    }

    #[test]
    fn an_active_owner_keeps_its_unused_reservation_and_an_idle_one_lends_it() {
        // steady (reserved 4) holds 2 and so is active: of 4 free slots, 2 are kept for it.
        let r = record(10, &[("steady", 4, 10, 1, 2), ("hot", 0, 10, 1, 4)]);
        let hot = AppName::parse("hot").unwrap();
        assert!(may_take(&r, Some(&hot)));
        let r = record(10, &[("steady", 4, 10, 1, 2), ("hot", 0, 10, 1, 6)]);
        assert!(
            !may_take(&r, Some(&hot)),
            "only steady's kept slots are free"
        );
        let steady = AppName::parse("steady").unwrap();
        assert_eq!(
            (takeable(&r, Some(&hot)), takeable(&r, Some(&steady))),
            (0, 2)
        );
        // A hot waiter is not handed a free slot steady keeps, but one hot gives back is not
        // steady's to keep.
        let waiters = [waiter("h1", "hot", 1)];
        assert_eq!(pick(&r, &waiters, Slot::Free), None);
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&hot))), Some(0));
        // Idle, steady lends its whole reservation.
        let r = record(10, &[("steady", 4, 10, 1, 0), ("hot", 0, 10, 1, 9)]);
        assert!(may_take(&r, Some(&hot)));
    }

    #[test]
    fn among_borrowers_the_lowest_in_use_per_weight_goes_first_then_the_oldest() {
        let (a, b) = (AppName::parse("a").unwrap(), AppName::parse("b").unwrap());
        // After a's release: a 4/1 = 4, b 6/2 = 3 -> b although a waits longer.
        let r = record(10, &[("a", 0, 10, 1, 5), ("b", 0, 10, 2, 5 + 1)]);
        let r = PoolRecord { budget: 11, ..r };
        let waiters = [waiter("a1", "a", 1), waiter("b1", "b", 2)];
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&a))), Some(1));
        // Equal shares once b's slot is free (5 each): the oldest, whichever it is.
        let r = record(11, &[("a", 0, 11, 1, 5), ("b", 0, 11, 1, 6)]);
        let waiters = [waiter("b1", "b", 1), waiter("a1", "a", 2)];
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&b))), Some(0));
        let waiters = [waiter("a1", "a", 1), waiter("b1", "b", 2)];
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&b))), Some(0));
        // Within one application, first come first served.
        let waiters = [waiter("a1", "a", 1), waiter("a2", "a", 2)];
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&b))), Some(0));
    }

    #[test]
    fn an_application_at_its_max_gets_nothing_but_its_own_freed_slot_counts() {
        let r = record(10, &[("capped", 0, 3, 1, 3), ("other", 0, 10, 1, 2)]);
        let waiters = [waiter("c1", "capped", 1)];
        let (capped, other) = (
            AppName::parse("capped").unwrap(),
            AppName::parse("other").unwrap(),
        );
        assert_eq!(pick(&r, &waiters, Slot::Free), None);
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&other))), None);
        // Its own release brings it below the ceiling: the slot stays with it.
        assert_eq!(pick(&r, &waiters, Slot::Lease(Some(&capped))), Some(0));
    }

    #[test]
    fn the_queue_may_take_a_free_slot_only_as_pick_would_give_it() {
        let hot = AppName::parse("hot").unwrap();
        let with_waiting = |mut r: PoolRecord, app: &AppName, n: u32| {
            r.apps.get_mut(app).unwrap().waiting += n;
            r.waiting += n;
            r
        };
        // Hot waits beside 2 free slots steady keeps: nobody in the queue may take them.
        let r = with_waiting(
            record(10, &[("steady", 4, 10, 1, 2), ("hot", 0, 10, 1, 6)]),
            &hot,
            3,
        );
        let waiters = [waiter("h1", "hot", 1)];
        assert!(!queue_may_take(&r));
        assert_eq!(pick(&r, &waiters, Slot::Free), None);
        // Steady idle: its reservation is lent, and the hot waiter may take a slot.
        let r = with_waiting(
            record(10, &[("steady", 4, 10, 1, 0), ("hot", 0, 10, 1, 8)]),
            &hot,
            3,
        );
        assert!(queue_may_take(&r));
        assert_eq!(pick(&r, &waiters, Slot::Free), Some(0));
        // Waiters the applications' counts do not name (from before the division) may.
        let mut r = with_waiting(
            record(10, &[("steady", 4, 10, 1, 2), ("hot", 0, 10, 1, 6)]),
            &hot,
            3,
        );
        r.waiting += 1;
        assert!(queue_may_take(&r));
        // No free slot, or nobody waiting: nothing to hand over.
        let r = with_waiting(
            record(8, &[("steady", 4, 10, 1, 2), ("hot", 0, 10, 1, 6)]),
            &hot,
            3,
        );
        assert!(!queue_may_take(&r));
        assert!(!queue_may_take(&record(10, &[("steady", 4, 10, 1, 0)])));
        // An undivided pool: any waiter beside a free slot.
        let mut r = PoolRecord::new(3, 1, 0, 0);
        r.waiting = 1;
        assert!(queue_may_take(&r));
    }
}
