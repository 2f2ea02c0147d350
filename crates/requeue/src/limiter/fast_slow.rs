//! [`ItemFastSlow`]: a few quick retries per item, then slow ones.

use super::{Failures, RateLimiter};
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

/// Per-item two-speed retries: `fast` for the first `max_fast_attempts`
/// attempts of an item, `slow` after that (client-go's
/// `ItemFastSlowRateLimiter`).
///
/// [`forget`](RateLimiter::forget) gives the item its fast attempts back.
///
/// ```
/// use std::time::Duration;
/// use requeue::limiter::{ItemFastSlow, RateLimiter};
///
/// let fast = Duration::from_millis(5);
/// let slow = Duration::from_secs(10);
/// let limiter = ItemFastSlow::new(fast, slow, 2);
/// let waits: Vec<_> = (0..3).map(|_| limiter.when(&"item")).collect();
/// assert_eq!(waits, [fast, fast, slow]);
/// ```
pub struct ItemFastSlow<T> {
    fast: Duration,
    slow: Duration,
    max_fast_attempts: u32,
    failures: Failures<T>,
}

impl<T> ItemFastSlow<T> {
    /// Waits `fast` for an item's first `max_fast_attempts` attempts, then `slow`.
    pub fn new(fast: Duration, slow: Duration, max_fast_attempts: u32) -> Self {
        ItemFastSlow {
            fast,
            slow,
            max_fast_attempts,
            failures: Failures::new(),
        }
    }

    /// The wait for the first `max_fast_attempts` attempts.
    pub fn fast_delay(&self) -> Duration {
        self.fast
    }

    /// The wait for every later attempt.
    pub fn slow_delay(&self) -> Duration {
        self.slow
    }

    /// How many attempts per item wait only the fast delay.
    pub fn max_fast_attempts(&self) -> u32 {
        self.max_fast_attempts
    }
}

impl<T> fmt::Debug for ItemFastSlow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemFastSlow")
            .field("fast", &self.fast)
            .field("slow", &self.slow)
            .field("max_fast_attempts", &self.max_fast_attempts)
            .field("tracked_items", &self.failures.len())
            .finish()
    }
}

impl<T> RateLimiter<T> for ItemFastSlow<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    fn when(&self, item: &T) -> Duration {
        // Counted first, as upstream does: attempt n is fast while n <= max.
        if self.failures.record(item) <= self.max_fast_attempts {
            self.fast
        } else {
            self.slow
        }
    }

    fn forget(&self, item: &T) {
        self.failures.forget(item);
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.failures.count(item)
    }

    fn tracked_items(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fast_slow_is_fast_for_max_attempts_then_slow_and_forget_resets() {
        // TestItemFastSlowRateLimiter
        let slow = Duration::from_secs(10);
        let limiter = ItemFastSlow::new(5 * MS, slow, 3);
        for expected in [5 * MS, 5 * MS, 5 * MS, slow, slow] {
            assert_eq!(limiter.when(&"one"), expected);
        }
        assert_eq!(limiter.num_requeues(&"one"), 5);

        assert_eq!(limiter.when(&"two"), 5 * MS);
        assert_eq!(limiter.when(&"two"), 5 * MS);
        assert_eq!(limiter.num_requeues(&"two"), 2);

        limiter.forget(&"one");
        assert_eq!(limiter.num_requeues(&"one"), 0);
        assert_eq!(limiter.when(&"one"), 5 * MS);
    }

    #[test]
    fn fast_slow_with_zero_fast_attempts_is_always_slow() {
        let limiter = ItemFastSlow::new(MS, Duration::MAX, 0);
        assert_eq!(limiter.when(&1), Duration::MAX);
        assert_eq!(limiter.when(&1), Duration::MAX);
        let limiter = ItemFastSlow::new(MS, Duration::MAX, u32::MAX);
        assert_eq!(limiter.when(&1), MS);
        assert_eq!(limiter.max_fast_attempts(), u32::MAX);
        assert_eq!(limiter.fast_delay(), MS);
        assert_eq!(limiter.slow_delay(), Duration::MAX);
    }

    #[test]
    fn fast_slow_tracked_items_grow_and_shrink_with_forget() {
        let limiter = ItemFastSlow::new(MS, 2 * MS, 1);
        limiter.when(&1);
        limiter.when(&2);
        limiter.when(&2);
        assert_eq!(limiter.tracked_items(), 2);
        limiter.forget(&2);
        assert_eq!(limiter.tracked_items(), 1);
        assert_eq!(limiter.when(&2), MS);
        limiter.forget(&1);
        limiter.forget(&2);
        assert_eq!(limiter.tracked_items(), 0);
        assert!(format!("{limiter:?}").starts_with("ItemFastSlow"));
    }
}
