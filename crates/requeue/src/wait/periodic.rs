//! The `until` family: run a function now and then periodically until stopped.

use super::Stop;
use super::backoff::{BackoffManager, JitteredBackoffManager};
use super::env::LoopEnv;
use super::event::{Event, sleep_until};
use crate::clock::deadline_after;
use crate::exec;
use std::fmt;
use std::future::{Future, ready};
use std::time::Duration;

/// A periodic loop, configured step by step (the engine behind [`until`],
/// [`jitter_until`], [`backoff_until`] and their async twins).
///
/// # Usage
///
/// ```
/// use std::time::Duration;
/// use requeue::wait::{Periodic, Stop};
///
/// let stop = Stop::new();
/// let mut runs = 0;
/// Periodic::new(Duration::from_millis(1)).run(&stop, || {
///     runs += 1;
///     if runs == 3 {
///         stop.stop();
///     }
/// });
/// assert_eq!(runs, 3);
/// ```
///
/// # Implementation
///
/// Each round: return if stopped; in non-sliding mode take the next delay
/// now (the period starts before `f`); run `f` under the panic policy; in
/// sliding mode take the delay now (the period starts after `f`); wait for
/// the delay or the stop signal, whichever comes first — the stop signal
/// wins a tie. `f` runs at once on entry unless already stopped, and a
/// period that `f` overran is not made up: the next round starts at once.
///
/// # Cancellation safety
///
/// Dropping the future of [`run_async`](Periodic::run_async) ends the loop
/// at its current await point; `f` never runs again.
pub struct Periodic {
    delays: Box<dyn BackoffManager>,
    period: Option<Duration>,
    sliding: bool,
    env: LoopEnv,
}

impl fmt::Debug for Periodic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("period", &self.period)
            .field("sliding", &self.sliding)
            .field("env", &self.env)
            .finish()
    }
}

impl Periodic {
    /// Runs every `period`, sliding, without jitter, on the real clock.
    pub fn new(period: Duration) -> Self {
        Self::build(
            Box::new(JitteredBackoffManager::new(period, 0.0)),
            Some(period),
        )
    }

    /// Waits whatever `delays` says between rounds (apimachinery's `BackoffUntil`).
    pub fn with_backoff(delays: impl BackoffManager + 'static) -> Self {
        Self::build(Box::new(delays), None)
    }

    fn build(delays: Box<dyn BackoffManager>, period: Option<Duration>) -> Self {
        Periodic {
            delays,
            period,
            sliding: true,
            env: LoopEnv::default(),
        }
    }

    /// Adds up to `period * factor` of random delay to each round; `<= 0`
    /// means none. Only for loops built with [`Periodic::new`]; a loop built
    /// with [`with_backoff`](Periodic::with_backoff) takes its delays as given.
    pub fn jitter(mut self, factor: f64) -> Self {
        if let Some(period) = self.period {
            self.delays = Box::new(JitteredBackoffManager::new(period, factor));
        }
        self
    }

    /// `true` (the default): the period starts when `f` returns.
    /// `false`: it starts when `f` is called, keeping a steady cadence.
    pub fn sliding(mut self, sliding: bool) -> Self {
        self.sliding = sliding;
        self
    }

    loop_env_setters!();

    /// Runs the loop on this thread until `stop` fires.
    pub fn run(self, stop: &Stop, mut f: impl FnMut()) {
        exec::block_on(self.run_async(stop, || {
            f();
            ready(())
        }))
    }

    /// Runs the loop in an async task until `stop` fires; `f` returns the
    /// future for one round.
    pub async fn run_async<F, Fut>(mut self, stop: &Stop, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let clock = &*self.env.clock;
        loop {
            if stop.is_stopped() {
                return;
            }
            let mut due = None;
            if !self.sliding {
                due = Some(deadline_after(clock.now(), self.delays.next_delay()));
            }
            self.env.panics.call_async("until", &mut f).await;
            let due = match due {
                Some(due) => due,
                None => deadline_after(clock.now(), self.delays.next_delay()),
            };
            if sleep_until(clock, stop, None, due).await == Event::Stopped {
                return;
            }
        }
    }
}

/// Runs `f` every `period` forever (apimachinery's `wait.Forever`).
pub fn forever(period: Duration, f: impl FnMut()) {
    Periodic::new(period).run(&Stop::never(), f)
}

/// Async [`forever`].
pub async fn forever_async<F, Fut>(period: Duration, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    Periodic::new(period).run_async(&Stop::never(), f).await
}

/// Runs `f` now and then `period` after each return, until `stop` fires
/// (apimachinery's `wait.Until`).
pub fn until(period: Duration, stop: &Stop, f: impl FnMut()) {
    Periodic::new(period).run(stop, f)
}

/// Async [`until`] (apimachinery's `UntilWithContext`).
pub async fn until_async<F, Fut>(period: Duration, stop: &Stop, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    Periodic::new(period).run_async(stop, f).await
}

/// Runs `f` every `period` measured from each call's start, until `stop`
/// fires (apimachinery's `wait.NonSlidingUntil`).
pub fn non_sliding_until(period: Duration, stop: &Stop, f: impl FnMut()) {
    Periodic::new(period).sliding(false).run(stop, f)
}

/// Async [`non_sliding_until`].
pub async fn non_sliding_until_async<F, Fut>(period: Duration, stop: &Stop, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    Periodic::new(period)
        .sliding(false)
        .run_async(stop, f)
        .await
}

/// [`until`] with a jittered period and a choice of sliding
/// (apimachinery's `wait.JitterUntil`); `jitter <= 0` means none.
pub fn jitter_until(period: Duration, jitter: f64, sliding: bool, stop: &Stop, f: impl FnMut()) {
    Periodic::new(period)
        .jitter(jitter)
        .sliding(sliding)
        .run(stop, f)
}

/// Async [`jitter_until`].
pub async fn jitter_until_async<F, Fut>(
    period: Duration,
    jitter: f64,
    sliding: bool,
    stop: &Stop,
    f: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    Periodic::new(period)
        .jitter(jitter)
        .sliding(sliding)
        .run_async(stop, f)
        .await
}

/// Runs `f` with the delays of `backoff` between rounds until `stop` fires
/// (apimachinery's `wait.BackoffUntil`).
pub fn backoff_until(
    backoff: impl BackoffManager + 'static,
    sliding: bool,
    stop: &Stop,
    f: impl FnMut(),
) {
    Periodic::with_backoff(backoff)
        .sliding(sliding)
        .run(stop, f)
}

/// Async [`backoff_until`].
pub async fn backoff_until_async<F, Fut>(
    backoff: impl BackoffManager + 'static,
    sliding: bool,
    stop: &Stop,
    f: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    Periodic::with_backoff(backoff)
        .sliding(sliding)
        .run_async(stop, f)
        .await
}
