//! The per-key state machine: every transition of one key, applied to its
//! shard under the shard's lock.
//!
//! A key needing processing is `DIRTY`; one handed out is `PROCESSING`
//! (both at once when it was re-added meanwhile: it is queued again when
//! it is done); a dirty key that is not processing is `QUEUED` (in the
//! ready line); a key waiting for a delay is `DELAYED` (never also dirty).
//! A key in no state has no slot. The transitions push ready keys into a
//! [`Sink`]: the lock-free [`Fifo`] while every item has priority 0, the
//! ordered [`ReadyQueue`] once priorities are in use. Delayed keys go to
//! the delay heap through a [`DelayCtx`], which takes the heap's lock
//! inside the shard's (the only nesting of the two).

use super::delays::{DelayCtx, Nanos};
use super::fifo::Fifo;
use super::outcome::{Finished, HandOut};
use super::ready::ReadyQueue;
use super::shard::{DELAYED, DIRTY, Handle, NO_PRIORITY, PROCESSING, QUEUED, Shard};
use crate::handout::Added;
use crate::metrics::QueueMetrics;
use std::hash::Hash;
use std::time::Instant;

/// Where keys that become ready go.
pub(crate) enum Sink<'a> {
    /// The lock-free line (every item has priority 0).
    Fifo(&'a Fifo),
    /// The ordered line, under the queue's order lock (priority mode).
    Ordered(&'a mut ReadyQueue<Handle>),
}

impl Sink<'_> {
    /// Puts `handle` at the back of `priority`'s level; returns its
    /// sequence in the ordered line (0 in the FIFO).
    fn push(&mut self, handle: Handle, priority: i32) -> u64 {
        match self {
            Sink::Fifo(fifo) => {
                fifo.push(handle);
                0
            }
            Sink::Ordered(ready) => ready.push(priority, handle),
        }
    }
}

impl<T: Eq + Hash + Clone> Shard<T> {
    fn priority(&self, slot: u32) -> i32 {
        self.order_marks
            .get(slot as usize)
            .map_or(0, |m| m.priority)
    }

    /// Keeps the highest priority a pending key was added with.
    fn note_priority(&mut self, slot: u32, priority: i32) {
        if let Some(mark) = self.order_marks.get_mut(slot as usize) {
            mark.priority = mark.priority.max(priority);
        }
    }

    /// Puts slot `slot` at the back of its priority level.
    fn enqueue(&mut self, slot: u32, sink: &mut Sink<'_>) {
        let handle = self.handle(slot);
        let priority = self.priority(slot);
        let seq = sink.push(handle, priority);
        if let Some(mark) = self.order_marks.get_mut(slot as usize) {
            mark.seq = seq;
        }
        if let Some(s) = self.get_mut(slot)
            && !s.is(QUEUED)
        {
            s.set(QUEUED);
            self.counts.ready += 1;
        }
    }

    /// A pending key added again with a higher priority keeps it; if it is
    /// in the ordered line, it moves to the back of its new level.
    fn raise_priority(&mut self, slot: u32, priority: i32, sink: &mut Sink<'_>) {
        let Some(mark) = self.order_marks.get_mut(slot as usize) else {
            return;
        };
        if priority <= mark.priority {
            return;
        }
        mark.priority = priority;
        let in_ordered_line = mark.seq != 0;
        let queued = self.get(slot).is_some_and(|s| s.is(QUEUED));
        if queued
            && in_ordered_line
            && let Sink::Ordered(ready) = sink
        {
            ready.mark_stale();
            self.enqueue(slot, sink);
        }
    }

    /// Records that a key newly needs processing (client-go's add metric point).
    fn note_added(&mut self, slot: u32, now: Option<Instant>, metrics: Option<&QueueMetrics>) {
        if let Some(times) = &mut self.times {
            times.added(slot, now);
        }
        if let Some(m) = metrics {
            m.depth.inc();
            m.adds.inc();
        }
    }

