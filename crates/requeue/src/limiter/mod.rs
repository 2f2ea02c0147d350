//! Rate limiters: how long an item waits before its next attempt
//! (client-go's `workqueue` rate limiters).
//!
//! # Usage
//!
//! A [`RateLimiter`] answers one question — "how long should this item wait
//! before it is retried?" — and remembers that it was asked. The rate-limited
//! work queue calls [`when`](RateLimiter::when) on every rate-limited add and
//! [`forget`](RateLimiter::forget) once an item has succeeded. **Remember to
//! call `forget`**: an item-keyed limiter keeps its failure count (and its
//! memory) until you do, and the next failure waits twice as long as the last.
//!
//! Most controllers want [`default_controller`]: per-item exponential backoff
//! from 5 ms to 1000 s, combined with an overall token bucket of 10 retries
//! per second after a burst of 100. Wrap any limiter in [`WithMaxWait`] to cap
//! the wait (the token bucket alone can make a mass requeue wait for minutes,
//! kubernetes#104554).
//!
//! ```
//! use std::time::Duration;
//! use requeue::clock::FakeClock;
//! use requeue::limiter::{self, ItemExponential, RateLimiter, WithMaxWait};
//!
//! // Per-item exponential backoff: 5 ms, 10 ms, 20 ms, … until forgotten.
//! let backoff = ItemExponential::new(Duration::from_millis(5), Duration::from_secs(1000));
//! assert_eq!(backoff.when(&"pod-a"), Duration::from_millis(5));
//! assert_eq!(backoff.when(&"pod-a"), Duration::from_millis(10));
//! assert_eq!(backoff.when(&"pod-b"), Duration::from_millis(5));
//! assert_eq!(backoff.num_requeues(&"pod-a"), 2);
//! backoff.forget(&"pod-a");
//! assert_eq!(backoff.when(&"pod-a"), Duration::from_millis(5));
//!
//! // The default controller limiter, on a clock the test controls: the first
//! // 100 distinct items only see their own backoff, then the shared bucket
//! // (10 per second) adds 100 ms per extra item — capped here at 150 ms.
//! let clock = FakeClock::new();
//! let limiter = WithMaxWait::new(
//!     limiter::default_controller_with_clock(clock.clone()),
//!     Duration::from_millis(150),
//! );
//! for item in 0..100 {
//!     assert_eq!(limiter.when(&item), Duration::from_millis(5));
//! }
//! assert_eq!(limiter.when(&100), Duration::from_millis(100));
//! assert_eq!(limiter.when(&101), Duration::from_millis(150));
//!
//! // Limiters are also usable behind `Box<dyn …>` and `Arc<dyn …>`.
//! let boxed: Box<dyn RateLimiter<u32>> = Box::new(limiter::default_item_based());
//! assert_eq!(boxed.when(&7), Duration::from_millis(1));
//! ```
//!
//! ## Coming from client-go
//!
//! | client-go (`k8s.io/client-go/util/workqueue`) | requeue |
//! |---|---|
//! | `TypedRateLimiter[T]` (`When`, `Forget`, `NumRequeues`) | [`RateLimiter<T>`] ([`when`](RateLimiter::when), [`forget`](RateLimiter::forget), [`num_requeues`](RateLimiter::num_requeues), plus [`tracked_items`](RateLimiter::tracked_items)) |
//! | `NewTypedItemExponentialFailureRateLimiter(base, max)` | [`ItemExponential::new(base, max)`](ItemExponential::new) |
//! | `NewTypedItemFastSlowRateLimiter(fast, slow, n)` | [`ItemFastSlow::new(fast, slow, n)`](ItemFastSlow::new) |
//! | `&TypedBucketRateLimiter{Limiter: rate.NewLimiter(qps, burst)}` | [`TokenBucket::new(qps, burst)`](TokenBucket::new) |
//! | `NewTypedMaxOfRateLimiter(limiters...)` | [`MaxOf::new(vec![...])`](MaxOf::new) |
//! | `NewTypedWithMaxWaitRateLimiter(limiter, max)` | [`WithMaxWait::new(limiter, max)`](WithMaxWait::new) |
//! | `DefaultTypedControllerRateLimiter[T]()` | [`default_controller()`](default_controller), [`default_controller_with_clock(clock)`](default_controller_with_clock) |
//! | `DefaultTypedItemBasedRateLimiter[T]()` | [`default_item_based()`](default_item_based) |
//! | `rate.InfDuration` (a bucket that can never grant) | [`NEVER`] |
//!
//! Differences: the exponential limiter computes in exact integer
//! nanoseconds and clamps at its maximum for any base and any failure count
//! (client-go converts an out-of-range float; requeue never overflows or
//! panics); the token bucket reads its time from an injectable
//! [`Clock`], so tests can drive it with a
//! [`FakeClock`](crate::clock::FakeClock).
//!
//! # Implementation
//!
//! The item-keyed limiters ([`ItemExponential`], [`ItemFastSlow`]) keep one
//! failure counter per item, 16 bytes whatever the item: they store a keyed
//! 96-bit fingerprint of the item rather than a clone of it, in a table
//! split into 32 shards, each behind its own lock (so threads on different
//! items rarely meet, and growing copies one shard, never the whole table).
//! The fingerprint's seeds are random per limiter; two items tracked at once
//! would share a count only by a collision of 101 hash bits (odds about
//! n²/2¹⁰² for n items: 2 × 10⁻¹³ for a billion), which nobody can aim for.
//! [`forget`](RateLimiter::forget) removes the entry and a mostly empty
//! shard shrinks, so the table holds exactly the items that failed since
//! they were last forgotten ([`tracked_items`](RateLimiter::tracked_items)),
//! and memory follows. The
//! [`TokenBucket`] reproduces golang.org/x/time/rate's `Reserve().Delay()`:
//! a float token count refilled from the elapsed time, one token reserved per
//! call even into debt. The combinators ([`MaxOf`], [`WithMaxWait`]) hold no
//! state of their own.

