//! [`Backoff`] and the backoff managers that pace the periodic loops.

use super::jitter::{jitter_if_positive, scale};
use crate::clock::{Clock, SharedClock};
use crate::sync::{Arc, Mutex, lock};
use std::fmt;
use std::time::{Duration, Instant};

/// Supplies the wait before the next round of a loop.
///
/// Implemented by [`Backoff`] (each call is a [`Backoff::step`]), by the
/// managers in this module, and by any `FnMut() -> Duration` closure.
pub trait BackoffManager: Send {
    /// The delay to wait before the next round.
    fn next_delay(&mut self) -> Duration;
}

impl<F: FnMut() -> Duration + Send> BackoffManager for F {
    fn next_delay(&mut self) -> Duration {
        self()
    }
}

/// Parameters of an exponential backoff (apimachinery's `wait.Backoff`).
///
/// Each [`step`](Backoff::step) returns the current `duration` (jittered if
/// `jitter > 0`) and, while `steps` remain, multiplies `duration` by
/// `factor` for next time. Reaching `cap` pins `duration` to `cap` and sets
/// `steps` to zero; with no steps left the duration never changes again.
/// Jitter is applied to the returned value only and never feeds back, so a
/// jittered delay may exceed `cap` by up to `cap * jitter`.
///
/// ```
/// use std::time::Duration;
/// use requeue::wait::Backoff;
///
/// let mut b = Backoff::new(Duration::from_secs(1)).factor(2.0).steps(10).cap(Duration::from_secs(3));
/// let delays: Vec<_> = (0..4).map(|_| b.step().as_secs()).collect();
/// assert_eq!(delays, [1, 2, 3, 3]);
/// assert_eq!(b.steps, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Backoff {
    /// The next delay before jitter.
    pub duration: Duration,
    /// Multiplier applied to `duration` at each step; `0` keeps it constant.
    pub factor: f64,
    /// Adds up to `duration * jitter` at random to each returned delay; `<= 0` for none.
    pub jitter: f64,
    /// How many more times `duration` may change (and, for retries, attempts left).
    pub steps: u32,
    /// Upper bound for `duration`; zero means none.
    pub cap: Duration,
}

impl Backoff {
    /// A constant backoff of `duration` (no factor, jitter, steps or cap).
    pub fn new(duration: Duration) -> Self {
        Backoff {
            duration,
            ..Backoff::default()
        }
    }

    /// Sets `factor`.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets `jitter`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets `steps`.
    pub fn steps(mut self, steps: u32) -> Self {
        self.steps = steps;
        self
    }

    /// Sets `cap`.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Returns the next delay and advances the backoff.
    pub fn step(&mut self) -> Duration {
        let current = self.advance();
        jitter_if_positive(current, self.jitter)
    }

    /// [`step`](Backoff::step) with the jitter sample in `[0, 1)` chosen by the caller.
    pub fn step_with(&mut self, sample: f64) -> Duration {
        let current = self.advance();
        if self.jitter > 0.0 {
            super::jitter_with(current, self.jitter, sample)
        } else {
            current
        }
    }

    /// Moves `duration` and `steps` on; returns the un-jittered delay to use now.
    fn advance(&mut self) -> Duration {
        let current = self.duration;
        if self.steps < 1 {
            return current;
        }
        self.steps -= 1;
        if self.factor != 0.0 {
            let mut next = scale(current, self.factor);
            if !self.cap.is_zero() && next > self.cap {
                next = self.cap;
                self.steps = 0;
            }
            self.duration = next;
        }
        current
    }

    /// A thread-safe delay source that restarts from this backoff whenever
    /// more than `reset_interval` has passed on `clock` since the last
    /// restart (apimachinery's `DelayWithReset`).
    ///
    /// The restart is periodic, measured from the previous restart, not from
    /// the last call (contrast [`ExponentialBackoffManager`], which restarts
    /// after an idle gap). With `factor <= 0` it simply steps a copy of this
    /// backoff; with a zero `reset_interval` it returns the constant
    /// (jittered) `duration`. Clones share and advance the same state.
    pub fn delay_with_reset(self, clock: impl Clock, reset_interval: Duration) -> DelayWithReset {
        let mode = if self.factor <= 0.0 {
            ResetMode::Never
        } else if reset_interval.is_zero() {
            ResetMode::Constant
        } else {
            ResetMode::Every(reset_interval)
        };
        let initial = match mode {
            ResetMode::Constant => Backoff {
                steps: 0,
                factor: 0.0,
                ..self
            },
            _ => self,
        };
        let clock: SharedClock = Arc::new(clock);
        let last_reset = clock.now();
        DelayWithReset {
            shared: Arc::new(ResetShared {
                clock,
                mode,
                initial,
                state: Mutex::new((initial, last_reset)),
            }),
        }
    }
}

