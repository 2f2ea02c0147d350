//! [`MaxOf`]: the strictest of several limiters.

use super::RateLimiter;
use std::fmt;
use std::time::Duration;

/// Asks every limiter and waits for the longest answer (client-go's
/// `MaxOfRateLimiter`).
///
/// [`when`](RateLimiter::when) calls **every** limiter, so all of them count
/// the attempt (every per-item counter advances, every bucket is drawn) even
/// when one answer already dominates. [`num_requeues`](RateLimiter::num_requeues)
/// and [`tracked_items`](RateLimiter::tracked_items) are the largest of the
/// limiters' answers, [`forget`](RateLimiter::forget) is passed to all of
/// them. With no limiters every answer is zero.
///
/// ```
/// use std::time::Duration;
/// use requeue::limiter::{ItemExponential, ItemFastSlow, MaxOf, RateLimiter};
///
/// let ms = Duration::from_millis;
/// let limiter = MaxOf::new(vec![
///     Box::new(ItemFastSlow::new(ms(5), Duration::from_secs(3), 3)),
///     Box::new(ItemExponential::new(ms(1), Duration::from_secs(1))),
/// ]);
/// assert_eq!(limiter.when(&"item"), ms(5));
/// // Or built up one limiter at a time:
/// let same = MaxOf::default()
///     .with(ItemFastSlow::new(ms(5), Duration::from_secs(3), 3))
///     .with(ItemExponential::new(ms(1), Duration::from_secs(1)));
/// assert_eq!(same.when(&"item"), ms(5));
/// ```
pub struct MaxOf<T> {
    /// Given at construction ([`new`](MaxOf::new), [`with`](MaxOf::with)); never grows after.
    limiters: Vec<Box<dyn RateLimiter<T>>>,
}

impl<T> MaxOf<T> {
    /// Combines `limiters`; each call consults all of them.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<T>>>) -> Self {
        MaxOf { limiters }
    }

    /// Adds one more limiter.
    pub fn with(mut self, limiter: impl RateLimiter<T>) -> Self {
        self.limiters.push(Box::new(limiter));
        self
    }

    /// The combined limiters, in the order given.
    pub fn limiters(&self) -> &[Box<dyn RateLimiter<T>>] {
        &self.limiters
    }
}

impl<T> Default for MaxOf<T> {
    /// No limiters yet: every answer is zero until [`with`](MaxOf::with) adds some.
    fn default() -> Self {
        MaxOf::new(Vec::new())
    }
}

impl<T> fmt::Debug for MaxOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxOf")
            .field("limiters", &self.limiters.len())
            .finish()
    }
}

impl<T: 'static> RateLimiter<T> for MaxOf<T> {
    fn when(&self, item: &T) -> Duration {
        // A fold, not `max()`: every limiter must see the attempt.
        self.limiters
            .iter()
            .fold(Duration::ZERO, |longest, l| longest.max(l.when(item)))
    }

    fn forget(&self, item: &T) {
        for limiter in &self.limiters {
            limiter.forget(item);
        }
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }

    fn tracked_items(&self) -> usize {
        self.limiters
            .iter()
            .map(|l| l.tracked_items())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::limiter::{ItemExponential, ItemFastSlow, TokenBucket};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn max_of_takes_the_longest_wait_and_forget_resets_all() {
        // TestMaxOfRateLimiter
        let slow = Duration::from_secs(3);
        let limiter = MaxOf::new(vec![
            Box::new(ItemFastSlow::new(5 * MS, slow, 3)),
            Box::new(ItemExponential::new(MS, Duration::from_secs(1))),
        ]);
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
    fn max_of_consults_every_limiter_on_each_call() {
        let secs = Duration::from_secs;
        let limiter = MaxOf::default()
            .with(ItemFastSlow::new(secs(10), secs(10), 0))
            .with(TokenBucket::new(1.0, 2).with_clock(FakeClock::new()));
        // The constant 10 s dominates, yet the bucket is drawn every time:
        // after 2 free tokens its k-th reservation waits k - 2 seconds.
        for item in 1..=12 {
            assert_eq!(limiter.when(&item), secs(10), "item {item}");
        }
        assert_eq!(limiter.when(&13), secs(11));
        assert_eq!(limiter.limiters().len(), 2);
    }

    #[test]
    fn max_of_nothing_is_zero() {
        let limiter = MaxOf::<u8>::new(Vec::new());
        assert_eq!(limiter.when(&1), Duration::ZERO);
        assert_eq!(limiter.num_requeues(&1), 0);
        assert_eq!(limiter.tracked_items(), 0);
        limiter.forget(&1);
        assert_eq!(format!("{limiter:?}"), "MaxOf { limiters: 0 }");
    }

    #[test]
    fn max_of_tracked_items_is_the_largest_and_shrinks_with_forget() {
        let limiter = MaxOf::default()
            .with(ItemExponential::new(MS, Duration::from_secs(1)))
            .with(ItemFastSlow::new(MS, 2 * MS, 1));
        for item in 0..5 {
            limiter.when(&item);
        }
        assert_eq!(limiter.tracked_items(), 5);
        limiter.forget(&0);
        limiter.forget(&1);
        assert_eq!(limiter.tracked_items(), 3);
        // Forgetting reaches every limiter, so the max drops too.
        for limiter in limiter.limiters() {
            assert_eq!(limiter.tracked_items(), 3);
        }
    }
}
