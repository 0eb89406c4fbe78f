//! The shared state of a bundle being written: one slot per blob still to fill, in
//! archive order, which the writer hands out, blob slots fill, and the follower waits on.

use std::fs::File;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::oci::Digest;

/// A blob waiting for content.
#[derive(Debug)]
pub(crate) struct SlotInfo {
    pub(crate) digest: Digest,
    pub(crate) data_offset: u64,
    pub(crate) size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Free,
    Taken,
    Filled,
}

#[derive(Debug)]
pub(crate) struct FillState {
    /// One per slot, in archive order.
    pub(crate) slots: Vec<SlotState>,
    /// Set when the writer is dropped unfinished.
    pub(crate) aborted: bool,
}

/// What the writer, its slots and the follower share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) file: File,
    pub(crate) archive_size: u64,
    /// Slots in archive order.
    pub(crate) slots: Vec<SlotInfo>,
    pub(crate) state: Mutex<FillState>,
    /// Signalled whenever a slot is filled or the writer is dropped.
    pub(crate) changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, FillState> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
