//! [`WithMaxWait`]: a cap on another limiter's wait.

use super::RateLimiter;
use std::time::Duration;

/// Caps another limiter's wait at `max` (client-go's `WithMaxWaitRateLimiter`).
///
/// [`when`](RateLimiter::when) is `min(inner.when(item), max)`; the inner
/// limiter still records the attempt in full. Everything else is passed
/// through. Useful around [`default_controller`](super::default_controller),
/// whose token bucket alone can make a mass requeue wait for many minutes
/// (kubernetes#104554).
///
/// ```
/// use std::time::Duration;
/// use requeue::limiter::{ItemExponential, RateLimiter, WithMaxWait};
///
/// let inner = ItemExponential::new(Duration::from_secs(1), Duration::from_secs(3600));
/// let limiter = WithMaxWait::new(inner, Duration::from_secs(3));
/// let waits: Vec<_> = (0..4).map(|_| limiter.when(&"item").as_secs()).collect();
/// assert_eq!(waits, [1, 2, 3, 3]);
/// assert_eq!(limiter.num_requeues(&"item"), 4);
/// ```
#[derive(Debug, Clone)]
pub struct WithMaxWait<L> {
    inner: L,
    max: Duration,
}

impl<L> WithMaxWait<L> {
    /// Caps `inner`'s waits at `max`.
    pub fn new(inner: L, max: Duration) -> Self {
        WithMaxWait { inner, max }
    }

    /// The longest wait this limiter returns.
    pub fn max_wait(&self) -> Duration {
        self.max
    }

    /// The capped limiter.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Unwraps the capped limiter.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<T, L: RateLimiter<T>> RateLimiter<T> for WithMaxWait<L> {
    fn when(&self, item: &T) -> Duration {
        self.inner.when(item).min(self.max)
    }

    fn forget(&self, item: &T) {
        self.inner.forget(item);
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.inner.num_requeues(item)
    }

    fn tracked_items(&self) -> usize {
        self.inner.tracked_items()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::limiter::{ItemExponential, NEVER, TokenBucket, default_controller_with_clock};
    use crate::sync::{Mutex, lock};

    const MS: Duration = Duration::from_millis(1);

    /// Answers 5 ms for its first 100 calls and 1000 s after that.
    #[derive(Default)]
    struct Scripted {
        calls: Mutex<u32>,
    }

    impl RateLimiter<u32> for Scripted {
        fn when(&self, _item: &u32) -> Duration {
            let mut calls = lock(&self.calls);
            *calls += 1;
            if *calls <= 100 {
                5 * MS
            } else {
                Duration::from_secs(1000)
            }
        }
        fn forget(&self, _item: &u32) {}
        fn num_requeues(&self, _item: &u32) -> u32 {
            *lock(&self.calls)
        }
        fn tracked_items(&self) -> usize {
            7
        }
    }

    #[test]
    fn with_max_wait_caps_long_waits_only() {
        // TestWithMaxWaitRateLimiter, with the inner limiter scripted.
        let limiter = WithMaxWait::new(Scripted::default(), Duration::from_secs(500));
        for item in 0..100 {
            assert_eq!(limiter.when(&item), 5 * MS);
        }
        for item in 100..200 {
            assert_eq!(limiter.when(&item), Duration::from_secs(500));
        }
        assert_eq!(limiter.num_requeues(&0), 200);
        assert_eq!(limiter.tracked_items(), 7);
        assert_eq!(limiter.max_wait(), Duration::from_secs(500));
    }

    #[test]
    fn with_max_wait_caps_the_default_controller_bucket() {
        // TestWithMaxWaitRateLimiter, with the default controller limiter.
        let max = Duration::from_secs(500);
        let limiter = WithMaxWait::new(default_controller_with_clock(FakeClock::new()), max);
        for item in 0..100_u32 {
            assert_eq!(limiter.when(&item), 5 * MS);
        }
        // The bucket's debt grows by 100 ms per item: below the cap ...
        for item in 100..5099 {
            assert!(limiter.when(&item) < max, "item {item}");
        }
        // ... until it reaches 500 s, from where on the cap holds.
        for item in 5099..5200 {
            assert_eq!(limiter.when(&item), max, "item {item}");
        }
        limiter.forget(&0);
        assert_eq!(limiter.tracked_items(), 5199);
        assert_eq!(limiter.inner().tracked_items(), 5199);
    }

    #[test]
    fn with_max_wait_caps_never_and_passes_forget_through() {
        let limiter = WithMaxWait::new(TokenBucket::new(1.0, 0), Duration::from_secs(1));
        assert_eq!(
            RateLimiter::<()>::when(&limiter, &()),
            Duration::from_secs(1)
        );
        assert_eq!(limiter.inner().reserve(), NEVER);

        let limiter = WithMaxWait::new(ItemExponential::new(MS, MS * 8), 2 * MS);
        assert_eq!(limiter.when(&'a'), MS);
        assert_eq!(limiter.when(&'a'), 2 * MS);
        assert_eq!(limiter.when(&'a'), 2 * MS);
        limiter.forget(&'a');
        assert_eq!(limiter.num_requeues(&'a'), 0);
        assert_eq!(limiter.into_inner().tracked_items(), 0);
    }
}
