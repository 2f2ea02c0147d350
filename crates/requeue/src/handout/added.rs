//! What an accepted add did.

use std::time::Instant;

/// What an accepted add did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The item is now ready and waiting for a worker.
    Queued,
    /// The item was already pending (ready, or due again after its current
    /// processing, or delayed to an earlier time); the adds collapsed into
    /// one. A higher priority was kept.
    Merged,
    /// The item is being processed; it will be queued again when that
    /// processing ends.
    AfterDone,
    /// The item will become ready at `at` (on the queue's clock).
    Delayed {
        /// When it becomes ready.
        at: Instant,
    },
    /// Handed to a remote engine's background task, which applies it in
    /// order with this process's other calls; the outcome is not known
    /// yet (use [`Item::end_async`](crate::queue::Item::end_async) to wait for it).
    Sent,
}
