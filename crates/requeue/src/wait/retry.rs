//! Bounded retries with exponential backoff (apimachinery's `ExponentialBackoff`).

use super::backoff::Backoff;
use super::env::LoopEnv;
use super::event::{Event, sleep_until};
use super::{Stop, WaitError};
use crate::clock::deadline_after;
use crate::exec;
use std::future::{Future, ready};
use std::time::Duration;

/// Retries a condition at most `backoff.steps` times, sleeping
/// [`Backoff::step`] between attempts.
///
/// # Usage
///
/// ```
/// use std::time::Duration;
/// use requeue::wait::{Backoff, Retry, Stop, WaitError};
///
/// let backoff = Backoff::new(Duration::from_millis(1)).factor(2.0).steps(3);
/// let mut calls = 0;
/// let result = Retry::new(backoff).run(&Stop::never(), || {
///     calls += 1;
///     Ok::<_, std::io::Error>(false)
/// });
/// assert!(matches!(result, Err(WaitError::Exhausted)));
/// assert_eq!(calls, 3);
/// ```
///
/// # Implementation
///
/// While steps remain: return [`WaitError::Stopped`] if stopped (or
/// [`WaitError::TimedOut`] past the timeout), run the condition, stop after
/// the last step, else sleep the next step. At most `steps` attempts and
/// `steps - 1` sleeps; `steps == 0` never calls the condition.
///
/// Upstream's surprising rule is kept: reaching `cap` zeroes the remaining
/// steps, so the retry ends right after the sleep that hit the cap without
/// another attempt (`{1s, ×2, 10 steps, cap 3s}` gives two attempts;
/// kubernetes/kubernetes#131122). Use [`Poller::with_delays`](super::Poller::with_delays)
/// with the backoff for "grow to the cap, then keep trying".
///
/// # Cancellation safety
///
/// Dropping the future of [`run_async`](Retry::run_async) ends the retries.
#[derive(Debug)]
pub struct Retry {
    backoff: Backoff,
    timeout: Option<Duration>,
    env: LoopEnv,
}

impl Retry {
    /// Retries paced by `backoff` on the real clock.
    pub fn new(backoff: Backoff) -> Self {
        Retry {
            backoff,
            timeout: None,
            env: LoopEnv::default(),
        }
    }

    /// Gives up with [`WaitError::TimedOut`] once `timeout` has passed since the call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    loop_env_setters!();

    /// Retries on this thread.
    pub fn run<E>(
        self,
        stop: &Stop,
        mut condition: impl FnMut() -> Result<bool, E>,
    ) -> Result<(), WaitError<E>> {
        exec::block_on(self.run_async(stop, || ready(condition())))
    }

    /// Retries in an async task.
    pub async fn run_async<E, F, Fut>(
        mut self,
        stop: &Stop,
        mut condition: F,
    ) -> Result<(), WaitError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let clock = &*self.env.clock;
        let timeout_at = self.timeout.map(|t| deadline_after(clock.now(), t));
        while self.backoff.steps > 0 {
            if stop.is_stopped() {
                return Err(WaitError::Stopped);
            }
            if timeout_at.is_some_and(|at| clock.now() >= at) {
                return Err(WaitError::TimedOut);
            }
            match self.env.panics.call_async("retry", &mut condition).await {
                Some(Ok(true)) => return Ok(()),
                Some(Err(e)) => return Err(WaitError::Condition(e)),
                Some(Ok(false)) | None => {}
            }
            if self.backoff.steps == 1 {
                break;
            }
            let due = deadline_after(clock.now(), self.backoff.step());
            match sleep_until(clock, stop, timeout_at, due).await {
                Event::Stopped => return Err(WaitError::Stopped),
                Event::TimedOut => return Err(WaitError::TimedOut),
                Event::Tick(()) => {}
            }
        }
        Err(WaitError::Exhausted)
    }
}

/// Retries `condition` with exponential backoff (apimachinery's `wait.ExponentialBackoff`).
pub fn exponential_backoff<E>(
    backoff: Backoff,
    condition: impl FnMut() -> Result<bool, E>,
) -> Result<(), WaitError<E>> {
    Retry::new(backoff).run(&Stop::never(), condition)
}

/// [`exponential_backoff`] that also ends when `stop` fires
/// (apimachinery's `ExponentialBackoffWithContext`).
pub fn exponential_backoff_until<E>(
    backoff: Backoff,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> Result<(), WaitError<E>> {
    Retry::new(backoff).run(stop, condition)
}

/// Async [`exponential_backoff_until`].
pub async fn exponential_backoff_async<E, F, Fut>(
    backoff: Backoff,
    stop: &Stop,
    condition: F,
) -> Result<(), WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    Retry::new(backoff).run_async(stop, condition).await
}
