//! The queue's state machine: plain data, changed only under the queue's lock.
//!
//! Every item the queue knows has one [`Entry`] in `map`; an item with no
//! pending work, no delay and no worker holding it has none. The ready and
//! delay structures hold copies of the key plus a sequence number that is
//! only valid while the entry still names it (lazy deletion).
//!
//! Invariants (checked by `check` in tests):
//! - an entry exists iff it is dirty, processing or delayed;
//! - in the ready queue (`ready_seq != 0`) iff dirty and not processing;
//! - delayed only if not dirty;
//! - `processing` and `parked` count the entries that are processing, and
//!   processing-and-dirty.

use super::delayed::DelayHeap;
use super::options::Added;
use super::ready::ReadyQueue;
use super::waiters::Waiters;
use crate::clock::TimerId;
use crate::metrics::QueueMetrics;
use crate::waker_set::WakerSet;
use std::collections::HashMap;
use std::hash::Hash;
use std::task::Waker;
use std::time::Instant;

/// No pending instance carries a priority yet.
const NO_PRIORITY: i32 = i32::MIN;

pub(crate) type Map<T> = HashMap<T, Entry, foldhash::fast::RandomState>;

/// What the queue knows about one item.
#[derive(Debug)]
pub(crate) struct Entry {
    ready_seq: u64,
    delay: Option<(Instant, u64)>,
    /// Highest priority among the adds since the item was last handed out.
    priority: i32,
    dirty: bool,
    processing: bool,
    /// Which hand-out the current processing belongs to (guards use it).
    hand_out: u64,
    added_at: Option<Instant>,
    started_at: Option<Instant>,
}

impl Entry {
    fn new(priority: i32) -> Self {
        Entry {
            ready_seq: 0,
            delay: None,
            priority,
            dirty: false,
            processing: false,
            hand_out: 0,
            added_at: None,
            started_at: None,
        }
    }

    fn delayed_as(&self, seq: u64) -> bool {
        self.delay.is_some_and(|(_, s)| s == seq)
    }
}

/// The timer the queue has asked its clock for, if any.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    pub(crate) deadline: Option<Instant>,
    pub(crate) id: Option<TimerId>,
    pub(crate) generation: u64,
}

/// A decision, made under the lock, to (re-)arm the promotion timer; carried
/// out after the lock is released because a clock may fire at once.
#[derive(Debug)]
pub(crate) struct ArmPlan {
    pub(crate) at: Instant,
    pub(crate) generation: u64,
    pub(crate) cancel: Option<TimerId>,
}

/// What `done` did.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// The item was being processed (else the call changed nothing).
    pub(crate) was_processing: bool,
    pub(crate) wake: Vec<Waker>,
}

/// Counts for [`crate::queue::QueueSnapshot`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) ready: usize,
    pub(crate) processing: usize,
    pub(crate) parked: usize,
    pub(crate) delayed: usize,
    pub(crate) waiting_gets: usize,
}

#[derive(Debug)]
pub(crate) struct State<T> {
    map: Map<T>,
    ready: ReadyQueue<T>,
    delayed: DelayHeap<T>,
    pub(crate) waiters: Waiters,
    pub(crate) drain_waiters: WakerSet,
    processing: usize,
    parked: usize,
    hand_outs: u64,
    shutting_down: bool,
    draining: bool,
    metrics: Option<QueueMetrics>,
    pub(crate) timer: TimerSlot,
    pub(crate) ticker: Option<TimerId>,
}

/// Records an item newly needing processing (client-go's add metric point).
fn note_added(metrics: &Option<QueueMetrics>, entry: &mut Entry, now: Option<Instant>) {
    if let Some(m) = metrics {
        m.depth.inc();
        m.adds.inc();
        if entry.added_at.is_none() {
            entry.added_at = now;
        }
    }
}

/// Keeps the highest priority a pending item was added with; a queued item
/// whose priority rises moves to the back of its new level.
fn raise_priority<T>(ready: &mut ReadyQueue<T>, entry: &mut Entry, priority: i32, item: T) {
    if priority <= entry.priority {
        return;
    }
    entry.priority = priority;
    if entry.ready_seq != 0 {
        ready.mark_stale();
        entry.ready_seq = ready.push(priority, item);
    }
}

fn seconds_between(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(to?.saturating_duration_since(from?).as_secs_f64())
}