    /// An add with no delay. Returns what happened and whether the key was
    /// made ready (pushed into the sink).
    pub(crate) fn add_now(
        &mut self,
        slot: u32,
        priority: i32,
        now: Option<Instant>,
        metrics: Option<&QueueMetrics>,
        sink: &mut Sink<'_>,
        delays: &mut DelayCtx<'_>,
    ) -> (Added, bool) {
        let Some(s) = self.get_mut(slot) else {
            return (Added::Merged, false);
        };
        if s.is(DELAYED) {
            // An immediate add wins over a pending delay (deviation 3):
            // the heap's entry goes stale.
            s.clear(DELAYED);
            self.counts.delayed -= 1;
            delays.cancel();
        }
        let Some(s) = self.get_mut(slot) else {
            return (Added::Merged, false);
        };
        if s.is(DIRTY) {
            self.raise_priority(slot, priority, sink);
            return (Added::Merged, false);
        }
        s.set(DIRTY);
        let processing = s.is(PROCESSING);
        self.note_priority(slot, priority);
        self.note_added(slot, now, metrics);
        if processing {
            self.counts.parked += 1;
            return (Added::AfterDone, false);
        }
        self.enqueue(slot, sink);
        (Added::Queued, true)
    }

    /// An add for `at` (on the queue's nanosecond scale): the earliest
    /// pending time wins; a key already due (dirty) is not delayed.
    /// Returns whether the key now waits (for `at`).
    pub(crate) fn add_later(
        &mut self,
        slot: u32,
        priority: i32,
        at: Nanos,
        sink: &mut Sink<'_>,
        delays: &mut DelayCtx<'_>,
    ) -> bool {
        let Some(s) = self.get(slot) else {
            return false;
        };
        if s.is(DIRTY) {
            // Already due (or due again after its processing): a delay
            // would only postpone it; the priority still counts.
            self.raise_priority(slot, priority, sink);
            return false;
        }
        let delayed = s.is(DELAYED);
        self.note_priority(slot, priority);
        self.enable_delays();
        if delayed {
            if self.delay_marks[slot as usize].at <= at {
                return false;
            }
            delays.cancel();
        }
        let seq = delays.push(at, self.handle(slot));
        self.delay_marks[slot as usize] = super::shard::DelayMark { at, seq };
        if !delayed {
            if let Some(s) = self.get_mut(slot) {
                s.set(DELAYED);
            }
            self.counts.delayed += 1;
        }
        true
    }

    /// Hands out the key in `slot` if it is ready: it becomes processing
    /// under a new generation, and a clone of the key goes to the caller.
    pub(crate) fn hand_out(
        &mut self,
        slot: u32,
        now: Option<Instant>,
        metrics: Option<&QueueMetrics>,
    ) -> Option<HandOut<T>> {
        let s = self.get_mut(slot)?;
        if !s.is(QUEUED) {
            return None;
        }
        s.clear(QUEUED | DIRTY);
        s.set(PROCESSING);
        let token = s.next_generation();
        let item = s.key.clone()?;
        self.counts.ready -= 1;
        self.counts.processing += 1;
        let priority = match self.order_marks.get_mut(slot as usize) {
            Some(mark) => {
                mark.seq = 0;
                std::mem::replace(&mut mark.priority, NO_PRIORITY)
            }
            None => 0,
        };
        if let Some(times) = &mut self.times {
            let waited = times.started(slot, now);
            if let Some(m) = metrics {
                m.depth.dec();
                if let Some(waited) = waited {
                    m.latency.observe(waited);
                }
            }
        }
        Some(HandOut {
            item,
            handle: self.handle(slot),
            token,
            priority,
        })
    }

