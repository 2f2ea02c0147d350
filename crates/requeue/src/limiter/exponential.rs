//! [`ItemExponential`]: per-item exponential backoff.

use super::{Failures, RateLimiter};
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

/// Per-item exponential backoff: `base × 2^failures`, capped at `max`
/// (client-go's `ItemExponentialFailureRateLimiter`).
///
/// The first [`when`](RateLimiter::when) for an item returns `base`, the
/// next `2 × base`, then `4 × base`, … until `max`, independently for every
/// item. [`forget`](RateLimiter::forget) starts the item over at `base`.
///
/// Any `base` and `max` are accepted and no number of failures overflows:
/// as soon as the doubled delay reaches `max` (compared with `>=`, in exact
/// integer nanoseconds) the answer is `max`. A `base` of zero always waits
/// zero; a `max` below `base` always waits `max`.
///
/// ```
/// use std::time::Duration;
/// use requeue::limiter::{ItemExponential, RateLimiter};
///
/// let limiter = ItemExponential::new(Duration::from_millis(1), Duration::from_millis(5));
/// let waits: Vec<_> = (0..4).map(|_| limiter.when(&"item")).collect();
/// let ms = Duration::from_millis;
/// assert_eq!(waits, [ms(1), ms(2), ms(4), ms(5)]);
/// assert_eq!(limiter.num_requeues(&"item"), 4);
/// ```
pub struct ItemExponential<T> {
    base: Duration,
    max: Duration,
    /// `base` in nanoseconds, when [`doublings`](Self::doublings) > 0.
    base_ns: u64,
    /// For `exp` below this, `base × 2^exp` is below `max` and below 2^64 ns,
    /// so [`when`](RateLimiter::when) answers with one shift instead of
    /// [`backoff`]'s 128-bit arithmetic (whose division alone took about
    /// 15 % of W7's time).
    doublings: u32,
    failures: Failures<T>,
}

impl<T> ItemExponential<T> {
    /// Waits `base`, then twice as long per further failure, at most `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        let (base_ns, doublings) = doublings(base, max);
        ItemExponential {
            base,
            max,
            base_ns,
            doublings,
            failures: Failures::new(),
        }
    }

    /// The wait after an item's first failure.
    pub fn base_delay(&self) -> Duration {
        self.base
    }

    /// The longest wait this limiter returns.
    pub fn max_delay(&self) -> Duration {
        self.max
    }
}

impl<T> fmt::Debug for ItemExponential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemExponential")
            .field("base", &self.base)
            .field("max", &self.max)
            .field("tracked_items", &self.failures.len())
            .finish()
    }
}

