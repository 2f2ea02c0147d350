//! The queue's delays: the heap of waiting keys, the promotion timer, and
//! the promotion of due keys into the ready line.
//!
//! Promotion runs in whichever thread notices due keys first: a getter
//! (before it looks for a ready item, so a busy consumer never waits for
//! the timer to be scheduled) or the clock's timer (when nobody is getting).
//! One promoter at a time, so due keys enter the ready line in due order;
//! others skip ahead to the ready line rather than wait.

use super::core::Shared;
use super::delayed::{DelayHeap, Waiting};
use super::outcome::{ArmPlan, TimerSlot};
use super::shard::Handle;
use super::{Key, shard};
use crate::clock::{Clock, TimerId, deadline_after};
use crate::sync::{AtomicU64, Ordering, QueueMutex, fence};
use std::time::{Duration, Instant};

/// How many due items one promotion pass moves before releasing the delay
/// lock, so producers are not shut out while a large batch comes due.
pub(crate) const PROMOTION_BATCH: usize = 256;

/// `next_due` (a [`hint`]) when no delay is pending.
pub(crate) const NONE_DUE: u64 = u64::MAX;

/// A time on the queue's nanosecond scale: the queue's epoch is at
/// [`EPOCH_NANOS`], and every `Instant` a clock can give (before the epoch
/// too: a `FakeClock` can be set to any earlier or much later instant)
/// has its exact place on it.
pub(crate) type Nanos = u128;

/// Where the queue's epoch sits on its scale (far above any span a
/// `Duration` can have, so nothing before it saturates).
const EPOCH_NANOS: Nanos = 1 << 100;

/// `at` on the queue's nanosecond scale.
pub(crate) fn nanos_since(epoch: Instant, at: Instant) -> Nanos {
    if at >= epoch {
        EPOCH_NANOS + (at - epoch).as_nanos()
    } else {
        EPOCH_NANOS - (epoch - at).as_nanos()
    }
}

/// The instant at `nanos` on the queue's scale (saturating).
pub(crate) fn instant_at(epoch: Instant, nanos: Nanos) -> Instant {
    let span = |n: Nanos| {
        let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (n % 1_000_000_000) as u32)
    };
    if nanos >= EPOCH_NANOS {
        deadline_after(epoch, span(nanos - EPOCH_NANOS))
    } else {
        epoch
            .checked_sub(span(EPOCH_NANOS - nanos))
            .unwrap_or(epoch)
    }
}

/// The time a [`hint`] inside its range stands for.
fn unhint(hint: u64) -> Nanos {
    HINT_LOW + Nanos::from(hint)
}

/// The lowest time a [`hint`] tells apart (146 years before the epoch).
const HINT_LOW: Nanos = EPOCH_NANOS - (1 << 62);

/// A 64-bit summary of a time on the scale, for the lock-free "is
/// anything due?" check: it never orders two times the other way round
/// (times 146 years either side of the epoch and beyond share its ends,
/// where the check may then see something due that is not; the promotion
/// it triggers compares exactly and finds nothing).
pub(crate) fn hint(nanos: Nanos) -> u64 {
    u64::try_from(nanos.saturating_sub(HINT_LOW))
        .unwrap_or(u64::MAX - 1)
        .min(u64::MAX - 1)
}

/// The delay heap and the timer armed for its head.
#[derive(Debug)]
pub(crate) struct Delays {
    pub(crate) heap: DelayHeap<Handle>,
    pub(crate) timer: TimerSlot,
    /// Set at shutdown: no timer is armed any more.
    pub(crate) closed: bool,
}

impl Delays {
    pub(crate) fn new() -> Self {
        Delays {
            heap: DelayHeap::new(),
            timer: TimerSlot::default(),
            closed: false,
        }
    }

    /// Decides whether the promotion timer must be (re-)armed for the
    /// earliest waiting item.
    pub(crate) fn plan_arm(&mut self, epoch: Instant) -> Option<ArmPlan> {
        if self.closed {
            return None;
        }
        let head = self.heap.next_due()?;
        if self.timer.deadline.is_some_and(|armed| armed <= head) {
            return None;
        }
        self.timer.generation += 1;
        self.timer.deadline = Some(head);
        Some(ArmPlan {
            at: instant_at(epoch, head),
            generation: self.timer.generation,
            cancel: self.timer.id.take(),
        })
    }

    /// Publishes the head's time for getters that check it without the lock.
    pub(crate) fn publish_next_due(&self, next_due: &AtomicU64) {
        next_due.store(
            self.heap.next_due().map_or(NONE_DUE, hint),
            Ordering::Release,
        );
    }
}