impl BackoffManager for Backoff {
    fn next_delay(&mut self) -> Duration {
        self.step()
    }
}

#[derive(Debug, Clone, Copy)]
enum ResetMode {
    Never,
    Constant,
    Every(Duration),
}

/// The delay source built by [`Backoff::delay_with_reset`].
#[derive(Clone)]
pub struct DelayWithReset {
    shared: Arc<ResetShared>,
}

struct ResetShared {
    clock: SharedClock,
    mode: ResetMode,
    initial: Backoff,
    state: Mutex<(Backoff, Instant)>,
}

impl fmt::Debug for DelayWithReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayWithReset")
            .field("mode", &self.shared.mode)
            .field("initial", &self.shared.initial)
            .finish()
    }
}

impl DelayWithReset {
    /// The next delay; safe to call from several threads, which share the sequence.
    pub fn next(&self) -> Duration {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        if let ResetMode::Every(interval) = shared.mode {
            let now = shared.clock.now();
            if now.saturating_duration_since(state.1) > interval {
                *state = (shared.initial, now);
            }
        }
        state.0.step()
    }
}

impl BackoffManager for DelayWithReset {
    fn next_delay(&mut self) -> Duration {
        self.next()
    }
}

/// A constant period with optional jitter (apimachinery's
/// `NewJitteredBackoffManager`, the pacing of `jitter_until`).
#[derive(Debug, Clone, Copy)]
pub struct JitteredBackoffManager {
    duration: Duration,
    jitter: f64,
}

impl JitteredBackoffManager {
    /// `duration`, jittered by up to `duration * jitter` when `jitter > 0`.
    pub fn new(duration: Duration, jitter: f64) -> Self {
        JitteredBackoffManager { duration, jitter }
    }
}

impl BackoffManager for JitteredBackoffManager {
    fn next_delay(&mut self) -> Duration {
        jitter_if_positive(self.duration, self.jitter)
    }
}

/// An exponential backoff that starts over after a quiet period
/// (apimachinery's `NewExponentialBackoffManager`).
///
/// Delays grow from `initial` by `factor` up to `max`. If more than `reset`
/// passed on the clock since the previous call, the sequence restarts at
/// `initial` (an idle-gap reset: every call moves the reference point).
#[derive(Debug)]
pub struct ExponentialBackoffManager {
    backoff: Backoff,
    initial: Duration,
    reset: Duration,
    last_call: Instant,
    clock: SharedClock,
}

impl ExponentialBackoffManager {
    /// Builds the manager; `jitter <= 0` means none.
    pub fn new(
        initial: Duration,
        max: Duration,
        reset: Duration,
        factor: f64,
        jitter: f64,
        clock: impl Clock,
    ) -> Self {
        let clock: SharedClock = Arc::new(clock);
        ExponentialBackoffManager {
            backoff: Backoff {
                duration: initial,
                factor,
                jitter,
                steps: i32::MAX as u32,
                cap: max,
            },
            initial,
            reset,
            last_call: clock.now(),
            clock,
        }
    }
}

