//! What a run reports. (What a handler returns, [`Action`](crate::handout::Action),
//! is hand-out vocabulary and lives in [`handout`](crate::handout).)

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of handled keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Handler calls that returned `Ok`.
    pub succeeded: u64,
    /// Handler calls that returned `Err` or panicked.
    pub failed: u64,
    /// Of those, the ones that panicked.
    pub panicked: u64,
    /// Keys put back into the queue (retries and requested requeues).
    pub requeued: u64,
    /// Requeues the queue refused because it was shutting down.
    pub requeues_refused: u64,
    /// Keys whose lease ran out before they were settled (remote engines:
    /// another worker may have handled them meanwhile).
    pub lease_lost: u64,
}

impl Counts {
    /// All handler calls.
    pub fn processed(&self) -> u64 {
        self.succeeded + self.failed
    }
}

/// What a run did, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Handler calls that returned `Ok`.
    pub succeeded: u64,
    /// Handler calls that returned `Err` or panicked.
    pub failed: u64,
    /// Of those, the ones that panicked.
    pub panicked: u64,
    /// Keys put back into the queue.
    pub requeued: u64,
    /// Requeues refused at shutdown.
    pub requeues_refused: u64,
    /// Keys whose lease ran out before they were settled (remote engines).
    pub lease_lost: u64,
    /// Keys still queued when the run stopped (the queue keeps them).
    pub left_queued: usize,
    /// Delayed keys the shutdown withdrew.
    pub withdrawn: usize,
}

impl Summary {
    /// All handler calls (succeeded + failed).
    pub fn processed(&self) -> u64 {
        self.succeeded + self.failed
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    requeued: AtomicU64,
    refused: AtomicU64,
    lease_lost: AtomicU64,
}

impl Counters {
    pub(crate) fn succeeded(&self) {
        self.succeeded.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn panicked(&self) {
        self.panicked.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn requeued(&self, accepted: bool) {
        let counter = if accepted {
            &self.requeued
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn lease_lost(&self) {
        self.lease_lost.fetch_add(1, Ordering::SeqCst);
    }
    pub(crate) fn snapshot(&self) -> Counts {
        Counts {
            succeeded: self.succeeded.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            panicked: self.panicked.load(Ordering::SeqCst),
            requeued: self.requeued.load(Ordering::SeqCst),
            requeues_refused: self.refused.load(Ordering::SeqCst),
            lease_lost: self.lease_lost.load(Ordering::SeqCst),
        }
    }
    pub(crate) fn summary(&self, left_queued: usize, withdrawn: usize) -> Summary {
        let c = self.snapshot();
        Summary {
            succeeded: c.succeeded,
            failed: c.failed,
            panicked: c.panicked,
            requeued: c.requeued,
            requeues_refused: c.requeues_refused,
            lease_lost: c.lease_lost,
            left_queued,
            withdrawn,
        }
    }
}