/// The delay heap as a shard transition sees it: locked only if the
/// transition needs it (inside the shard's lock).
pub(crate) struct DelayCtx<'a> {
    delays: &'a QueueMutex<Delays>,
    next_due: &'a AtomicU64,
    epoch: Instant,
    /// A timer (re-)arming to carry out once every lock is released.
    pub(crate) plan: Option<ArmPlan>,
    /// Stale heap entries now dominate: the caller sweeps them once every
    /// lock is released ([`Shared::sweep_if_asked`]). Sweeping needs the
    /// shards' locks, which cannot be taken inside this one's.
    pub(crate) sweep: bool,
}

impl<'a> DelayCtx<'a> {
    pub(crate) fn new(
        delays: &'a QueueMutex<Delays>,
        next_due: &'a AtomicU64,
        epoch: Instant,
    ) -> Self {
        DelayCtx {
            delays,
            next_due,
            epoch,
            plan: None,
            sweep: false,
        }
    }

    /// Adds a heap entry for `handle` due at `at`; returns its sequence.
    pub(crate) fn push(&mut self, at: Nanos, handle: Handle) -> u64 {
        let mut d = self.delays.lock();
        let seq = d.heap.push(at, handle);
        d.publish_next_due(self.next_due);
        if let Some(plan) = d.plan_arm(self.epoch) {
            debug_assert!(self.plan.is_none(), "one push per transition");
            self.plan = Some(plan);
        }
        seq
    }

    /// Records that a live heap entry went stale (its key was made ready
    /// or re-delayed).
    pub(crate) fn cancel(&mut self) {
        let mut d = self.delays.lock();
        d.heap.forget_live(1);
        self.sweep |= d.heap.wants_sweep();
    }
}

impl<T: Key> Shared<T> {
    /// Whether any delayed item is pending.
    pub(crate) fn delays_pending(&self) -> bool {
        self.next_due.load(Ordering::Relaxed) != NONE_DUE
    }

    /// When the earliest delayed item is due (possibly early), if any and
    /// if it is within the [`hint`]'s range.
    pub(crate) fn next_due_at(&self) -> Option<Instant> {
        let due = self.next_due.load(Ordering::Acquire);
        (due < NONE_DUE - 1).then(|| instant_at(self.epoch, unhint(due)))
    }

    /// Sweeps the delay heap's stale entries if a transition asked for it
    /// (see [`DelayCtx::sweep`]); call with no lock held.
    ///
    /// Promotion passes sweep too, but they run only when something comes
    /// due: an add that withdraws a long delay (a resync an hour away,
    /// overtaken by a change) leaves an entry that nothing would reach for
    /// an hour, so a busy queue could pile up one per add until then. Here
    /// the add that tips the balance runs a pass itself, which sweeps, so
    /// the heap holds its live entries plus at most max(1024, live) + 1
    /// stale ones.
    pub(crate) fn sweep_if_asked(&self, delays: &DelayCtx<'_>) {
        if delays.sweep {
            self.promote_due();
        }
    }

    /// Moves due items into the ready line if the head of the delay heap is
    /// due at `now`; skips when another thread is promoting.
    pub(crate) fn promote_if_due(&self, now: Instant) {
        let due = self.next_due.load(Ordering::Acquire);
        if due != NONE_DUE && due <= hint(nanos_since(self.epoch, now)) {
            self.promote_due();
        }
    }

    /// The promotion timer fired: forgets it, then promotes.
    pub(crate) fn promote(&self) {
        let now = self.clock.now();
        {
            let mut d = self.delays.lock();
            let now_ns = nanos_since(self.epoch, now);
            if d.timer.deadline.is_some_and(|deadline| deadline <= now_ns) {
                d.timer.deadline = None;
                d.timer.id = None;
            }
        }
        self.promote_due();
    }