impl BackoffManager for ExponentialBackoffManager {
    fn next_delay(&mut self) -> Duration {
        let now = self.clock.now();
        if now.saturating_duration_since(self.last_call) > self.reset {
            self.backoff.steps = i32::MAX as u32;
            self.backoff.duration = self.initial;
        }
        self.last_call = now;
        self.backoff.step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    const S: Duration = Duration::from_secs(1);

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn step_without_steps_or_factor_is_constant() {
        for steps in [0, 1] {
            let mut b = Backoff::new(S).steps(steps);
            for _ in 0..3 {
                assert_eq!(b.step(), S);
            }
        }
    }

    #[test]
    fn step_doubles_then_keeps_the_last_value_once_steps_run_out() {
        let mut b = Backoff::new(S).factor(2.0).steps(3);
        let got: Vec<_> = (0..5).map(|_| secs(b.step())).collect();
        assert_eq!(got, [1, 2, 4, 8, 8]);
        assert_eq!(b.steps, 0);
    }

    #[test]
    fn reaching_the_cap_zeroes_steps() {
        let mut b = Backoff::new(S).factor(2.0).steps(3).cap(3 * S);
        let got: Vec<_> = (0..4).map(|_| secs(b.step())).collect();
        assert_eq!(got, [1, 2, 3, 3]);
        assert_eq!(b.steps, 0);
    }

    #[test]
    fn jitter_stays_within_the_relative_bound_and_never_feeds_back() {
        for seed in 0..5 {
            fastrand::seed(seed);
            let mut b = Backoff::new(S).factor(2.0).steps(3).jitter(0.5);
            let nominal = [1.0, 2.0, 4.0];
            let mut differs = false;
            for n in nominal {
                let d = b.step().as_secs_f64();
                assert!(d >= n && d < n * 1.5, "seed {seed}: {d} vs {n}");
                differs |= d != n;
            }
            assert!(differs, "jitter changed nothing for seed {seed}");
            assert_eq!(b.duration, 8 * S, "jitter must not feed back");
        }
        let mut b = Backoff::new(S).jitter(1.0);
        assert_eq!(b.step_with(0.5), Duration::from_millis(1500));
    }

    #[test]
    fn exponential_manager_grows_to_max_and_resets_after_an_idle_gap() {
        let clock = FakeClock::new();
        let mut m = ExponentialBackoffManager::new(S, 10 * S, 10 * S, 2.0, 0.0, clock.clone());
        let got: Vec<_> = (0..7).map(|_| secs(m.next_delay())).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10, 10]);
        clock.advance(11 * S);
        assert_eq!(m.next_delay(), S);
    }

    #[test]
    fn jittered_manager_stays_in_range_and_negative_jitter_means_none() {
        let mut m = JitteredBackoffManager::new(S, 1.0);
        for _ in 0..100 {
            let d = m.next_delay();
            assert!(d >= S && d <= 2 * S);
        }
        let mut none = JitteredBackoffManager::new(S, -1.0);
        assert_eq!(none.next_delay(), S);
    }

    #[test]
    fn delay_with_reset_restarts_periodically() {
        let clock = FakeClock::new();
        let d = Backoff::new(S)
            .factor(2.0)
            .steps(i32::MAX as u32)
            .cap(10 * S)
            .delay_with_reset(clock.clone(), 10 * S);
        let got: Vec<_> = (0..7).map(|_| secs(d.next())).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10, 10]);
        clock.advance(11 * S);
        assert_eq!(d.next(), S);
    }

    #[test]
    fn delay_with_reset_measures_from_the_last_reset_not_the_last_call() {
        let clock = FakeClock::new();
        let d = Backoff::new(S)
            .factor(2.0)
            .steps(100)
            .delay_with_reset(clock.clone(), 10 * S);
        assert_eq!(d.next(), S);
        clock.advance(6 * S);
        assert_eq!(d.next(), 2 * S);
        clock.advance(6 * S);
        assert_eq!(d.next(), S, "12 s since the construction-time reset");
    }

    #[test]
    fn delay_with_reset_with_zero_interval_never_grows() {
        let clock = FakeClock::new();
        let d = Backoff::new(S)
            .factor(2.0)
            .steps(5)
            .delay_with_reset(clock, Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(d.next(), S);
        }
    }

    #[test]
    fn delay_with_reset_jitter_bounds() {
        let clock = FakeClock::new();
        let jittered = Backoff::new(S)
            .jitter(1.0)
            .delay_with_reset(clock.clone(), 10 * S);
        for _ in 0..50 {
            let v = jittered.next();
            assert!(v >= S && v <= 2 * S);
        }
        let plain = Backoff::new(S).jitter(-1.0).delay_with_reset(clock, 10 * S);
        assert_eq!(plain.next(), S);
    }

    #[test]
    fn closures_are_backoff_managers() {
        let mut n = 0;
        let mut m = move || {
            n += 1;
            Duration::from_millis(n)
        };
        assert_eq!(BackoffManager::next_delay(&mut m), Duration::from_millis(1));
        assert_eq!(BackoffManager::next_delay(&mut m), Duration::from_millis(2));
    }
}
