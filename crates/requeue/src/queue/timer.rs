//! The queue's two clock timers: promotion of delayed items and the
//! 500 ms unfinished-work metrics tick.
//!
//! Neither is a thread or a task. Each is a [`Waker`] registered with the
//! queue's clock; waking it runs the work right there — on the real clock's
//! timer thread, or inside `FakeClock::advance`, so a test's `advance`
//! returns with every due item already queued. The wakers hold only a weak
//! reference, so a registered timer never keeps a dropped queue alive.

use super::Key;
use super::core::Shared;
use crate::clock::{Clock, deadline_after};
use crate::sync::{Arc, Weak};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

/// client-go's `defaultUnfinishedWorkUpdatePeriod`.
pub(crate) const UNFINISHED_WORK_PERIOD: Duration = Duration::from_millis(500);

pub(crate) struct Promoter<T: Key>(pub(crate) Weak<Shared<T>>);

impl<T: Key> Wake for Promoter<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.promote();
        }
    }
}

pub(crate) struct Ticker<T: Key>(pub(crate) Weak<Shared<T>>);

impl<T: Key> Wake for Ticker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.tick();
        }
    }
}

/// Builds the two wakers for a queue under construction.
pub(crate) fn wakers<T: Key>(weak: &Weak<Shared<T>>) -> (Waker, Waker) {
    (
        Waker::from(Arc::new(Promoter(weak.clone()))),
        Waker::from(Arc::new(Ticker(weak.clone()))),
    )
}

impl<T: Key> Shared<T> {
    /// Publishes unfinished work and the longest running processor, then
    /// schedules the next tick (none once shutting down).
    pub(crate) fn tick(&self) {
        let now = self.clock.now();
        if self.is_shutting_down() {
            *self.ticker_id.lock() = None;
            return;
        }
        let (sum, longest) = self.unfinished_work(now);
        if let Some(m) = &self.metrics {
            m.unfinished_work.set(sum);
            m.longest_running.set(longest);
        }
        self.schedule_tick(deadline_after(now, UNFINISHED_WORK_PERIOD));
    }

    pub(crate) fn schedule_tick(&self, at: Instant) {
        let id = self.clock.register_timer(at, &self.ticker);
        let mut slot = self.ticker_id.lock();
        if self.is_shutting_down() {
            drop(slot);
            self.clock.cancel_timer(id);
        } else {
            *slot = Some(id);
        }
    }
}
