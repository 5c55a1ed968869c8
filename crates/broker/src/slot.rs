//! A slot being given back, and what giving it back did: shared by the release paths of
//! [`crate::broker`] and the hand-over of [`crate::queue`].

use crate::model::{AppName, Lease, LeaseId, PoolRecord, TaskToken};
use crate::shares::Slot;
use crate::store::SlotSource;

/// A slot being given back (owned form of [`SlotSource`]). The application of a released
/// lease is a hint until the store has said which it is.
pub(crate) enum Freed {
    /// A lease released by its holder (`true`: only if it is not draining).
    Release(LeaseId, bool, Option<AppName>),
    /// A lease just handed to a task that turned out gone: only while still unclaimed.
    Unclaimed(LeaseId, TaskToken, Option<AppName>),
    /// An expired lease.
    Reclaim(Lease),
    /// A free slot beside waiters.
    Free,
}

impl Freed {
    /// The slot as the choice of a waiter sees it.
    pub(crate) fn as_slot(&self) -> Slot<'_> {
        match self {
            Freed::Free => Slot::Free,
            _ => Slot::Lease(self.app()),
        }
    }

    pub(crate) fn slot(&self) -> SlotSource<'_> {
        match self {
            Freed::Release(id, settled, app) => SlotSource::Release {
                id,
                settled: *settled,
                unclaimed: None,
                app: app.as_ref(),
            },
            Freed::Unclaimed(id, token, app) => SlotSource::Release {
                id,
                settled: false,
                unclaimed: Some(token),
                app: app.as_ref(),
            },
            Freed::Reclaim(lease) => SlotSource::Reclaim(lease),
            Freed::Free => SlotSource::Free,
        }
    }

    /// The application whose slot this is (as far as known).
    pub(crate) fn app(&self) -> Option<&AppName> {
        match self {
            Freed::Release(_, _, app) | Freed::Unclaimed(_, _, app) => app.as_ref(),
            Freed::Reclaim(lease) => lease.app.as_ref(),
            Freed::Free => None,
        }
    }

    /// Records which application the store found the lease counting against.
    pub(crate) fn set_app(&mut self, found: Option<AppName>) {
        match self {
            Freed::Release(_, _, app) | Freed::Unclaimed(_, _, app) => *app = found,
            Freed::Reclaim(lease) => lease.app = found,
            Freed::Free => {}
        }
    }
}

/// What giving back a slot did to its source.
pub(crate) struct GaveBack {
    pub(crate) released: bool,
    pub(crate) draining: bool,
    /// The pool afterwards; `None` when it does not exist.
    pub(crate) record: Option<PoolRecord>,
}

/// The pool record after a hand-over from `from` (an application, or a free slot when
/// `free`) to a waiter of `to`: one waiter fewer, and the slot counted against `to`.
pub(crate) fn handed_over(
    record: &PoolRecord,
    from: Option<&AppName>,
    to: Option<&AppName>,
    free: bool,
) -> PoolRecord {
    let mut after = record.clone();
    after.in_use += u32::from(free);
    after.waiting = after.waiting.saturating_sub(1);
    after.version += 1;
    if let Some(state) = from.filter(|_| !free).and_then(|a| after.apps.get_mut(a)) {
        state.in_use = state.in_use.saturating_sub(1);
    }
    if let Some(state) = to.and_then(|a| after.apps.get_mut(a)) {
        state.in_use += 1;
        state.waiting = state.waiting.saturating_sub(1);
    }
    after
}
