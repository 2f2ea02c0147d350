//! The queue's state machine: plain data, changed only under the queue's lock.
//!
//! Every item the queue knows has a slot in the [`Index`]; an item with no
//! pending work, no delay and no worker holding it has none. The ready queue
//! and the delay heap hold slot numbers plus a sequence number that is only
//! valid while the slot still names it (lazy deletion).
//!
//! Invariants (checked by `check` in tests):
//! - a slot is occupied iff its item is dirty, processing or delayed;
//! - queued (in the ready queue) iff dirty and not processing;
//! - delayed only if not dirty;
//! - `processing` and `parked` count the slots that are processing, and
//!   processing-and-dirty.

use super::delayed::DelayHeap;
use super::index::{DELAYED, DIRTY, Index, KeyArg, PROCESSING, QUEUED, Slot};
use super::metered::{Metered, seconds_between};
use super::options::Added;
use super::outcome::{Admitted, ArmPlan, Counts, Finished, HandOut, TimerSlot};
use super::ready::ReadyQueue;
use super::waiters::Waiters;
use crate::clock::TimerId;
use crate::metrics::QueueMetrics;
use crate::waker_set::WakerSet;
use std::hash::Hash;
use std::task::Waker;
use std::time::Instant;

/// No pending instance carries a priority yet.
const NO_PRIORITY: i32 = i32::MIN;

#[derive(Debug)]
pub(crate) struct State<T> {
    index: Index<T>,
    ready: ReadyQueue<u32>,
    delayed: DelayHeap<u32>,
    pub(crate) waiters: Waiters,
    pub(crate) drain_waiters: WakerSet,
    processing: usize,
    parked: usize,
    hand_outs: u64,
    shutting_down: bool,
    draining: bool,
    metered: Option<Metered>,
    pub(crate) timer: TimerSlot,
    pub(crate) ticker: Option<TimerId>,
}

/// Whether a ready-queue entry `(slot, seq)` is still live.
fn queued_as<T: Eq + Hash>(index: &Index<T>, slot: u32, seq: u64) -> bool {
    index
        .get(slot)
        .is_some_and(|s| s.is(QUEUED) && s.seq == seq)
}

/// Whether a delay-heap entry `(slot, seq)` is still live.
fn delayed_as<T: Eq + Hash>(index: &Index<T>, slot: u32, seq: u64) -> bool {
    index
        .get(slot)
        .is_some_and(|s| s.is(DELAYED) && s.seq == seq)
}

/// Puts slot `index` at the back of its priority level.
fn enqueue<T>(ready: &mut ReadyQueue<u32>, slot: &mut Slot<T>, index: u32) {
    slot.seq = ready.push(slot.priority, index);
    slot.set(QUEUED);
}

/// Keeps the highest priority a pending item was added with; a queued item
/// whose priority rises moves to the back of its new level.
fn raise_priority<T>(ready: &mut ReadyQueue<u32>, slot: &mut Slot<T>, index: u32, priority: i32) {
    if priority <= slot.priority {
        return;
    }
    slot.priority = priority;
    if slot.is(QUEUED) {
        ready.mark_stale();
        enqueue(ready, slot, index);
    }
}

