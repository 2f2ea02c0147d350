//! The polling engine: check a condition on a cadence until it holds, fails,
//! times out or is stopped.

use super::backoff::{Backoff, BackoffManager};
use super::env::LoopEnv;
use super::event::{Event, next_event, sleep_until};
use super::{Stop, WaitError};
use crate::clock::{Clock, deadline_after};
use crate::exec;
use futures_core::Stream;
use std::fmt;
use std::future::{Future, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A tick source that never ticks: the default for pollers paced by time.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTicks;

impl Stream for NoTicks {
    type Item = ();
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<()>> {
        Poll::Pending
    }
}

/// A polling loop, configured step by step: the one engine behind every
/// `poll*` function and [`wait_for`](super::wait_for).
///
/// # Usage
///
/// ```
/// use std::time::Duration;
/// use requeue::wait::{Poller, Stop, WaitError};
///
/// let mut attempts = 0;
/// let result = Poller::every(Duration::from_millis(1))
///     .immediate(true)
///     .timeout(Duration::from_secs(10))
///     .run(&Stop::never(), || {
///         attempts += 1;
///         Ok::<_, std::io::Error>(attempts == 3)
///     });
/// assert!(result.is_ok());
/// assert_eq!(attempts, 3);
///
/// let failed = Poller::every(Duration::ZERO).run(&Stop::never(), || Err("no"));
/// assert_eq!(failed, Err(WaitError::Condition("no")));
/// ```
///
/// # Implementation
///
/// Apimachinery's `loopConditionUntilContext`, step for step: in
/// non-sliding mode the timer is armed before anything else; with
/// `immediate` the condition runs once whatever the stop signal says; in
/// sliding mode the timer is armed after that run. Then, each round, wait for
/// the stop signal (→ [`WaitError::Stopped`]), the timeout
/// (→ [`WaitError::TimedOut`]) or the timer — checked in that order, so a
/// timer that fires together with them never causes an extra run — re-arm
/// before (non-sliding) or after (sliding) the condition, and end on
/// `Ok(true)` or `Err`. A panicking condition under a containing
/// [`PanicPolicy`](crate::crash::PanicPolicy) counts as `Ok(false)`.
///
/// Cadences: [`every`](Poller::every) is a ticker started when armed
/// (ticks at whole multiples of the interval; a tick missed while the
/// condition ran is delivered at once, later missed ones are dropped; a zero
/// interval polls back to back, yielding between rounds);
/// [`with_backoff`](Poller::with_backoff) follows `Backoff::timer`'s choice
/// of ticker or growing delays; [`with_delays`](Poller::with_delays) waits
/// each returned delay; [`on_ticks`](Poller::on_ticks) runs once per item of
/// a stream and once more when it ends.
///
/// [`legacy`](Poller::legacy) reproduces the deprecated `Poll*` timing:
/// ticks that pass while the condition runs are dropped, and when the timeout
/// passes the condition runs one last time ("always invoked at least once").
///
/// # Cancellation safety
///
/// Dropping the future of [`run_async`](Poller::run_async) cancels the
/// loop; the condition is not called again.
pub struct Poller<S = NoTicks> {
    cadence: CadenceSpec<S>,
    timeout: Option<Duration>,
    immediate: bool,
    sliding: bool,
    legacy: bool,
    env: LoopEnv,
}

enum CadenceSpec<S> {
    Interval(Duration),
    Delays(Box<dyn BackoffManager>),
    Ticks(S),
}

impl<S> fmt::Debug for Poller<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cadence = match &self.cadence {
            CadenceSpec::Interval(d) => format!("every {d:?}"),
            CadenceSpec::Delays(_) => "delays".to_owned(),
            CadenceSpec::Ticks(_) => "ticks".to_owned(),
        };
        f.debug_struct("Poller")
            .field("cadence", &cadence)
            .field("timeout", &self.timeout)
            .field("immediate", &self.immediate)
            .field("sliding", &self.sliding)
            .field("legacy", &self.legacy)
            .finish()
    }
}

impl Poller<NoTicks> {
    /// Polls on a ticker of `interval` (apimachinery's `PollUntilContextCancel`
    /// cadence); zero polls back to back.
    pub fn every(interval: Duration) -> Self {
        Self::build(CadenceSpec::Interval(interval))
    }

