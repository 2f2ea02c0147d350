//! [`TokenBucket`]: one rate for all items (golang.org/x/time/rate's
//! `Limiter.Reserve().Delay()`).

use super::RateLimiter;
use crate::clock::{self, Clock, SharedClock};
use crate::sync::{Mutex, lock};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The wait a [`TokenBucket`] returns when it can never grant a token:
/// 2^63 − 1 ns, about 292 years (golang.org/x/time/rate's `InfDuration`).
///
/// It is a finite, ordinary [`Duration`]: it compares, adds (saturating) and
/// caps (with [`WithMaxWait`](super::WithMaxWait)) like any other wait.
pub const NEVER: Duration = Duration::from_nanos(u64::MAX >> 1);

/// 2^63 ns as a float: the first float wait that no longer fits below [`NEVER`].
const NEVER_NANOS: f64 = (1_u64 << 63) as f64;

/// A token bucket shared by all items (client-go's `BucketRateLimiter`
/// around golang.org/x/time/rate's `Limiter`).
///
/// The bucket starts full with `burst` tokens and refills at `qps` tokens per
/// second, never beyond `burst`. Every [`when`](RateLimiter::when) reserves
/// one token — even when that drives the count below zero — and returns how
/// long until that debt is repaid. So with a burst of 100 at 10 per second,
/// 100 calls in a row return zero, and the next ones 100 ms, 200 ms, 300 ms, …
/// Reservations are never handed back, even if the caller drops the item.
///
/// Special rates, as x/time/rate treats them:
///
/// * `qps` of [`f64::INFINITY`] (or [`f64::MAX`], x/time/rate's `Inf`):
///   every call returns zero, whatever the burst.
/// * `burst` of 0 with a finite `qps`: no token can ever be granted; every
///   call returns [`NEVER`] and changes nothing.
/// * `qps` of 0: the first `burst` calls return zero, every later one
///   [`NEVER`]. A negative or NaN `qps` is treated as 0 (no panic).
///
/// Time comes from a [`Clock`] (the real one unless
/// [`with_clock`](TokenBucket::with_clock) says otherwise). The wait is
/// measured from the clock reading taken while reserving. Should the clock
/// go backwards, nothing is refilled and the earlier reading becomes the
/// reference for the next refill, exactly as x/time/rate does.
///
/// [`num_requeues`](RateLimiter::num_requeues) is always 0,
/// [`forget`](RateLimiter::forget) does nothing and
/// [`tracked_items`](RateLimiter::tracked_items) is 0: the bucket knows no
/// items. It is a [`RateLimiter<T>`] for every `T`.
///
/// ```
/// use std::time::Duration;
/// use requeue::clock::FakeClock;
/// use requeue::limiter::{RateLimiter, TokenBucket};
///
/// let clock = FakeClock::new();
/// let bucket = TokenBucket::new(10.0, 2).with_clock(clock.clone());
/// assert_eq!(bucket.when(&"a"), Duration::ZERO);
/// assert_eq!(bucket.when(&"b"), Duration::ZERO);
/// assert_eq!(bucket.when(&"c"), Duration::from_millis(100));
/// clock.advance(Duration::from_millis(100));
/// assert_eq!(bucket.when(&"d"), Duration::from_millis(100));
/// ```
pub struct TokenBucket {
    /// Tokens per second: finite and positive, 0, or at least `f64::MAX` (unlimited).
    qps: f64,
    burst: u32,
    clock: SharedClock,
    state: Mutex<State>,
}

struct State {
    /// Tokens available at `last`; negative while reservations are in debt.
    tokens: f64,
    /// When `tokens` was computed; `None` until the first reservation.
    last: Option<Instant>,
}