mod bucket;
mod exponential;
mod failures;
mod fast_slow;
mod max_of;
mod max_wait;
mod spec;

pub use bucket::{NEVER, TokenBucket};
pub use exponential::ItemExponential;
pub use fast_slow::ItemFastSlow;
pub use max_of::MaxOf;
pub use max_wait::WithMaxWait;
pub use spec::{Bucket, Exponential, FastSlow, LimiterSpec};

use crate::clock::Clock;
use failures::Failures;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// Decides how long an item waits before its next attempt.
///
/// Implementations must be safe to call from many threads at once. Every
/// [`when`](RateLimiter::when) counts as an attempt, whether or not the
/// caller then actually waits; [`forget`](RateLimiter::forget) clears the
/// record once the item has succeeded.
pub trait RateLimiter<T>: Send + Sync + 'static {
    /// How long `item` should wait before its next attempt; records the attempt.
    fn when(&self, item: &T) -> Duration;
    /// Drops everything remembered about `item`.
    fn forget(&self, item: &T);
    /// How many times `item` has been through `when` since it was last forgotten.
    fn num_requeues(&self, item: &T) -> u32;
    /// How many items this limiter currently keeps state for (0 for item-independent limiters).
    fn tracked_items(&self) -> usize {
        0
    }
}

impl<T, L: RateLimiter<T> + ?Sized> RateLimiter<T> for Arc<L> {
    fn when(&self, item: &T) -> Duration {
        (**self).when(item)
    }
    fn forget(&self, item: &T) {
        (**self).forget(item)
    }
    fn num_requeues(&self, item: &T) -> u32 {
        (**self).num_requeues(item)
    }
    fn tracked_items(&self) -> usize {
        (**self).tracked_items()
    }
}

impl<T, L: RateLimiter<T> + ?Sized> RateLimiter<T> for Box<L> {
    fn when(&self, item: &T) -> Duration {
        (**self).when(item)
    }
    fn forget(&self, item: &T) {
        (**self).forget(item)
    }
    fn num_requeues(&self, item: &T) -> u32 {
        (**self).num_requeues(item)
    }
    fn tracked_items(&self) -> usize {
        (**self).tracked_items()
    }
}

/// Base delay of [`default_controller`]'s exponential part.
const CONTROLLER_BASE: Duration = Duration::from_millis(5);
/// Base delay of [`default_item_based`].
const ITEM_BASED_BASE: Duration = Duration::from_millis(1);
/// Maximum delay of both defaults' exponential parts.
const DEFAULT_MAX: Duration = Duration::from_secs(1000);
/// Refill rate of [`default_controller`]'s token bucket, per second.
const CONTROLLER_QPS: f64 = 10.0;
/// Capacity of [`default_controller`]'s token bucket.
const CONTROLLER_BURST: u32 = 100;

/// client-go's `DefaultControllerRateLimiter`: the larger of a per-item
/// exponential backoff (5 ms doubling up to 1000 s) and an overall
/// [`TokenBucket`] of 10 per second with a burst of 100, on the real clock.
///
/// The bucket is shared by all items and its reservations are never
/// returned: past the first 100 rate-limited adds, every further one waits
/// 100 ms longer than the previous (until the bucket refills). Wrap it in
/// [`WithMaxWait`] if that is not what you want.
pub fn default_controller<T>() -> MaxOf<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    MaxOf::new(vec![
        Box::new(ItemExponential::new(CONTROLLER_BASE, DEFAULT_MAX)),
        Box::new(TokenBucket::new(CONTROLLER_QPS, CONTROLLER_BURST)),
    ])
}