impl<T> RateLimiter<T> for ItemExponential<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    fn when(&self, item: &T) -> Duration {
        let exp = self.failures.record(item).saturating_sub(1);
        if exp < self.doublings {
            Duration::from_nanos(self.base_ns << exp)
        } else {
            backoff(self.base, self.max, exp)
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

/// `base` in nanoseconds and how many doublings of it stay below both
/// `max` and 2^64 ns (0 if `base` is zero or not below them).
fn doublings(base: Duration, max: Duration) -> (u64, u32) {
    let limit = max.as_nanos().min(1 << 64);
    match u64::try_from(base.as_nanos()) {
        Ok(base_ns) if base_ns > 0 => {
            let mut exp = 0;
            while exp < 64 && u128::from(base_ns) << exp < limit {
                exp += 1;
            }
            (base_ns, exp)
        }
        _ => (0, 0),
    }
}

/// `min(base × 2^exp, max)`, computed without overflow.
fn backoff(base: Duration, max: Duration, exp: u32) -> Duration {
    let base_ns = base.as_nanos();
    if base_ns == 0 {
        return Duration::ZERO;
    }
    // `base_ns << exp` fits in a u128 only if no set bit is shifted out.
    if exp >= base_ns.leading_zeros() {
        return max;
    }
    let delay_ns = base_ns << exp;
    if delay_ns >= max.as_nanos() {
        return max;
    }
    // `delay_ns < max.as_nanos()`, so it is a valid Duration. Below 2^64 ns
    // (584 years) it is made without a 128-bit division, which would cost
    // more than the rest of `when`.
    if let Ok(delay_ns) = u64::try_from(delay_ns) {
        return Duration::from_nanos(delay_ns);
    }
    let secs = delay_ns / 1_000_000_000;
    let nanos = delay_ns % 1_000_000_000;
    match (u64::try_from(secs), u32::try_from(nanos)) {
        (Ok(secs), Ok(nanos)) => Duration::new(secs, nanos),
        _ => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_doubles_per_failure_and_forget_resets() {
        // TestItemExponentialFailureRateLimiter
        let limiter = ItemExponential::new(MS, Duration::from_secs(1));
        for expected in [1, 2, 4, 8, 16] {
            assert_eq!(limiter.when(&"one"), expected * MS);
        }
        assert_eq!(limiter.num_requeues(&"one"), 5);

        assert_eq!(limiter.when(&"two"), MS);
        assert_eq!(limiter.when(&"two"), 2 * MS);
        assert_eq!(limiter.num_requeues(&"two"), 2);

        limiter.forget(&"one");
        assert_eq!(limiter.num_requeues(&"one"), 0);
        assert_eq!(limiter.when(&"one"), MS);
    }

    #[test]
    fn exponential_reaches_max_delay_after_many_failures() {
        // TestItemExponentialFailureRateLimiterOverFlow
        let limiter = ItemExponential::new(MS, Duration::from_secs(1000));
        for _ in 0..5 {
            limiter.when(&"one");
        }
        assert_eq!(limiter.when(&"one"), 32 * MS);
        for _ in 0..1000 {
            limiter.when(&"overflow1");
        }
        assert_eq!(limiter.when(&"overflow1"), Duration::from_secs(1000));

        let minute = Duration::from_secs(60);
        let limiter = ItemExponential::new(minute, 1000 * 60 * minute);
        for _ in 0..2 {
            limiter.when(&"two");
        }
        assert_eq!(limiter.when(&"two"), 4 * minute);
        for _ in 0..1000 {
            limiter.when(&"overflow2");
        }
        assert_eq!(limiter.when(&"overflow2"), 1000 * 60 * minute);
    }

    #[test]
    fn exponential_never_overflows_or_panics() {
        let max = Duration::MAX;
        assert_eq!(backoff(Duration::MAX, max, 0), Duration::MAX);
        assert_eq!(backoff(Duration::MAX, max, 1), Duration::MAX);
        assert_eq!(backoff(Duration::MAX, max, u32::MAX), Duration::MAX);
        assert_eq!(backoff(Duration::MAX, MS, u32::MAX), MS);
        assert_eq!(backoff(Duration::from_nanos(1), max, 127), max);
        assert_eq!(backoff(Duration::from_nanos(1), max, 128), max);
        assert_eq!(
            backoff(Duration::from_nanos(1), max, 64),
            Duration::from_nanos(1 << 63) * 2
        );
        // The clamp is `>=`: exactly 2^63 ns is the maximum, not beyond it.
        let go_max = Duration::from_nanos(1 << 63);
        assert_eq!(backoff(Duration::from_nanos(1), go_max, 63), go_max);
        assert_eq!(backoff(Duration::from_nanos(1), go_max, 62), go_max / 2);

        let limiter = ItemExponential::new(Duration::MAX, Duration::MAX);
        for _ in 0..200 {
            assert_eq!(limiter.when(&1), Duration::MAX);
        }
    }

    #[test]
    fn when_agrees_with_backoff_everywhere() {
        let durations = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(3),
            MS,
            5 * MS,
            Duration::from_secs(1),
            Duration::from_secs(1000),
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1),
            Duration::from_nanos(1 << 63),
            Duration::from_secs(u64::MAX / 3),
            Duration::MAX,
        ];
        for base in durations {
            for max in durations {
                let limiter = ItemExponential::<()>::new(base, max);
                for exp in (0..=200).chain([u32::MAX - 2, u32::MAX - 1]) {
                    // `when` counts the failure, making the exponent `exp`.
                    limiter.failures.set(&(), exp);
                    let wait = limiter.when(&());
                    assert_eq!(wait, backoff(base, max, exp), "{base:?} {max:?} {exp}");
                }
            }
        }
        // The common case takes the fast path all the way to the maximum.
        let limiter = ItemExponential::<()>::new(5 * MS, Duration::from_secs(1000));
        assert_eq!(limiter.doublings, 18); // 5 ms × 2^18 = 1310.72 s
    }

    #[test]
    fn exponential_edge_bases_zero_and_above_max() {
        assert_eq!(
            backoff(Duration::ZERO, Duration::MAX, u32::MAX),
            Duration::ZERO
        );
        let limiter = ItemExponential::new(Duration::ZERO, Duration::from_secs(1));
        for _ in 0..300 {
            assert_eq!(limiter.when(&()), Duration::ZERO);
        }
        let limiter = ItemExponential::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(limiter.when(&()), Duration::from_secs(1));
        let limiter = ItemExponential::new(MS, Duration::ZERO);
        assert_eq!(limiter.when(&()), Duration::ZERO);
    }

    #[test]
    fn exponential_tracked_items_grow_and_shrink_with_forget() {
        let limiter = ItemExponential::new(MS, Duration::from_secs(1));
        assert_eq!(limiter.tracked_items(), 0);
        limiter.when(&"a".to_string());
        limiter.when(&"a".to_string());
        limiter.when(&"b".to_string());
        assert_eq!(limiter.tracked_items(), 2);
        limiter.forget(&"a".to_string());
        assert_eq!(limiter.tracked_items(), 1);
        limiter.forget(&"never seen".to_string());
        assert_eq!(limiter.tracked_items(), 1);
        limiter.forget(&"b".to_string());
        assert_eq!(limiter.tracked_items(), 0);
        assert!(format!("{limiter:?}").contains("tracked_items: 0"));
    }
}