impl State {
    fn full(burst: u32) -> Self {
        State {
            tokens: f64::from(burst),
            last: None,
        }
    }
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `qps` tokens per second,
    /// on the real clock. A negative or NaN `qps` counts as 0.
    pub fn new(qps: f64, burst: u32) -> Self {
        let qps = if qps > 0.0 { qps } else { 0.0 };
        TokenBucket {
            qps,
            burst,
            clock: clock::real(),
            state: Mutex::new(State::full(burst)),
        }
    }

    /// Reads time from `clock` instead, starting over with a full bucket.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.state = Mutex::new(State::full(self.burst));
        self
    }

    /// The refill rate in tokens per second (0 for a negative or NaN rate).
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// The bucket's capacity.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Reserves one token and returns how long until it is available
    /// (what [`when`](RateLimiter::when) does, for any item).
    pub fn reserve(&self) -> Duration {
        if self.qps >= f64::MAX {
            return Duration::ZERO;
        }
        if self.burst == 0 {
            // More tokens wanted than the bucket can ever hold: refused, no state change.
            return NEVER;
        }
        let burst = f64::from(self.burst);
        let mut state = lock(&self.state);
        if self.qps == 0.0 {
            // x/time/rate's zero-limit case: spend the burst, then never.
            if state.tokens >= 1.0 {
                state.tokens -= 1.0;
                return Duration::ZERO;
            }
            return NEVER;
        }
        // Read under the lock, so concurrent reservations see time in order.
        let now = self.clock.now();
        let available = match state.last {
            None => burst,
            Some(last) => {
                // Backwards time yields zero elapsed.
                let elapsed = now.saturating_duration_since(last);
                (state.tokens + elapsed.as_secs_f64() * self.qps).min(burst)
            }
        };
        let tokens = available - 1.0;
        state.tokens = tokens;
        state.last = Some(now);
        if tokens < 0.0 {
            duration_from_tokens(-tokens, self.qps)
        } else {
            Duration::ZERO
        }
    }
}

/// How long `qps` takes to produce `tokens` (x/time/rate's
/// `durationFromTokens`, truncated to whole nanoseconds, at most [`NEVER`]).
fn duration_from_tokens(tokens: f64, qps: f64) -> Duration {
    let nanos = tokens / qps * 1e9;
    if nanos.is_nan() || nanos >= NEVER_NANOS {
        return NEVER;
    }
    // Truncates like Go's float-to-Duration conversion; `nanos` is in range.
    Duration::from_nanos(nanos as u64)
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("qps", &self.qps)
            .field("burst", &self.burst)
            .field("clock", &self.clock)
            .finish()
    }
}

impl<T> RateLimiter<T> for TokenBucket {
    fn when(&self, _item: &T) -> Duration {
        self.reserve()
    }

    fn forget(&self, _item: &T) {}

    fn num_requeues(&self, _item: &T) -> u32 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    const MS: Duration = Duration::from_millis(1);

    fn bucket(qps: f64, burst: u32) -> (TokenBucket, FakeClock) {
        let clock = FakeClock::new();
        (
            TokenBucket::new(qps, burst).with_clock(clock.clone()),
            clock,
        )
    }

