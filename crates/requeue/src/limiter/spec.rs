//! Limiters described as data ([`LimiterSpec`]): built into in-memory
//! limiters here, evaluated by remote engines where the queue lives.

use super::{ItemExponential, ItemFastSlow, MaxOf, RateLimiter, TokenBucket};
use crate::clock::Clock;
use std::hash::Hash;
use std::time::Duration;

/// A duration in whole ms (rounded down; the defaults are whole ms).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// client-go's `ItemExponentialFailureRateLimiter`
/// ([`ItemExponential`]): `base × 2^failures`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exponential {
    /// The wait after an item's first failure, in ms (0: always 0).
    pub base_ms: u64,
    /// The longest wait, in ms.
    pub max_ms: u64,
}

/// client-go's `ItemFastSlowRateLimiter` ([`ItemFastSlow`]):
/// `fast` for an item's first `max_fast` attempts, then `slow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastSlow {
    /// The wait of the first `max_fast` attempts, in ms.
    pub fast_ms: u64,
    /// The wait of every later attempt, in ms.
    pub slow_ms: u64,
    /// How many attempts wait only `fast_ms` (0: every attempt is slow).
    pub max_fast: u32,
}

/// client-go's `BucketRateLimiter` ([`TokenBucket`]): one
/// bucket shared by every item (and, on a shared engine, every process).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Tokens per second. `f64::MAX` or more (or infinity) never waits;
    /// 0, negative or NaN spends the burst, then waits "forever",
    /// as golang.org/x/time/rate does.
    pub qps: f64,
    /// Capacity; the bucket starts full. 0 with a positive rate always
    /// waits "forever".
    pub burst: u32,
}

/// A rate limiter described as data: client-go's `MaxOfRateLimiter` of the
/// limiters that are `Some` (the longest wait wins, and every one counts
/// the attempt); all `None` waits 0. The one vocabulary for limiters: this
/// crate builds them from it ([`LimiterSpec::build`]) and remote engines
/// evaluate it where the queue lives (`requeue-redis` in Lua, so that
/// every process shares the failure counts and the bucket).
///
/// ```
/// use requeue::limiter::{LimiterSpec, RateLimiter};
/// use std::time::Duration;
///
/// let limiter = LimiterSpec::default_item_based().build::<&str>();
/// assert_eq!(limiter.when(&"pod"), Duration::from_millis(1));
/// assert_eq!(limiter.when(&"pod"), Duration::from_millis(2));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimiterSpec {
    /// Per-item exponential backoff.
    pub exponential: Option<Exponential>,
    /// Per-item two-speed backoff.
    pub fast_slow: Option<FastSlow>,
    /// Overall token bucket.
    pub bucket: Option<Bucket>,
}

impl LimiterSpec {
    /// client-go's `DefaultControllerRateLimiter`
    /// ([`default_controller`](super::default_controller)): exponential
    /// 5 ms … 1000 s and a bucket of 10 per second with a burst of 100.
    pub fn default_controller() -> Self {
        LimiterSpec {
            exponential: Some(Exponential {
                base_ms: millis(super::CONTROLLER_BASE),
                max_ms: millis(super::DEFAULT_MAX),
            }),
            fast_slow: None,
            bucket: Some(Bucket {
                qps: super::CONTROLLER_QPS,
                burst: super::CONTROLLER_BURST,
            }),
        }
    }

    /// client-go's `DefaultItemBasedRateLimiter`
    /// ([`default_item_based`](super::default_item_based)): exponential
    /// 1 ms … 1000 s.
    pub fn default_item_based() -> Self {
        LimiterSpec {
            exponential: Some(Exponential {
                base_ms: millis(super::ITEM_BASED_BASE),
                max_ms: millis(super::DEFAULT_MAX),
            }),
            ..LimiterSpec::default()
        }
    }

    /// The in-memory limiter this describes, on the real clock.
    pub fn build<T>(&self) -> MaxOf<T>
    where
        T: Eq + Hash + Clone + Send + Sync + 'static,
    {
        self.build_with_clock(crate::clock::RealClock)
    }

    /// As [`build`](LimiterSpec::build), with the bucket reading time from
    /// `clock` (a [`FakeClock`](crate::clock::FakeClock) in tests).
    pub fn build_with_clock<T>(&self, clock: impl Clock + Clone) -> MaxOf<T>
    where
        T: Eq + Hash + Clone + Send + Sync + 'static,
    {
        let ms = Duration::from_millis;
        let mut limiters: Vec<Box<dyn RateLimiter<T>>> = Vec::new();
        if let Some(e) = self.exponential {
            limiters.push(Box::new(ItemExponential::new(ms(e.base_ms), ms(e.max_ms))));
        }
        if let Some(f) = self.fast_slow {
            limiters.push(Box::new(ItemFastSlow::new(
                ms(f.fast_ms),
                ms(f.slow_ms),
                f.max_fast,
            )));
        }
        if let Some(b) = self.bucket {
            limiters.push(Box::new(TokenBucket::new(b.qps, b.burst).with_clock(clock)));
        }
        MaxOf::new(limiters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    #[test]
    fn the_default_specs_build_client_gos_default_limiters() {
        let clock = FakeClock::new();
        let built = LimiterSpec::default_controller().build_with_clock::<u32>(clock.clone());
        let direct = super::super::default_controller_with_clock::<u32>(clock);
        for item in 0..150 {
            for _ in 0..3 {
                assert_eq!(built.when(&item), direct.when(&item), "item {item}");
            }
        }
        let built = LimiterSpec::default_item_based().build::<u32>();
        let direct = super::super::default_item_based::<u32>();
        for _ in 0..25 {
            assert_eq!(built.when(&7), direct.when(&7));
        }
        built.forget(&7);
        assert_eq!(built.num_requeues(&7), 0);
    }

    #[test]
    fn every_configured_limiter_counts_and_the_longest_wait_wins() {
        let spec = LimiterSpec {
            exponential: Some(Exponential {
                base_ms: 1,
                max_ms: 1_000,
            }),
            fast_slow: Some(FastSlow {
                fast_ms: 5,
                slow_ms: 500,
                max_fast: 2,
            }),
            bucket: None,
        };
        let limiter = spec.build::<&str>();
        let ms = Duration::from_millis;
        assert_eq!(limiter.when(&"a"), ms(5));
        assert_eq!(limiter.when(&"a"), ms(5));
        assert_eq!(limiter.when(&"a"), ms(500));
        assert_eq!(
            LimiterSpec::default().build::<&str>().when(&"a"),
            Duration::ZERO
        );
    }
}