impl<T: Eq + Hash + Clone> State<T> {
    pub(crate) fn new(fairness: Option<u32>, metrics: Option<QueueMetrics>) -> Self {
        State {
            index: Index::new(),
            ready: ReadyQueue::new(fairness),
            delayed: DelayHeap::new(),
            waiters: Waiters::default(),
            drain_waiters: WakerSet::default(),
            processing: 0,
            parked: 0,
            hand_outs: 0,
            shutting_down: false,
            draining: false,
            metered: metrics.map(Metered::new),
            timer: TimerSlot::default(),
            ticker: None,
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    pub(crate) fn metrics(&self) -> Option<&QueueMetrics> {
        self.metered.as_ref().map(|m| &m.metrics)
    }

    pub(crate) fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether any item waits for a delay.
    pub(crate) fn has_delayed(&self) -> bool {
        self.delayed.len() > 0
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            ready: self.ready.len(),
            processing: self.processing,
            parked: self.parked,
            delayed: self.delayed.len(),
            waiting_gets: self.waiters.len(),
        }
    }

    /// Whether `shut_down_with_drain` may return.
    pub(crate) fn drain_finished(&self) -> bool {
        !self.draining || self.index.is_empty()
    }

    /// Adds `item` now (`at == None`) or for `at`. Hands the item back when
    /// the queue is shutting down. Returns what happened and a get waiter to wake.
    pub(crate) fn add(
        &mut self,
        item: KeyArg<'_, T>,
        priority: i32,
        at: Option<Instant>,
        now: Option<Instant>,
    ) -> Result<Admitted<T>, T> {
        if self.shutting_down {
            return Err(item.into_owned());
        }
        let (index, duplicate) = self.index.find_or_insert(item, priority);
        let result = match at {
            None => self.add_now(index, priority, now),
            Some(at) => (self.add_later(index, priority, at), None),
        };
        self.sweep_if_needed();
        Ok(Admitted {
            added: result.0,
            wake: result.1,
            duplicate,
        })
    }

    fn add_now(
        &mut self,
        index: u32,
        priority: i32,
        now: Option<Instant>,
    ) -> (Added, Option<Waker>) {
        let Some(slot) = self.index.get_mut(index) else {
            return (Added::Merged, None);
        };
        if slot.is(DELAYED) {
            // An immediate add wins over a pending delay (deviation 3).
            slot.clear(DELAYED);
            slot.delay_at = None;
            self.delayed.mark_stale();
        }
        if slot.is(DIRTY) {
            raise_priority(&mut self.ready, slot, index, priority);
            return (Added::Merged, None);
        }
        slot.set(DIRTY);
        slot.priority = slot.priority.max(priority);
        if let Some(m) = &mut self.metered {
            m.added(index, now);
        }
        if slot.is(PROCESSING) {
            self.parked += 1;
            return (Added::AfterDone, None);
        }
        enqueue(&mut self.ready, slot, index);
        (Added::Queued, self.waiters.pop())
    }

    fn add_later(&mut self, index: u32, priority: i32, at: Instant) -> Added {
        let Some(slot) = self.index.get_mut(index) else {
            return Added::Merged;
        };
        if slot.is(DIRTY) {
            // Already due (or due again after its processing): a delay
            // would only postpone it; the priority still counts.
            raise_priority(&mut self.ready, slot, index, priority);
            return Added::Merged;
        }
        slot.priority = slot.priority.max(priority);
        if slot.is(DELAYED) {
            if slot.delay_at.is_some_and(|current| current <= at) {
                return Added::Merged;
            }
            self.delayed.mark_stale();
        }
        slot.seq = self.delayed.push(at, index);
        slot.delay_at = Some(at);
        slot.set(DELAYED);
        Added::Delayed { at }
    }

    fn sweep_if_needed(&mut self) {
        let index = &self.index;
        if self.ready.wants_sweep() {
            self.ready.sweep(|&slot, seq| queued_as(index, slot, seq));
        }
        self.delayed
            .maybe_sweep(|&slot, seq| delayed_as(index, slot, seq));
    }

    /// Hands out the next ready item (a clone; the queue keeps its own).
    pub(crate) fn pop(&mut self, now: Option<Instant>) -> Option<HandOut<T>> {
        let index = &self.index;
        let (slot_index, priority) = self.ready.pop(|&slot, seq| queued_as(index, slot, seq))?;
        let slot = self.index.get_mut(slot_index)?;
        slot.clear(QUEUED | DIRTY);
        slot.set(PROCESSING);
        slot.priority = NO_PRIORITY;
        self.hand_outs += 1;
        slot.hand_out = self.hand_outs;
        let item = slot.key.clone()?;
        self.processing += 1;
        if let Some(m) = &mut self.metered {
            m.metrics.depth.dec();
            let added = m.started(slot_index, now);
            if let Some(waited) = seconds_between(added, now) {
                m.metrics.latency.observe(waited);
            }
        }
        Some(HandOut {
            item,
            slot: slot_index,
            token: self.hand_outs,
            priority,
        })
    }

    /// Ends the processing of `item`, whichever hand-out it was.
    pub(crate) fn done_item(&mut self, item: &T, now: Option<Instant>) -> Finished<T> {
        match self.index.find(item) {
            Some(slot) => self.done(slot, None, now),
            None => Finished::unchanged(),
        }
    }

    /// Ends the processing of the item in `slot_index` (only of hand-out
    /// `token`, if given). A dirty item goes to the back of its priority level.
    pub(crate) fn done(
        &mut self,
        slot_index: u32,
        token: Option<u64>,
        now: Option<Instant>,
    ) -> Finished<T> {
        let mut finished = Finished::unchanged();
        let Some(slot) = self.index.get_mut(slot_index) else {
            return finished;
        };
        if !slot.is(PROCESSING) || token.is_some_and(|t| t != slot.hand_out) {
            // A stray done changes nothing (deviation 2).
            return finished;
        }
        finished.was_processing = true;
        slot.clear(PROCESSING);
        self.processing -= 1;
        if let Some(m) = &mut self.metered {
            let started = m.finished(slot_index);
            if let Some(worked) = seconds_between(started, now) {
                m.metrics.work_duration.observe(worked);
            }
        }
        if slot.is(DIRTY) {
            self.parked -= 1;
            enqueue(&mut self.ready, slot, slot_index);
            finished.wake.extend(self.waiters.pop());
        } else if !slot.is(DELAYED) {
            finished.released = self.index.remove(slot_index);
        }
        if self.draining && self.index.is_empty() {
            finished.wake.extend(self.drain_waiters.drain());
        }
        finished
    }

    /// Moves up to `budget` due items from the delay heap into the ready
    /// queue. Returns whether due items may remain.
    pub(crate) fn promote_due(
        &mut self,
        now: Instant,
        budget: usize,
        wake: &mut Vec<Waker>,
    ) -> bool {
        let stamp = self.metered.as_ref().map(|_| now);
        for _ in 0..budget {
            let Some(due) = self.delayed.pop_due(now) else {
                return false;
            };
            if !delayed_as(&self.index, due.item, due.seq) {
                continue;
            }
            let Some(slot) = self.index.get_mut(due.item) else {
                continue;
            };
            self.delayed.took_live();
            slot.clear(DELAYED);
            slot.delay_at = None;
            slot.set(DIRTY);
            if let Some(m) = &mut self.metered {
                m.added(due.item, stamp);
            }
            if slot.is(PROCESSING) {
                self.parked += 1;
                continue;
            }
            enqueue(&mut self.ready, slot, due.item);
            wake.extend(self.waiters.pop());
        }
        true
    }

    /// Decides whether the promotion timer must be (re-)armed for the
    /// earliest waiting item.
    pub(crate) fn plan_arm(&mut self) -> Option<ArmPlan> {
        if self.shutting_down {
            return None;
        }
        let index = &self.index;
        let head = self
            .delayed
            .next_due(|&slot, seq| delayed_as(index, slot, seq))?;
        if self.timer.deadline.is_some_and(|armed| armed <= head) {
            return None;
        }
        self.timer.generation += 1;
        self.timer.deadline = Some(head);
        Some(ArmPlan {
            at: head,
            generation: self.timer.generation,
            cancel: self.timer.id.take(),
        })
    }

    /// Starts shutting down: refuses further adds, withdraws the waiting
    /// (delayed) items and returns them, and collects everyone to wake.
    pub(crate) fn shut_down(&mut self, drain: bool) -> (Vec<T>, Vec<Waker>) {
        self.shutting_down = true;
        self.draining = drain;
        let mut withdrawn = Vec::new();
        let due = self.delayed.clear();
        for waiting in due {
            if !delayed_as(&self.index, waiting.item, waiting.seq) {
                continue;
            }
            let Some(slot) = self.index.get_mut(waiting.item) else {
                continue;
            };
            slot.clear(DELAYED);
            slot.delay_at = None;
            if slot.is(PROCESSING) {
                withdrawn.extend(slot.key.clone());
            } else {
                withdrawn.extend(self.index.remove(waiting.item));
            }
        }
        let mut wake = self.waiters.take_all();
        if self.drain_finished() {
            wake.extend(self.drain_waiters.drain());
        }
        (withdrawn, wake)
    }

    /// Sum and maximum of the ages of in-flight items, in seconds.
    pub(crate) fn unfinished_work(&self, now: Instant) -> (f64, f64) {
        self.metered
            .as_ref()
            .map_or((0.0, 0.0), |m| m.unfinished_work(now))
    }

    /// Takes the get waiter `id` out of the line; if it had been woken for an
    /// item it will not take, returns the next waiter to pass the wake-up to.
    pub(crate) fn withdraw_waiter(&mut self, id: u64) -> Option<Waker> {
        if self.waiters.remove(id) || self.ready.len() == 0 {
            return None;
        }
        self.waiters.pop()
    }

    /// Checks every invariant of the module docs (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut processing = 0;
        let mut parked = 0;
        let mut ready = 0;
        let mut delayed = 0;
        for (_, slot) in self.index.iter() {
            let (dirty, busy, queued, waiting) = (
                slot.is(DIRTY),
                slot.is(PROCESSING),
                slot.is(QUEUED),
                slot.is(DELAYED),
            );
            assert!(dirty || busy || waiting, "empty slot kept");
            assert_eq!(queued, dirty && !busy);
            assert!(!(dirty && waiting), "dirty and delayed");
            assert_eq!(waiting, slot.delay_at.is_some());
            processing += usize::from(busy);
            parked += usize::from(busy && dirty);
            ready += usize::from(queued);
            delayed += usize::from(waiting);
        }
        assert_eq!(processing, self.processing);
        assert_eq!(parked, self.parked);
        assert_eq!(ready, self.ready.len());
        assert_eq!(delayed, self.delayed.len());
        assert_eq!(self.index.len(), self.index.iter().count());
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
