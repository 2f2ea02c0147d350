//! The one waiting step every loop takes: stop signal first, then the
//! timeout, then whatever the loop is pacing itself by.

use super::Stop;
use crate::clock::{Clock, Sleep};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// What ended a wait. Checked in this order, so when several are ready at
/// once the stop signal wins, then the timeout: a loop never runs its body
/// again after it should have ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<T> {
    Stopped,
    TimedOut,
    Tick(T),
}

/// Waits for the stop signal, the optional timeout, or `tick`.
pub(crate) async fn next_event<T>(
    clock: &dyn Clock,
    stop: &Stop,
    timeout: Option<Instant>,
    mut tick: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Event<T> {
    let mut stopped = stop.stopped();
    let mut timeout = timeout.map(|at| Sleep::new(clock, at));
    poll_fn(|cx| {
        if Pin::new(&mut stopped).poll(cx).is_ready() {
            return Poll::Ready(Event::Stopped);
        }
        if let Some(sleep) = &mut timeout
            && sleep.poll_elapsed(cx).is_ready()
        {
            return Poll::Ready(Event::TimedOut);
        }
        tick(cx).map(Event::Tick)
    })
    .await
}

/// Waits until `due` on `clock` unless stopped or timed out first. When
/// `due` has already passed it still yields once, so a zero-period loop in
/// an async task lets other tasks run.
pub(crate) async fn sleep_until(
    clock: &dyn Clock,
    stop: &Stop,
    timeout: Option<Instant>,
    due: Instant,
) -> Event<()> {
    let mut sleep = Sleep::new(clock, due);
    let mut yielded = false;
    next_event(clock, stop, timeout, |cx| {
        if sleep.poll_elapsed(cx).is_pending() {
            return Poll::Pending;
        }
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
