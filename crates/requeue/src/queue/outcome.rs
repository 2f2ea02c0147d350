//! What the state machine's operations report back to their callers, who
//! act on it (wake, arm a timer, drop an item) after releasing the lock.

use super::options::Added;
use crate::clock::TimerId;
use std::task::Waker;
use std::time::Instant;

/// The timer the queue has asked its clock for, if any.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    pub(crate) deadline: Option<Instant>,
    pub(crate) id: Option<TimerId>,
    pub(crate) generation: u64,
}

/// A decision, made under the lock, to (re-)arm the promotion timer; carried
/// out after the lock is released because a clock may fire at once.
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
    pub(crate) wake: Vec<Waker>,
    /// The item, when the queue let go of it: dropped by the caller after
    /// the lock is released, so freeing it does not lengthen the critical section.
    pub(crate) released: Option<T>,
}

impl<T> Finished<T> {
    pub(crate) fn unchanged() -> Self {
        Finished {
            was_processing: false,
            wake: Vec::new(),
            released: None,
        }
    }
}

/// What an accepted add did.
#[derive(Debug)]
pub(crate) struct Admitted<T> {
    pub(crate) added: Added,
    /// A get waiter to wake.
    pub(crate) wake: Option<Waker>,
    /// The caller's copy of an item the queue already held, to be dropped
    /// after the lock is released.
    pub(crate) duplicate: Option<T>,
}

/// An item handed out by [`State::pop`].
#[derive(Debug)]
pub(crate) struct HandOut<T> {
    pub(crate) item: T,
    pub(crate) slot: u32,
    pub(crate) token: u64,
    pub(crate) priority: i32,
}

/// Counts for [`crate::queue::QueueSnapshot`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) ready: usize,
    pub(crate) processing: usize,
    pub(crate) parked: usize,
    pub(crate) delayed: usize,
    pub(crate) waiting_gets: usize,
}
