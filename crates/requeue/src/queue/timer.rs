//! The queue's two clock timers: promotion of delayed items and the
//! 500 ms unfinished-work metrics tick.
//!
//! Neither is a thread or a task. Each is a [`Waker`] registered with the
//! queue's clock; waking it runs the work right there — on the real clock's
//! timer thread, or inside `FakeClock::advance`, so a test's `advance`
//! returns with every due item already queued. The wakers hold only a weak
//! reference, so a registered timer never keeps a dropped queue alive.

use super::outcome::ArmPlan;
use super::{Key, Shared};
use crate::clock::{Clock, TimerId};
use crate::sync::{Arc, Weak};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

/// How many due items one promotion pass moves before releasing the lock,
/// so consumers are not shut out while a large batch comes due.
pub(crate) const PROMOTION_BATCH: usize = 4096;

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

impl<T: Key> Shared<T> {
    /// Moves every due item into the ready queue, then re-arms for the next one.
    pub(crate) fn promote(&self) {
        loop {
            let now = self.clock.now();
            let mut wake = Vec::new();
            let mut state = self.state.lock();
            if state.timer.deadline.is_some_and(|d| d <= now) {
                state.timer.deadline = None;
                state.timer.id = None;
            }
            let more = state.promote_due(now, PROMOTION_BATCH, &mut wake);
            let plan = if more { None } else { state.plan_arm() };
            drop(state);
            wake.into_iter().for_each(Waker::wake);
            if let Some(plan) = plan {
                self.arm(plan);
            }
            if !more {
                return;
            }
        }
    }

    /// Carries out an [`ArmPlan`] made under the lock. If another plan
    /// superseded this one meanwhile, the timer just registered is withdrawn.
    pub(crate) fn arm(&self, plan: ArmPlan) {
        if let Some(old) = plan.cancel {
            self.clock.cancel_timer(old);
        }
        // May run `promote` right here if the deadline has already passed.
        let id = self.clock.register_timer(plan.at, &self.promoter);
        if id == TimerId::TRANSIENT {
            return;
        }
        let mut state = self.state.lock();
        if state.timer.generation == plan.generation && state.timer.deadline == Some(plan.at) {
            state.timer.id = Some(id);
        } else {
            drop(state);
            self.clock.cancel_timer(id);
        }
    }

    /// Publishes unfinished work and the longest running processor, then
    /// schedules the next tick (none once shutting down).
    pub(crate) fn tick(&self) {
        let now = self.clock.now();
        {
            let mut state = self.state.lock();
            if state.is_shutting_down() {
                state.ticker = None;
                return;
            }
            let (sum, longest) = state.unfinished_work(now);
            if let Some(m) = state.metrics() {
                m.unfinished_work.set(sum);
                m.longest_running.set(longest);
            }
        }
        self.schedule_tick(crate::clock::deadline_after(now, UNFINISHED_WORK_PERIOD));
    }

    pub(crate) fn schedule_tick(&self, at: Instant) {
        let id = self.clock.register_timer(at, &self.ticker);
        let mut state = self.state.lock();
        if state.is_shutting_down() {
            drop(state);
            self.clock.cancel_timer(id);
        } else {
            state.ticker = Some(id);
        }
    }

    /// Withdraws both timers (at shutdown).
    pub(crate) fn cancel_timers(&self, timers: [Option<TimerId>; 2]) {
        timers
            .into_iter()
            .flatten()
            .for_each(|id| self.clock.cancel_timer(id));
    }
}
