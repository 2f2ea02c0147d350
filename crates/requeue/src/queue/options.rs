//! What an add asks for and what it did.

use std::time::{Duration, Instant};

/// Options for [`WorkQueue::add_with`](super::WorkQueue::add_with)
/// (controller-runtime's `AddOpts`).
///
/// ```
/// use std::time::Duration;
/// use requeue::queue::AddOpts;
///
/// let opts = AddOpts::new().after(Duration::from_secs(5)).priority(-100);
/// assert_eq!(opts.after, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOpts {
    /// Make the item ready only after this long (`Some(ZERO)` counts as a
    /// retry for the metrics but adds at once, like client-go's `AddAfter(x, 0)`).
    pub after: Option<Duration>,
    /// Ask the rate limiter for a delay too; the shorter of that and
    /// `after` wins when both are given (controller-runtime's rule).
    pub rate_limited: bool,
    /// Higher is served first; 0 is the default and controller-runtime's
    /// `LowPriority` is -100.
    pub priority: i32,
}

impl AddOpts {
    /// An immediate add at priority 0.
    pub const fn new() -> Self {
        AddOpts {
            after: None,
            rate_limited: false,
            priority: 0,
        }
    }

    /// Adds after `delay`.
    pub const fn after(mut self, delay: Duration) -> Self {
        self.after = Some(delay);
        self
    }

    /// Asks the rate limiter for the delay.
    pub const fn rate_limited(mut self) -> Self {
        self.rate_limited = true;
        self
    }

    /// Sets the priority.
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

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
    /// yet (use [`Item::end_async`](super::Item::end_async) to wait for it).
    Sent,
}