    /// Moves every item due now into the ready line, in due order, then
    /// re-arms the timer for the next.
    ///
    /// One thread promotes at a time. A thread that finds another at it
    /// leaves a request (`promote_again`) instead of waiting; the promoter
    /// checks for requests after it lets go, and runs again (with a fresh
    /// `now`) if there is one. Each side writes its flag, fences, then reads
    /// the other's, so a request is never left behind with nobody promoting
    /// — the timer it may have cleared is re-armed by the next run.
    pub(crate) fn promote_due(&self) {
        self.promote_again.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        loop {
            if self
                .promoting
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            self.promote_again.store(false, Ordering::Relaxed);
            // Read after the request is taken: a requester's due items are
            // due at this time too.
            self.promote_pass(self.clock.now());
            self.promoting.store(false, Ordering::Release);
            fence(Ordering::SeqCst);
            if !self.promote_again.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// One promotion run (the caller holds `promoting`).
    fn promote_pass(&self, now: Instant) {
        let now_ns = nanos_since(self.epoch, now);
        let stamp = self.timed.then_some(now);
        let mut batch: Vec<Waiting<Handle>> = Vec::new();
        let mut plan = None;
        let mut taken = 0;
        loop {
            {
                let mut d = self.delays.lock();
                d.heap.forget_live(taken);
                if d.heap.wants_sweep() {
                    drop(d);
                    self.sweep_stale_delays();
                    d = self.delays.lock();
                }
                while batch.len() < PROMOTION_BATCH {
                    match d.heap.pop_due(now_ns) {
                        Some(due) => batch.push(due),
                        None => break,
                    }
                }
                d.publish_next_due(&self.next_due);
                if batch.len() < PROMOTION_BATCH {
                    plan = d.plan_arm(self.epoch);
                }
            }
            let more = batch.len() == PROMOTION_BATCH;
            let mut readied = 0;
            taken = 0;
            for due in batch.drain(..) {
                let handle = due.item;
                let promoted = self.with_shard(handle.shard(), |shard, sink| {
                    shard.promote(handle.slot(), due.seq, stamp, self.metrics.as_ref(), sink)
                });
                if let Some(ready) = promoted {
                    taken += 1;
                    readied += usize::from(ready);
                }
            }
            self.line.wake(readied);
            if !more {
                break;
            }
        }
        if taken > 0 {
            self.delays.lock().heap.forget_live(taken);
        }
        if let Some(plan) = plan {
            self.arm(plan);
        }
    }

    /// Takes every entry out of the heap, keeps the live ones (checked
    /// under their shards' locks) and puts them back: stale entries (keys
    /// re-delayed or made ready since) are dropped. Runs while promoting.
    fn sweep_stale_delays(&self) {
        let entries = self.delays.lock().heap.drain_all();
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); shard::SHARDS];
        for (i, e) in entries.iter().enumerate() {
            if let Some(list) = by_shard.get_mut(e.item.shard()) {
                list.push(i);
            }
        }
        let mut live = vec![false; entries.len()];
        for (number, indexes) in by_shard.iter().enumerate() {
            if indexes.is_empty() {
                continue;
            }
            let s = self.shards[number].lock.lock();
            for &i in indexes {
                let e = &entries[i];
                live[i] = s
                    .delay_marks
                    .get(e.item.slot() as usize)
                    .is_some_and(|m| m.seq == e.seq)
                    && s.get(e.item.slot()).is_some_and(|x| x.is(shard::DELAYED));
            }
        }
        let mut d = self.delays.lock();
        for (e, keep) in entries.into_iter().zip(live) {
            if keep {
                d.heap.reinsert(e);
            }
        }
        d.publish_next_due(&self.next_due);
    }

    /// Carries out an [`ArmPlan`] made under the delay lock. If another plan
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
        let mut d = self.delays.lock();
        let at = nanos_since(self.epoch, plan.at);
        if d.timer.generation == plan.generation && d.timer.deadline == Some(at) {
            d.timer.id = Some(id);
        } else {
            drop(d);
            self.clock.cancel_timer(id);
        }
    }

    /// At shutdown: stops the timer and withdraws every delayed key,
    /// earliest first (keys being processed stay processing; a clone is returned).
    pub(crate) fn withdraw_delayed(&self) -> Vec<T> {
        let (entries, timer) = {
            let mut d = self.delays.lock();
            d.closed = true;
            d.timer.deadline = None;
            d.timer.generation += 1;
            let timer = d.timer.id.take();
            let entries = d.heap.clear();
            d.publish_next_due(&self.next_due);
            (entries, timer)
        };
        if let Some(id) = timer {
            self.clock.cancel_timer(id);
        }
        let mut withdrawn = Vec::new();
        for e in entries {
            let cell = &self.shards[e.item.shard()];
            let mut s = cell.lock.lock();
            withdrawn.extend(s.withdraw(e.item.slot(), e.seq));
            cell.publish(&s);
        }
        withdrawn
    }

    /// The ids of timers to cancel (the ticker's) — see `timer.rs`.
    pub(crate) fn take_ticker(&self) -> Option<TimerId> {
        self.ticker_id.lock().take()
    }
}