/// [`default_controller`] with its token bucket reading time from `clock`
/// (a [`FakeClock`](crate::clock::FakeClock) in tests).
pub fn default_controller_with_clock<T>(clock: impl Clock) -> MaxOf<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    MaxOf::new(vec![
        Box::new(ItemExponential::new(CONTROLLER_BASE, DEFAULT_MAX)),
        Box::new(TokenBucket::new(CONTROLLER_QPS, CONTROLLER_BURST).with_clock(clock)),
    ])
}

/// client-go's `DefaultItemBasedRateLimiter`: per-item exponential backoff
/// starting at 1 ms, doubling per failure, capped at 1000 s.
pub fn default_item_based<T>() -> ItemExponential<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    ItemExponential::new(ITEM_BASED_BASE, DEFAULT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn default_item_based_is_exponential_from_1ms_to_1000s() {
        let limiter = default_item_based::<&str>();
        assert_eq!(limiter.base_delay(), MS);
        assert_eq!(limiter.max_delay(), Duration::from_secs(1000));
        assert_eq!(limiter.when(&"a"), MS);
        assert_eq!(limiter.when(&"a"), 2 * MS);
    }

    #[test]
    fn default_controller_is_max_of_5ms_backoff_and_10qps_burst_100() {
        let clock = FakeClock::new();
        let limiter = default_controller_with_clock::<u32>(clock.clone());
        for item in 0..100 {
            assert_eq!(limiter.when(&item), 5 * MS);
        }
        // The bucket is empty: the next distinct items pay 100 ms each.
        assert_eq!(limiter.when(&100), 100 * MS);
        assert_eq!(limiter.when(&101), 200 * MS);
        // One item's own backoff keeps doubling underneath the bucket's wait.
        assert_eq!(limiter.num_requeues(&0), 1);
        assert_eq!(limiter.tracked_items(), 102);
        clock.advance(Duration::from_secs(100));
        assert_eq!(limiter.when(&0), 10 * MS);
        limiter.forget(&0);
        assert_eq!(limiter.num_requeues(&0), 0);
        assert_eq!(limiter.tracked_items(), 101);
    }

    #[test]
    fn default_controller_on_the_real_clock_starts_with_a_full_bucket() {
        let limiter = default_controller::<u32>();
        for item in 0..100 {
            assert_eq!(limiter.when(&item), 5 * MS);
        }
        let next = limiter.when(&100);
        // 100 ms of debt, minus whatever real time passed meanwhile.
        assert!(next >= 5 * MS && next <= 100 * MS, "{next:?}");
    }

    #[test]
    fn boxed_and_shared_limiters_are_limiters() {
        let boxed: Box<dyn RateLimiter<&str>> = Box::new(default_item_based());
        assert_eq!(boxed.when(&"x"), MS);
        assert_eq!(boxed.num_requeues(&"x"), 1);
        assert_eq!(boxed.tracked_items(), 1);
        boxed.forget(&"x");
        assert_eq!(boxed.tracked_items(), 0);

        let shared: Arc<dyn RateLimiter<&str>> = Arc::new(default_item_based());
        let other = Arc::clone(&shared);
        assert_eq!(shared.when(&"x"), MS);
        assert_eq!(other.when(&"x"), 2 * MS);
        assert_eq!(other.num_requeues(&"x"), 2);
        assert_eq!(shared.tracked_items(), 1);
        other.forget(&"x");
        assert_eq!(shared.num_requeues(&"x"), 0);

        // A boxed limiter nests inside the combinators.
        let capped = WithMaxWait::new(boxed, MS / 2);
        assert_eq!(capped.when(&"y"), MS / 2);
    }

    #[test]
    fn failures_count_saturates_instead_of_overflowing() {
        let failures = Failures::new();
        failures.set(&"x", u32::MAX - 1);
        assert_eq!(failures.record(&"x"), u32::MAX);
        assert_eq!(failures.record(&"x"), u32::MAX);
        assert_eq!(failures.count(&"x"), u32::MAX);
        failures.forget(&"x");
        assert_eq!(failures.count(&"x"), 0);
        assert_eq!(failures.len(), 0);
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let limiter = default_item_based::<u8>();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        limiter.when(&1);
                    }
                });
            }
        });
        assert_eq!(limiter.num_requeues(&1), 8000);
        assert_eq!(limiter.tracked_items(), 1);
    }
}
