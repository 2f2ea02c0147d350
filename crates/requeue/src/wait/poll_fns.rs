//! The upstream polling functions by name, each a thin wrapper over [`Poller`].
//!
//! The `poll*` names without `until_timeout`/`until_cancel` keep the
//! deprecated functions' timing ([`Poller::legacy`]): not immediate unless
//! the name says so, ticks missed while the condition runs are dropped, a
//! `timeout` of zero means none, and the condition runs one last time when
//! the timeout passes. Unlike upstream, every one of them reports *why* it
//! ended through [`WaitError`].

use super::poll::Poller;
use super::{Stop, WaitError};
use futures_core::Stream;
use std::future::Future;
use std::time::Duration;

fn legacy(interval: Duration, timeout: Duration, immediate: bool) -> Poller {
    let poller = Poller::every(interval)
        .legacy(true)
        .sliding(true)
        .immediate(immediate);
    if timeout.is_zero() {
        poller
    } else {
        poller.timeout(timeout)
    }
}

fn modern(interval: Duration, immediate: bool) -> Poller {
    Poller::every(interval).immediate(immediate)
}

/// Result of a poll: `Ok(())` once the condition held.
pub type PollResult<E> = Result<(), WaitError<E>>;

/// Checks `condition` every `interval` until it holds or `timeout` passes
/// (apimachinery's `wait.Poll`). The first check is one interval in.
pub fn poll<E>(
    interval: Duration,
    timeout: Duration,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, timeout, false).run(&Stop::never(), condition)
}

/// Async [`poll`].
pub async fn poll_async<E, F, Fut>(
    interval: Duration,
    timeout: Duration,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, timeout, false)
        .run_async(&Stop::never(), condition)
        .await
}

/// [`poll`] that checks once before the first wait (apimachinery's `wait.PollImmediate`).
pub fn poll_immediate<E>(
    interval: Duration,
    timeout: Duration,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, timeout, true).run(&Stop::never(), condition)
}

/// Async [`poll_immediate`].
pub async fn poll_immediate_async<E, F, Fut>(
    interval: Duration,
    timeout: Duration,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, timeout, true)
        .run_async(&Stop::never(), condition)
        .await
}

/// Checks `condition` every `interval` until it holds or fails
/// (apimachinery's `wait.PollInfinite`).
pub fn poll_infinite<E>(
    interval: Duration,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, Duration::ZERO, false).run(&Stop::never(), condition)
}

/// Async [`poll_infinite`].
pub async fn poll_infinite_async<E, F, Fut>(interval: Duration, condition: F) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, Duration::ZERO, false)
        .run_async(&Stop::never(), condition)
        .await
}

/// [`poll_infinite`] that checks once before the first wait
/// (apimachinery's `wait.PollImmediateInfinite`).
pub fn poll_immediate_infinite<E>(
    interval: Duration,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, Duration::ZERO, true).run(&Stop::never(), condition)
}

/// Async [`poll_immediate_infinite`].
pub async fn poll_immediate_infinite_async<E, F, Fut>(
    interval: Duration,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, Duration::ZERO, true)
        .run_async(&Stop::never(), condition)
        .await
}

/// Checks `condition` every `interval` until it holds, fails, or `stop`
/// fires (apimachinery's `wait.PollUntil`).
pub fn poll_until<E>(
    interval: Duration,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, Duration::ZERO, false).run(stop, condition)
}

/// Async [`poll_until`].
pub async fn poll_until_async<E, F, Fut>(
    interval: Duration,
    stop: &Stop,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, Duration::ZERO, false)
        .run_async(stop, condition)
        .await
}

/// [`poll_until`] that checks once before the first wait
/// (apimachinery's `wait.PollImmediateUntil`).
pub fn poll_immediate_until<E>(
    interval: Duration,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    legacy(interval, Duration::ZERO, true).run(stop, condition)
}

/// Async [`poll_immediate_until`].
pub async fn poll_immediate_until_async<E, F, Fut>(
    interval: Duration,
    stop: &Stop,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    legacy(interval, Duration::ZERO, true)
        .run_async(stop, condition)
        .await
}

/// Checks `condition` on a ticker of `interval` until it holds, fails,
/// `stop` fires, or `timeout` passes — with the modern timing and no final
/// check at the timeout (apimachinery's `PollUntilContextTimeout`).
pub fn poll_until_timeout<E>(
    interval: Duration,
    timeout: Duration,
    immediate: bool,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    modern(interval, immediate)
        .timeout(timeout)
        .run(stop, condition)
}

/// Async [`poll_until_timeout`].
pub async fn poll_until_timeout_async<E, F, Fut>(
    interval: Duration,
    timeout: Duration,
    immediate: bool,
    stop: &Stop,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    modern(interval, immediate)
        .timeout(timeout)
        .run_async(stop, condition)
        .await
}

/// Checks `condition` on a ticker of `interval` until it holds, fails or
/// `stop` fires (apimachinery's `PollUntilContextCancel`).
pub fn poll_until_cancel<E>(
    interval: Duration,
    immediate: bool,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E> {
    modern(interval, immediate).run(stop, condition)
}

/// Async [`poll_until_cancel`].
pub async fn poll_until_cancel_async<E, F, Fut>(
    interval: Duration,
    immediate: bool,
    stop: &Stop,
    condition: F,
) -> PollResult<E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    modern(interval, immediate).run_async(stop, condition).await
}

/// Checks `condition` once per item of `ticks`; when `ticks` ends, checks
/// once more and reports [`WaitError::TimedOut`] if it still does not hold
/// (apimachinery's `WaitFor`). The stream is dropped on return, which is how
/// its producer learns to stop.
pub fn wait_for<E, S>(
    ticks: S,
    stop: &Stop,
    condition: impl FnMut() -> Result<bool, E>,
) -> PollResult<E>
where
    S: Stream<Item = ()> + Unpin,
{
    Poller::on_ticks(ticks).run(stop, condition)
}

/// Async [`wait_for`].
pub async fn wait_for_async<E, S, F, Fut>(ticks: S, stop: &Stop, condition: F) -> PollResult<E>
where
    S: Stream<Item = ()> + Unpin,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    Poller::on_ticks(ticks).run_async(stop, condition).await
}
