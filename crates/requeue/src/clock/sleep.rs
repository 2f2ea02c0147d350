//! The [`Sleep`] future shared by every clock.

use super::{Clock, TimerId};
use crate::exec;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Completes once its clock reaches a deadline.
///
/// Await it from async code, or call [`Sleep::wait`] to block the current
/// thread. Built by [`Clock::sleep_until`](trait@Clock) on `dyn Clock` values.
#[must_use = "a Sleep does nothing until it is awaited or waited on"]
pub struct Sleep<'c> {
    clock: &'c dyn Clock,
    deadline: Instant,
    registration: Option<(TimerId, Waker)>,
}

impl<'c> Sleep<'c> {
    /// A sleep on `clock` until `deadline`.
    pub fn new(clock: &'c dyn Clock, deadline: Instant) -> Self {
        Sleep {
            clock,
            deadline,
            registration: None,
        }
    }

    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Blocks the current thread until the deadline.
    pub fn wait(self) {
        exec::block_on(self)
    }

    /// Whether the deadline has passed; if not, makes sure `cx` is woken when it does.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let current = self
            .registration
            .as_ref()
            .is_some_and(|(id, w)| *id != TimerId::TRANSIENT && w.will_wake(cx.waker()));
        if !current {
            self.cancel();
            let id = self.clock.register_timer(self.deadline, cx.waker());
            self.registration = Some((id, cx.waker().clone()));
        }
        Poll::Pending
    }

    fn cancel(&mut self) {
        if let Some((id, _)) = self.registration.take()
            && id != TimerId::TRANSIENT
        {
            self.clock.cancel_timer(id);
        }
    }
}

/// Lets the real clock skip its timer thread when a `block_on` on this
/// thread will park with a timeout anyway.
pub(crate) fn park_hint(deadline: Instant, waker: &Waker) -> bool {
    exec::offer_park_deadline(deadline, waker)
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_elapsed(cx)
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registration.is_some())
            .finish()
    }
}