impl<T: Eq + Hash + Clone> State<T> {
    pub(crate) fn new(fairness: Option<u32>, metrics: Option<QueueMetrics>) -> Self {
        State {
            map: Map::default(),
            ready: ReadyQueue::new(fairness),
            delayed: DelayHeap::new(),
            waiters: Waiters::default(),
            drain_waiters: WakerSet::default(),
            processing: 0,
            parked: 0,
            hand_outs: 0,
            shutting_down: false,
            draining: false,
            metrics,
            timer: TimerSlot::default(),
            ticker: None,
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    pub(crate) fn metrics(&self) -> Option<&QueueMetrics> {
        self.metrics.as_ref()
    }

    pub(crate) fn len(&self) -> usize {
        self.ready.len()
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
        !self.draining || self.map.is_empty()
    }

    /// Adds `item` now (`at == None`) or for `at`. Hands the item back when
    /// the queue is shutting down. Returns what happened and a get waiter to wake.
    pub(crate) fn add(
        &mut self,
        item: T,
        priority: i32,
        at: Option<Instant>,
        now: Option<Instant>,
    ) -> Result<(Added, Option<Waker>), T> {
        if self.shutting_down {
            return Err(item);
        }
        let result = match at {
            None => self.add_now(item, priority, now),
            Some(at) => (self.add_later(item, priority, at), None),
        };
        self.sweep_if_needed();
        Ok(result)
    }

    fn add_now(&mut self, item: T, priority: i32, now: Option<Instant>) -> (Added, Option<Waker>) {
        let Some(entry) = self.map.get_mut(&item) else {
            let mut entry = Entry::new(priority);
            entry.ready_seq = self.ready.push(priority, item.clone());
            entry.dirty = true;
            note_added(&self.metrics, &mut entry, now);
            self.map.insert(item, entry);
            return (Added::Queued, self.waiters.pop());
        };
        if entry.delay.take().is_some() {
            // An immediate add wins over a pending delay (deviation 3).
            self.delayed.mark_stale();
        }
        if entry.dirty {
            raise_priority(&mut self.ready, entry, priority, item);
            return (Added::Merged, None);
        }
        entry.dirty = true;
        entry.priority = entry.priority.max(priority);
        note_added(&self.metrics, entry, now);
        if entry.processing {
            self.parked += 1;
            return (Added::AfterDone, None);
        }
        entry.ready_seq = self.ready.push(entry.priority, item);
        (Added::Queued, self.waiters.pop())
    }

    fn add_later(&mut self, item: T, priority: i32, at: Instant) -> Added {
        let Some(entry) = self.map.get_mut(&item) else {
            let mut entry = Entry::new(priority);
            entry.delay = Some((at, self.delayed.push(at, item.clone())));
            self.map.insert(item, entry);
            return Added::Delayed { at };
        };
        if entry.dirty {
            // Already due (or due again after its processing): a delay
            // would only postpone it; the priority still counts.
            raise_priority(&mut self.ready, entry, priority, item);
            return Added::Merged;
        }
        entry.priority = entry.priority.max(priority);
        match entry.delay {
            Some((current, _)) if current <= at => return Added::Merged,
            Some(_) => self.delayed.mark_stale(),
            None => {}
        }
        entry.delay = Some((at, self.delayed.push(at, item)));
        Added::Delayed { at }
    }

    fn sweep_if_needed(&mut self) {
        let map = &self.map;
        if self.ready.wants_sweep() {
            self.ready
                .sweep(|item, seq| map.get(item).is_some_and(|e| e.ready_seq == seq));
        }
        self.delayed
            .maybe_sweep(|item, seq| map.get(item).is_some_and(|e| e.delayed_as(seq)));
    }

    /// Hands out the next ready item: `(item, hand-out token, priority)`.
    pub(crate) fn pop(&mut self, now: Option<Instant>) -> Option<(T, u64, i32)> {
        let map = &mut self.map;
        let metrics = &self.metrics;
        let hand_outs = &mut self.hand_outs;
        let (item, priority) = self.ready.pop(|item, seq| {
            let Some(entry) = map.get_mut(item).filter(|e| e.ready_seq == seq) else {
                return false;
            };
            entry.ready_seq = 0;
            entry.dirty = false;
            entry.processing = true;
            entry.priority = NO_PRIORITY;
            *hand_outs += 1;
            entry.hand_out = *hand_outs;
            if let Some(m) = metrics {
                m.depth.dec();
                if let Some(waited) = seconds_between(entry.added_at.take(), now) {
                    m.latency.observe(waited);
                }
                entry.started_at = now;
            }
            true
        })?;
        self.processing += 1;
        Some((item, self.hand_outs, priority))
    }

    /// Ends the processing of `item` (only of hand-out `token`, if given).
    /// A dirty item goes to the back of its priority level.
    pub(crate) fn done(&mut self, item: &T, token: Option<u64>, now: Option<Instant>) -> Finished {
        let mut finished = Finished::default();
        let Some((key, mut entry)) = self.map.remove_entry(item) else {
            return finished;
        };
        if !entry.processing || token.is_some_and(|t| t != entry.hand_out) {
            // A stray done changes nothing (deviation 2).
            self.map.insert(key, entry);
            return finished;
        }
        finished.was_processing = true;
        entry.processing = false;
        self.processing -= 1;
        if let Some(m) = &self.metrics {
            if let Some(worked) = seconds_between(entry.started_at.take(), now) {
                m.work_duration.observe(worked);
            }
        }
        if entry.dirty {
            self.parked -= 1;
            entry.ready_seq = self.ready.push(entry.priority, key.clone());
            finished.wake.extend(self.waiters.pop());
        }
        if entry.dirty || entry.delay.is_some() {
            self.map.insert(key, entry);
        }
        if self.draining && self.map.is_empty() {
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
        let stamp = self.metrics.as_ref().map(|_| now);
        for _ in 0..budget {
            let Some(due) = self.delayed.pop_due(now) else {
                return false;
            };
            let Some(entry) = self
                .map
                .get_mut(&due.item)
                .filter(|e| e.delayed_as(due.seq))
            else {
                continue;
            };
            self.delayed.took_live();
            entry.delay = None;
            entry.dirty = true;
            note_added(&self.metrics, entry, stamp);
            if entry.processing {
                self.parked += 1;
                continue;
            }
            entry.ready_seq = self.ready.push(entry.priority, due.item);
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
        let map = &self.map;
        let head = self
            .delayed
            .next_due(|item, seq| map.get(item).is_some_and(|e| e.delayed_as(seq)))?;
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
        let map = &mut self.map;
        for due in self.delayed.clear() {
            if let Some(entry) = map.get_mut(&due.item).filter(|e| e.delayed_as(due.seq)) {
                entry.delay = None;
                if !entry.dirty && !entry.processing {
                    map.remove(&due.item);
                }
                withdrawn.push(due.item);
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
        self.map
            .values()
            .filter_map(|e| e.started_at.filter(|_| e.processing))
            .map(|started| now.saturating_duration_since(started).as_secs_f64())
            .fold((0.0, 0.0), |(sum, max), age| {
                (sum + age, f64::max(max, age))
            })
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
        for entry in self.map.values() {
            assert!(
                entry.dirty || entry.processing || entry.delay.is_some(),
                "empty entry kept"
            );
            assert_eq!(entry.ready_seq != 0, entry.dirty && !entry.processing);
            assert!(!(entry.dirty && entry.delay.is_some()), "dirty and delayed");
            processing += usize::from(entry.processing);
            parked += usize::from(entry.processing && entry.dirty);
            ready += usize::from(entry.ready_seq != 0);
            delayed += usize::from(entry.delay.is_some());
        }
        assert_eq!(processing, self.processing);
        assert_eq!(parked, self.parked);
        assert_eq!(ready, self.ready.len());
        assert_eq!(delayed, self.delayed.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Drives the state machine through a long pseudo-random sequence of
    /// operations and checks every invariant after each step.
    #[test]
    fn invariants_hold_through_random_operations() {
        let mut rng = fastrand::Rng::with_seed(0x5EED);
        let mut state: State<u8> = State::new(Some(3), None);
        let start = Instant::now();
        let mut now = start;
        let mut held: Vec<(u8, u64)> = Vec::new();
        for _ in 0..20_000 {
            let key = rng.u8(0..16);
            match rng.u8(0..8) {
                0 | 1 => {
                    let _ = state.add(key, rng.i32(-2..3), None, None);
                }
                2 => {
                    let at = now + Duration::from_millis(rng.u64(1..50));
                    let _ = state.add(key, rng.i32(-2..3), Some(at), None);
                }
                3 | 4 => {
                    if let Some((item, token, _)) = state.pop(None) {
                        assert!(held.iter().all(|(k, _)| *k != item), "handed out twice");
                        held.push((item, token));
                    }
                }
                5 if !held.is_empty() => {
                    let (item, token) = held.swap_remove(rng.usize(..held.len()));
                    assert!(state.done(&item, Some(token), None).was_processing);
                }
                6 => {
                    assert!(
                        !state.done(&key, Some(u64::MAX), None).was_processing,
                        "stray done"
                    );
                }
                _ => {
                    now += Duration::from_millis(rng.u64(0..20));
                    let mut wake = Vec::new();
                    while state.promote_due(now, 4, &mut wake) {}
                }
            }
            state.check();
        }
    }
}