    /// Polls with `backoff`'s delays, choosing like upstream's
    /// `Backoff.Timer()`: growing delays when `steps > 1` or `jitter != 0`,
    /// otherwise a ticker of `duration` (back to back when zero).
    pub fn with_backoff(backoff: Backoff) -> Self {
        if backoff.steps > 1 || backoff.jitter != 0.0 {
            Self::with_delays(backoff)
        } else {
            Self::every(backoff.duration)
        }
    }

    /// Waits each delay `delays` returns before the next check
    /// (apimachinery's `DelayFunc.Until`).
    pub fn with_delays(delays: impl BackoffManager + 'static) -> Self {
        Self::build(CadenceSpec::Delays(Box::new(delays)))
    }
}

impl<S: Stream<Item = ()> + Unpin> Poller<S> {
    /// Checks once per item of `ticks`, and once more when it ends, which
    /// then counts as a timeout (apimachinery's `WaitFor`).
    pub fn on_ticks(ticks: S) -> Self {
        Self::build(CadenceSpec::Ticks(ticks))
    }

    fn build(cadence: CadenceSpec<S>) -> Self {
        Poller {
            cadence,
            timeout: None,
            immediate: false,
            sliding: false,
            legacy: false,
            env: LoopEnv::default(),
        }
    }

    /// Checks once before the first wait (default `false`).
    pub fn immediate(mut self, immediate: bool) -> Self {
        self.immediate = immediate;
        self
    }

    /// Re-arms the timer after each check instead of before it (default `false`).
    pub fn sliding(mut self, sliding: bool) -> Self {
        self.sliding = sliding;
        self
    }

    /// Gives up with [`WaitError::TimedOut`] once `timeout` has passed since
    /// the call, condition time included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Uses the deprecated `Poll*` timing (see the type's docs).
    pub fn legacy(mut self, legacy: bool) -> Self {
        self.legacy = legacy;
        self
    }

    loop_env_setters!();

    /// Polls on this thread until the condition returns `Ok(true)` (→ `Ok(())`).
    pub fn run<E>(
        self,
        stop: &Stop,
        mut condition: impl FnMut() -> Result<bool, E>,
    ) -> Result<(), WaitError<E>> {
        exec::block_on(self.run_async(stop, || ready(condition())))
    }

    /// Polls in an async task; `condition` returns the future of one check.
    pub async fn run_async<E, F, Fut>(
        self,
        stop: &Stop,
        mut condition: F,
    ) -> Result<(), WaitError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let clock = &*self.env.clock;
        let panics = &self.env.panics;
        let timeout_at = self.timeout.map(|t| deadline_after(clock.now(), t));
        let mut cadence = Cadence::new(self.cadence, !self.legacy);
        let mut check = async || -> Option<Result<(), WaitError<E>>> {
            match panics.call_async("poll", &mut condition).await {
                Some(Ok(true)) => Some(Ok(())),
                Some(Err(e)) => Some(Err(WaitError::Condition(e))),
                Some(Ok(false)) | None => None,
            }
        };
        if !self.sliding {
            cadence.arm(clock.now());
        }
        if self.immediate
            && let Some(done) = check().await
        {
            return done;
        }
        if self.sliding {
            cadence.arm(clock.now());
        }
        loop {
            match cadence.wait(clock, stop, timeout_at).await {
                Event::Stopped => return Err(WaitError::Stopped),
                Event::TimedOut if !self.legacy => return Err(WaitError::TimedOut),
                Event::TimedOut | Event::Tick(Tick::Ended) => {
                    return check().await.unwrap_or(Err(WaitError::TimedOut));
                }
                Event::Tick(Tick::Fired) => {}
            }
            if !self.sliding {
                cadence.rearm(clock.now());
            }
            if let Some(done) = check().await {
                return done;
            }
            if self.sliding {
                cadence.rearm(clock.now());
            }
        }
    }
}

/// What the cadence reported.
#[derive(Debug, PartialEq, Eq)]
enum Tick {
    Fired,
    Ended,
}

