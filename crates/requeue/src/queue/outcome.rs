//! What the state machine's operations report back to their callers, who
//! act on it (wake, arm a timer, drop an item) after releasing the locks.

use super::shard::Handle;
use crate::clock::TimerId;
use std::time::Instant;

/// The promotion timer the queue has asked its clock for, if any.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    /// When it fires (on the queue's nanosecond scale).
    pub(crate) deadline: Option<super::delays::Nanos>,
    pub(crate) id: Option<TimerId>,
    pub(crate) generation: u64,
}

/// A decision, made under the delay lock, to (re-)arm the promotion timer;
/// carried out after the lock is released because a clock may fire at once.
#[derive(Debug)]
pub(crate) struct ArmPlan {
    pub(crate) at: Instant,
    pub(crate) generation: u64,
    pub(crate) cancel: Option<TimerId>,
}

/// What `done` did.
#[derive(Debug)]
pub(crate) struct Finished<T> {
    /// The item was being processed (else the call changed nothing).
    pub(crate) was_processing: bool,
    /// It was re-added meanwhile and is ready again (a getter to wake).
    pub(crate) readied: bool,
    /// The item, when the queue let go of it: dropped by the caller after
    /// the lock is released, so freeing it does not lengthen the critical section.
    pub(crate) released: Option<T>,
}

impl<T> Finished<T> {
    pub(crate) fn unchanged() -> Self {
        Finished {
            was_processing: false,
            readied: false,
            released: None,
        }
    }
}

/// An item handed out by a shard.
#[derive(Debug)]
pub(crate) struct HandOut<T> {
    pub(crate) item: T,
    pub(crate) handle: Handle,
    pub(crate) token: u32,
    pub(crate) priority: i32,
}
