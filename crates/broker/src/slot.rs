//! A slot being given back, and what giving it back did: shared by the release paths of
//! [`crate::broker`] and the hand-over of [`crate::queue`].

use crate::model::{Lease, LeaseId, PoolRecord, TaskToken};
use crate::store::SlotSource;

/// A slot being given back (owned form of [`SlotSource`]).
pub(crate) enum Freed {
    /// A lease released by its holder (`true`: only if it is not draining).
    Release(LeaseId, bool),
    /// A lease just handed to a task that turned out gone: only while still unclaimed.
    Unclaimed(LeaseId, TaskToken),
    /// An expired lease.
    Reclaim(Lease),
    /// A free slot beside waiters.
    Free,
}

impl Freed {
    pub(crate) fn slot(&self) -> SlotSource<'_> {
        match self {
            Freed::Release(id, settled) => SlotSource::Release {
                id,
                settled: *settled,
                unclaimed: None,
            },
            Freed::Unclaimed(id, token) => SlotSource::Release {
                id,
                settled: false,
                unclaimed: Some(token),
            },
            Freed::Reclaim(lease) => SlotSource::Reclaim(lease),
            Freed::Free => SlotSource::Free,
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