/// The timer of one running poll (upstream's `Timer`: `C()` is
/// [`arm`](Cadence::arm), `Next()` is [`rearm`](Cadence::rearm)).
enum Cadence<S> {
    /// No timer at all: always ready.
    BackToBack,
    Ticker {
        interval: Duration,
        /// Deliver one tick that passed while the condition ran (modern) or drop it (legacy).
        catch_up: bool,
        origin: Option<Instant>,
        next: Instant,
    },
    Delays {
        delays: Box<dyn BackoffManager>,
        due: Option<Instant>,
    },
    Ticks(S),
}

impl<S: Stream<Item = ()> + Unpin> Cadence<S> {
    fn new(spec: CadenceSpec<S>, catch_up: bool) -> Self {
        match spec {
            CadenceSpec::Interval(interval) if interval.is_zero() => Cadence::BackToBack,
            CadenceSpec::Interval(interval) => Cadence::Ticker {
                interval,
                catch_up,
                origin: None,
                next: Instant::now(),
            },
            CadenceSpec::Delays(delays) => Cadence::Delays { delays, due: None },
            CadenceSpec::Ticks(ticks) => Cadence::Ticks(ticks),
        }
    }

    /// Starts the timer if it is not running yet.
    fn arm(&mut self, now: Instant) {
        match self {
            Cadence::Ticker {
                interval,
                origin: origin @ None,
                next,
                ..
            } => {
                *origin = Some(now);
                *next = deadline_after(now, *interval);
            }
            Cadence::Delays {
                delays,
                due: due @ None,
            } => {
                *due = Some(deadline_after(now, delays.next_delay()));
            }
            _ => {}
        }
    }

    /// Arms the next interval (only variable delays change; a ticker runs on).
    fn rearm(&mut self, now: Instant) {
        if let Cadence::Delays { delays, due } = self {
            *due = Some(deadline_after(now, delays.next_delay()));
        }
    }

    async fn wait(
        &mut self,
        clock: &dyn Clock,
        stop: &Stop,
        timeout: Option<Instant>,
    ) -> Event<Tick> {
        let now = clock.now();
        self.arm(now);
        let due = match self {
            Cadence::BackToBack => now,
            Cadence::Ticker {
                interval,
                catch_up,
                origin,
                next,
            } => {
                if !*catch_up && *next <= now {
                    *next = next_grid_point(origin.unwrap_or(now), *interval, now);
                }
                *next
            }
            Cadence::Delays { due, .. } => due.unwrap_or(now),
            Cadence::Ticks(ticks) => {
                return next_event(clock, stop, timeout, |cx| {
                    Pin::new(&mut *ticks)
                        .poll_next(cx)
                        .map(|tick| tick.map_or(Tick::Ended, |()| Tick::Fired))
                })
                .await;
            }
        };
        let event = sleep_until(clock, stop, timeout, due).await;
        if let (
            Event::Tick(()),
            Cadence::Ticker {
                interval,
                origin: Some(origin),
                next,
                ..
            },
        ) = (&event, &mut *self)
        {
            *next = next_grid_point(*origin, *interval, clock.now());
        }
        match event {
            Event::Stopped => Event::Stopped,
            Event::TimedOut => Event::TimedOut,
            Event::Tick(()) => Event::Tick(Tick::Fired),
        }
    }
}

/// The first instant `origin + k * interval` (k ≥ 1) strictly after `now`.
fn next_grid_point(origin: Instant, interval: Duration, now: Instant) -> Instant {
    let elapsed = now.saturating_duration_since(origin).as_nanos();
    let step = interval.as_nanos().max(1);
    let offset = (elapsed / step + 1).saturating_mul(step);
    let offset = Duration::new(
        u64::try_from(offset / 1_000_000_000).unwrap_or(u64::MAX),
        (offset % 1_000_000_000) as u32,
    );
    deadline_after(origin, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_are_strictly_after_now() {
        let origin = Instant::now();
        let ms = Duration::from_millis(1);
        assert_eq!(next_grid_point(origin, 10 * ms, origin), origin + 10 * ms);
        assert_eq!(
            next_grid_point(origin, 10 * ms, origin + 10 * ms),
            origin + 20 * ms
        );
        assert_eq!(
            next_grid_point(origin, 10 * ms, origin + 35 * ms),
            origin + 40 * ms
        );
        assert!(next_grid_point(origin, Duration::MAX, origin) > origin);
    }
}