    /// Ends the processing of the key in `slot` (only of hand-out `token`,
    /// if given). A dirty key goes to the back of its priority level; a key
    /// in no state any more leaves the shard.
    pub(crate) fn done(
        &mut self,
        slot: u32,
        token: Option<u32>,
        now: Option<Instant>,
        metrics: Option<&QueueMetrics>,
        sink: &mut Sink<'_>,
    ) -> Finished<T> {
        let mut finished = Finished::unchanged();
        let Some(s) = self.get_mut(slot) else {
            return finished;
        };
        if !s.is(PROCESSING) || token.is_some_and(|t| t != s.generation()) {
            // A stray done changes nothing (deviation 2).
            return finished;
        }
        finished.was_processing = true;
        s.clear(PROCESSING);
        let (dirty, delayed) = (s.is(DIRTY), s.is(DELAYED));
        self.counts.processing -= 1;
        if let Some(times) = &mut self.times {
            let worked = times.finished(slot, now);
            if let Some(m) = metrics
                && let Some(worked) = worked
            {
                m.work_duration.observe(worked);
            }
        }
        if dirty {
            self.counts.parked -= 1;
            self.enqueue(slot, sink);
            finished.readied = true;
        } else if !delayed {
            finished.released = self.remove(slot);
        }
        finished
    }

    /// Makes the key in `slot` due, if the delay entry `seq` is still its
    /// live one. Returns `None` for a stale entry, else whether the key was
    /// made ready (a key being processed is queued when it is done).
    pub(crate) fn promote(
        &mut self,
        slot: u32,
        seq: u64,
        now: Option<Instant>,
        metrics: Option<&QueueMetrics>,
        sink: &mut Sink<'_>,
    ) -> Option<bool> {
        let s = self.get_mut(slot)?;
        if !s.is(DELAYED) || self.delay_marks.get(slot as usize)?.seq != seq {
            return None;
        }
        let s = self.get_mut(slot)?;
        s.clear(DELAYED);
        s.set(DIRTY);
        let processing = s.is(PROCESSING);
        self.counts.delayed -= 1;
        self.note_added(slot, now, metrics);
        if processing {
            self.counts.parked += 1;
            return Some(false);
        }
        self.enqueue(slot, sink);
        Some(true)
    }

    /// Withdraws the delayed key in `slot` at shutdown, if the delay entry
    /// `seq` is still its live one, and returns (a clone of) the key.
    pub(crate) fn withdraw(&mut self, slot: u32, seq: u64) -> Option<T> {
        let s = self.get_mut(slot)?;
        if !s.is(DELAYED) || self.delay_marks.get(slot as usize)?.seq != seq {
            return None;
        }
        let s = self.get_mut(slot)?;
        s.clear(DELAYED);
        let processing = s.is(PROCESSING);
        let key = if processing { s.key.clone() } else { None };
        self.counts.delayed -= 1;
        if processing { key } else { self.remove(slot) }
    }

    /// Whether `slot` is queued in the ordered line under `seq`.
    pub(crate) fn queued_as(&self, slot: u32, seq: u64) -> bool {
        self.get(slot).is_some_and(|s| s.is(QUEUED))
            && self
                .order_marks
                .get(slot as usize)
                .is_some_and(|m| m.seq == seq)
    }

    /// Puts a key that was in the FIFO when the queue entered priority mode
    /// into the ordered line (at priority 0, in FIFO order).
    pub(crate) fn move_to_ordered(&mut self, slot: u32, sink: &mut Sink<'_>) {
        let queued = self.get(slot).is_some_and(|s| s.is(QUEUED));
        let unplaced = self
            .order_marks
            .get(slot as usize)
            .is_some_and(|m| m.seq == 0);
        if queued && unplaced {
            self.enqueue(slot, sink);
        }
    }

    /// Checks the shard's invariants (tests only):
    /// - a slot is occupied iff its key is dirty, processing or delayed;
    /// - queued iff dirty and not processing;
    /// - delayed only if not dirty;
    /// - the counts match the flags.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut counts = super::shard::Counts::default();
        for (_, s) in self.iter() {
            let (dirty, busy, queued, waiting) =
                (s.is(DIRTY), s.is(PROCESSING), s.is(QUEUED), s.is(DELAYED));
            assert!(dirty || busy || waiting, "empty slot kept");
            assert_eq!(queued, dirty && !busy);
            assert!(!(dirty && waiting), "dirty and delayed");
            counts.processing += usize::from(busy);
            counts.parked += usize::from(busy && dirty);
            counts.ready += usize::from(queued);
            counts.delayed += usize::from(waiting);
        }
        assert_eq!(counts, self.counts);
        assert_eq!(self.live(), self.iter().count());
    }
}