    #[test]
    fn bucket_grants_the_burst_then_one_token_per_interval() {
        let (bucket, clock) = bucket(10.0, 100);
        for _ in 0..100 {
            assert_eq!(bucket.when(&"x"), Duration::ZERO);
        }
        assert_eq!(bucket.when(&"x"), 100 * MS);
        assert_eq!(bucket.when(&"y"), 200 * MS);
        assert_eq!(bucket.when(&"z"), 300 * MS);
        // 200 ms repay two of the three tokens of debt.
        clock.advance(200 * MS);
        assert_eq!(bucket.reserve(), 200 * MS);
        // A second pays back the remaining debt and refills 8 tokens.
        clock.advance(Duration::from_secs(1));
        for _ in 0..8 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(), 100 * MS);
    }

    #[test]
    fn bucket_refill_caps_at_burst() {
        let (bucket, clock) = bucket(1.0, 3);
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(), Duration::from_secs(1));
        assert_eq!(bucket.reserve(), Duration::from_secs(2));
    }

    #[test]
    fn bucket_with_fractional_rate() {
        let (bucket, _clock) = bucket(0.5, 1);
        assert_eq!(bucket.reserve(), Duration::ZERO);
        assert_eq!(bucket.reserve(), Duration::from_secs(2));
        assert_eq!(bucket.reserve(), Duration::from_secs(4));
    }

    #[test]
    fn bucket_with_infinite_rate_never_waits() {
        for qps in [f64::INFINITY, f64::MAX] {
            let (bucket, _clock) = bucket(qps, 0);
            for _ in 0..1000 {
                assert_eq!(bucket.reserve(), Duration::ZERO);
            }
        }
    }

    #[test]
    fn bucket_with_zero_burst_never_grants() {
        let (bucket, clock) = bucket(10.0, 0);
        assert_eq!(bucket.reserve(), NEVER);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(bucket.reserve(), NEVER);
        assert_eq!(NEVER.as_nanos(), i64::MAX as u128);
    }

    #[test]
    fn bucket_with_zero_rate_grants_the_burst_then_never() {
        for qps in [0.0, -0.0, -5.0, f64::NAN, f64::NEG_INFINITY] {
            let (bucket, clock) = bucket(qps, 2);
            assert_eq!(bucket.qps(), 0.0);
            assert_eq!(bucket.reserve(), Duration::ZERO);
            assert_eq!(bucket.reserve(), Duration::ZERO);
            assert_eq!(bucket.reserve(), NEVER);
            clock.advance(Duration::from_secs(3600));
            assert_eq!(bucket.reserve(), NEVER);
        }
    }

    #[test]
    fn bucket_with_a_tiny_rate_saturates_at_never() {
        let (bucket, _clock) = bucket(1e-300, 1);
        assert_eq!(bucket.reserve(), Duration::ZERO);
        assert_eq!(bucket.reserve(), NEVER);
        assert_eq!(bucket.reserve(), NEVER);
        assert_eq!(duration_from_tokens(1.0, f64::MIN_POSITIVE), NEVER);
    }

    #[test]
    fn bucket_when_time_goes_backwards_refills_nothing_and_rebases() {
        let (bucket, clock) = bucket(1.0, 1);
        let start = crate::clock::Clock::now(&clock);
        assert_eq!(bucket.reserve(), Duration::ZERO);
        let earlier = start.checked_sub(Duration::from_secs(10));
        clock.set(earlier.expect("the monotonic clock is more than 10 s old"));
        // No refill for negative elapsed time: one token of debt.
        assert_eq!(bucket.reserve(), Duration::from_secs(1));
        // Back at the start: 10 s have passed since the (earlier) last reading.
        clock.set(start);
        assert_eq!(bucket.reserve(), Duration::ZERO);
        assert_eq!(bucket.reserve(), Duration::from_secs(1));
    }

    #[test]
    fn bucket_knows_no_items() {
        let (bucket, _clock) = bucket(1.0, 1);
        let limiter: &dyn RateLimiter<&str> = &bucket;
        assert_eq!(limiter.when(&"a"), Duration::ZERO);
        assert_eq!(limiter.num_requeues(&"a"), 0);
        assert_eq!(limiter.tracked_items(), 0);
        limiter.forget(&"a");
        // Forgetting gives no token back.
        assert_eq!(limiter.when(&"a"), Duration::from_secs(1));
        assert_eq!(bucket.burst(), 1);
        assert!(format!("{bucket:?}").contains("burst: 1"));
    }

    #[test]
    fn bucket_on_the_real_clock_starts_full() {
        // One token per 1000 s: the refill during the test is negligible.
        let bucket = TokenBucket::new(0.001, 5);
        for _ in 0..5 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        let wait = bucket.reserve();
        let bounds = Duration::from_secs(990)..=Duration::from_secs(1000);
        assert!(bounds.contains(&wait), "{wait:?}");
    }
}
