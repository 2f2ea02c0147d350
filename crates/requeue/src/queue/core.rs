//! The queue's shared core: the shards, the ready line, the delays and the
//! waiters, and the operations that route a key to its shard.
//!
//! # Locks and their order
//!
//! - Each shard's lock guards its keys' states ([`super::machine`]).
//! - The FIFO (priority-0 mode) and the waiters' count need no lock.
//! - The order lock guards the ordered line (priority mode); it is taken
//!   before a shard's lock, never after.
//! - The delay lock guards the delay heap; it is taken after a shard's lock
//!   (a transition that delays or cancels a delay), or alone.
//! - The waiters' lock and the drain waiters' lock are leaves.
//!
//! So a hot add, get or done takes exactly one lock, its key's shard's, and
//! threads on different keys do not meet.

use super::Key;
use super::delays::{DelayCtx, Delays, NONE_DUE, nanos_since};
use super::fifo::Fifo;
use super::machine::Sink;
use super::options::AddOpts;
use super::outcome::{Finished, HandOut};
use super::ready::ReadyQueue;
use super::shard::{Counts, Handle, KeyArg, SHARDS, Shard, shard_of};
use super::waiters::Line;
use crate::clock::{Clock, SharedClock, TimerId, deadline_after};
use crate::handout::Added;
use crate::limiter::RateLimiter;
use crate::metrics::QueueMetrics;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, QueueMutex, fence};
use crate::waker_set::WakerSet;
use std::hash::BuildHasher;
use std::task::Waker;
use std::time::Instant;

/// How keys are hashed: seeded at random per queue, so nobody can aim
/// many keys at one shard or one bucket. Under loom the seed is fixed,
/// because loom replays executions and needs each to take the same paths.
#[cfg(not(requeue_loom))]
type KeyHasher = foldhash::fast::RandomState;
#[cfg(requeue_loom)]
type KeyHasher = foldhash::fast::FixedState;

fn key_hasher() -> KeyHasher {
    #[cfg(not(requeue_loom))]
    return foldhash::fast::RandomState::default();
    #[cfg(requeue_loom)]
    return foldhash::fast::FixedState::with_seed(0x5EED);
}

/// Collapsing adds a thread makes between two looks at whether it should
/// give way (see [`Shared::give_way`]).
#[cfg(not(requeue_loom))]
const GIVE_WAY_EVERY: u32 = 128;

/// How long a producer that only re-adds pending items pauses for busy workers.
#[cfg(not(requeue_loom))]
const GIVE_WAY_PAUSE: std::time::Duration = std::time::Duration::from_micros(500);

#[cfg(not(requeue_loom))]
thread_local! {
    /// Collapsing adds this thread made since it last looked.
    static MERGED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One shard, its lock, and copies of its counts readable without the lock.
/// Aligned so that two shards never share a cache line.
#[repr(align(128))]
pub(crate) struct ShardCell<T> {
    pub(crate) lock: QueueMutex<Shard<T>>,
    ready: AtomicUsize,
    live: AtomicUsize,
}

impl<T: Eq + std::hash::Hash> ShardCell<T> {
    fn new(number: usize, metered: Option<Instant>) -> Self {
        ShardCell {
            lock: QueueMutex::new(Shard::new(number, metered)),
            ready: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
        }
    }

    /// Copies the shard's counts out (called under its lock after each change).
    pub(crate) fn publish(&self, shard: &Shard<T>) {
        self.ready.store(shard.counts.ready, Ordering::Relaxed);
        self.live.store(shard.live(), Ordering::Relaxed);
    }
}

/// The ordered ready line (priority mode).
pub(crate) struct Order {
    pub(crate) ready: ReadyQueue<Handle>,
}

// Aligned so the `Arc`'s reference counts, which every guard moves, sit
// on their own cache line.
#[repr(align(128))]
pub(crate) struct Shared<T: Key> {
    /// Exactly [`SHARDS`], made at construction.
    pub(crate) shards: Box<[ShardCell<T>]>,
    hasher: KeyHasher,
    /// One handle per ready key (see [`Fifo`]).
    pub(crate) fifo: Fifo,
    /// Set once, when the first item with a priority other than 0 arrives.
    pub(crate) ordered: AtomicBool,
    /// Ready keys in priority mode, plus stale entries swept once they
    /// outnumber the live ones (see [`ReadyQueue`]).
    pub(crate) order: QueueMutex<Order>,
    /// Delayed keys, plus stale entries swept once they outnumber the
    /// live ones (see [`super::delayed::DelayHeap`]).
    pub(crate) delays: QueueMutex<Delays>,
    /// The delay heap's head (on the scale of [`nanos_since`]), or [`NONE_DUE`]; may be
    /// early (a stale entry), never late.
    pub(crate) next_due: AtomicU64,
    pub(crate) promoting: AtomicBool,
    /// A promotion was asked for while another thread was promoting.
    pub(crate) promote_again: AtomicBool,
    /// One entry per `get` waiting now.
    pub(crate) line: Line,
    /// One waker per `shut_down_with_drain` waiting now; each withdraws
    /// its own when it returns or is dropped.
    pub(crate) drain_waiters: QueueMutex<WakerSet>,
    shutting_down: AtomicBool,
    draining: AtomicBool,
    pub(crate) ticker_id: QueueMutex<Option<TimerId>>,
    /// Delays are measured in nanoseconds around this instant ([`nanos_since`]).
    pub(crate) epoch: Instant,
    pub(crate) metrics: Option<QueueMetrics>,
    pub(crate) clock: SharedClock,
    pub(crate) limiter: Box<dyn RateLimiter<T>>,
    pub(crate) name: String,
    /// Metrics are on, so operations read the clock for them.
    pub(crate) timed: bool,
    pub(crate) promoter: Waker,
    pub(crate) ticker: Waker,
}

/// What an add did, for its caller.
pub(crate) struct Admission<T> {
    pub(crate) added: Added,
    /// The caller's copy of a key the queue already held, dropped by the
    /// caller once every lock is released.
    pub(crate) duplicate: Option<T>,
}

impl<T: Key> Shared<T> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        clock: SharedClock,
        limiter: Box<dyn RateLimiter<T>>,
        name: String,
        fairness: Option<u32>,
        metrics: Option<QueueMetrics>,
        promoter: Waker,
        ticker: Waker,
    ) -> Self {
        let timed = metrics.is_some();
        let epoch = clock.now();
        Shared {
            shards: (0..SHARDS)
                .map(|i| ShardCell::new(i, timed.then_some(epoch)))
                .collect(),
            hasher: key_hasher(),
            fifo: Fifo::new(),
            ordered: AtomicBool::new(false),
            order: QueueMutex::new(Order {
                ready: ReadyQueue::new(fairness),
            }),
            delays: QueueMutex::new(Delays::new()),
            next_due: AtomicU64::new(NONE_DUE),
            promoting: AtomicBool::new(false),
            promote_again: AtomicBool::new(false),
            line: Line::new(),
            drain_waiters: QueueMutex::new(WakerSet::default()),
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            ticker_id: QueueMutex::new(None),
            epoch,
            metrics,
            clock,
            limiter,
            name,
            timed,
            promoter,
            ticker,
        }
    }

    pub(crate) fn stamp(&self) -> Option<Instant> {
        self.timed.then(|| self.clock.now())
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    fn hash(&self, key: &T) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Runs `f` on shard `number` with the ready line of the queue's mode:
    /// the FIFO under the shard's lock alone, or, once the queue is in
    /// priority mode (as the shard records under its lock, so a switch can
    /// never miss a push in flight), the ordered line under the order lock.
    pub(crate) fn with_shard<R>(
        &self,
        number: usize,
        f: impl FnOnce(&mut Shard<T>, &mut Sink<'_>) -> R,
    ) -> R {
        let cell = &self.shards[number];
        if !self.ordered.load(Ordering::Acquire) {
            let mut shard = cell.lock.lock();
            if !shard.ordered() {
                let result = f(&mut shard, &mut Sink::Fifo(&self.fifo));
                cell.publish(&shard);
                return result;
            }
        }
        let mut order = self.order.lock();
        let mut shard = cell.lock.lock();
        let result = f(&mut shard, &mut Sink::Ordered(&mut order.ready));
        cell.publish(&shard);
        drop(shard);
        if order.ready.wants_sweep() {
            // Raised priorities leave stale entries behind; drop them once
            // they outnumber the live ones (shards locked one at a time).
            let shards = &self.shards;
            order.ready.sweep(|handle, seq| {
                shards[handle.shard()]
                    .lock
                    .lock()
                    .queued_as(handle.slot(), seq)
            });
        }
        result
    }

    /// An immediate add at priority 0, the hot path of every controller:
    /// one hash, one shard lock, and for a key already pending (the
    /// collapsing add) nothing else.
    pub(crate) fn add_now(&self, item: KeyArg<'_, T>) -> Result<Admission<T>, T> {
        let hash = self.hash(item.get());
        let cell = &self.shards[shard_of(hash)];
        if self.ordered.load(Ordering::Acquire) {
            return self.admit(item, AddOpts::new());
        }
        let stamp = self.stamp();
        let mut shard = cell.lock.lock();
        if shard.ordered() {
            drop(shard);
            return self.admit(item, AddOpts::new());
        }
        if self.is_shutting_down_relaxed() {
            drop(shard);
            return Err(item.into_owned());
        }
        let (slot, _, duplicate) = shard.find_or_insert(item, hash);
        let mut delays = DelayCtx::new(&self.delays, &self.next_due, self.epoch);
        let (added, readied) = shard.add_now(
            slot,
            0,
            stamp,
            self.metrics.as_ref(),
            &mut Sink::Fifo(&self.fifo),
            &mut delays,
        );
        let merged = added == Added::Merged;
        if !merged {
            cell.publish(&shard);
        }
        drop(shard);
        if readied {
            self.line.wake(1);
        }
        self.sweep_if_asked(&delays);
        if merged {
            self.give_way();
        }
        Ok(Admission { added, duplicate })
    }

    /// A thread whose adds keep collapsing into items that are already
    /// pending does no useful work. While workers are busy and items wait
    /// for them, such a thread competes with those workers for the CPU, and
    /// the operating system shares the cores evenly among runnable
    /// threads: three busy threads on two cores give each worker two thirds
    /// of one. So every [`GIVE_WAY_EVERY`] collapsing adds, the thread looks:
    /// if items are ready and others are being processed, it pauses for
    /// [`GIVE_WAY_PAUSE`]; the core it leaves idle takes over a waiting
    /// worker. A thread alone with the queue (nothing in flight) never
    /// pauses, and an add that queues something never counts.
    #[cfg(not(requeue_loom))]
    fn give_way(&self) {
        let look = MERGED.with(|merged| {
            let n = merged.get() + 1;
            merged.set(n % GIVE_WAY_EVERY);
            n == GIVE_WAY_EVERY
        });
        if look && self.workers_have_a_backlog() {
            std::thread::sleep(GIVE_WAY_PAUSE);
        }
    }

    /// Under loom every thread switch is the model's to choose.
    #[cfg(requeue_loom)]
    fn give_way(&self) {}

    /// Whether items are ready while others are in flight (processing or delayed).
    #[cfg(not(requeue_loom))]
    fn workers_have_a_backlog(&self) -> bool {
        let (ready, live) = self.shards.iter().fold((0, 0), |(r, l), cell| {
            (
                r + cell.ready.load(Ordering::Relaxed),
                l + cell.live.load(Ordering::Relaxed),
            )
        });
        ready > 0 && live > ready
    }

    /// Adds a key (the engine of every `add` flavour).
    pub(crate) fn admit(&self, item: KeyArg<'_, T>, opts: AddOpts) -> Result<Admission<T>, T> {
        let limited = opts.rate_limited.then(|| self.limiter.when(item.get()));
        let delay = opts.delay(limited);
        let now = (delay.is_some() || self.timed).then(|| self.clock.now());
        let at = delay.zip(now).map(|(d, now)| deadline_after(now, d));
        let retry = opts.after.is_some() || opts.rate_limited;
        if opts.priority != 0 {
            self.enter_ordered();
        }
        let hash = self.hash(item.get());
        let stamp = now.filter(|_| self.timed);
        let metrics = self.metrics.as_ref();
        let mut delays = DelayCtx::new(&self.delays, &self.next_due, self.epoch);
        let outcome = self.with_shard(shard_of(hash), |shard, sink| {
            if self.is_shutting_down_relaxed() {
                return Err(item.into_owned());
            }
            let (slot, _, duplicate) = shard.find_or_insert(item, hash);
            let added = match at {
                None => shard.add_now(slot, opts.priority, stamp, metrics, sink, &mut delays),
                Some(at_instant) => {
                    let at = nanos_since(self.epoch, at_instant);
                    if shard.add_later(slot, opts.priority, at, sink, &mut delays) {
                        (Added::Delayed { at: at_instant }, false)
                    } else {
                        (Added::Merged, false)
                    }
                }
            };
            if retry && let Some(m) = metrics {
                m.retries.inc();
            }
            Ok((added, duplicate))
        });
        let ((added, readied), duplicate) = outcome?;
        if readied {
            self.line.wake(1);
        }
        if let Some(plan) = delays.plan.take() {
            self.arm(plan);
        }
        self.sweep_if_asked(&delays);
        Ok(Admission { added, duplicate })
    }

    /// The shutdown flag as seen under a shard's lock: shutdown raises it,
    /// then passes through every shard's lock, so an add that takes the lock
    /// later sees it (Relaxed suffices; the lock orders it).
    fn is_shutting_down_relaxed(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Hands out the next ready item, promoting due delayed items first.
    pub(crate) fn take(&self, stamp: Option<Instant>) -> Option<HandOut<T>> {
        if self.next_due.load(Ordering::Relaxed) != NONE_DUE {
            self.promote_if_due(self.clock.now());
        }
        let metrics = self.metrics.as_ref();
        if !self.ordered.load(Ordering::Acquire) {
            // Every handle in the FIFO names a queued key (only a pop takes
            // it out), so the first one popped is handed out.
            while let Some(handle) = self.fifo.pop() {
                let cell = &self.shards[handle.shard()];
                let mut shard = cell.lock.lock();
                let out = shard.hand_out(handle.slot(), stamp, metrics);
                cell.publish(&shard);
                if out.is_some() {
                    return out;
                }
            }
            if !self.ordered.load(Ordering::Acquire) {
                return None;
            }
        }
        self.take_ordered(stamp)
    }

    /// Ends hand-out `token` of the key at `handle` (what a guard does).
    pub(crate) fn finish(&self, handle: Handle, token: Option<u32>) -> bool {
        let stamp = self.stamp();
        let metrics = self.metrics.as_ref();
        let finished = self.with_shard(handle.shard(), |shard, sink| {
            shard.done(handle.slot(), token, stamp, metrics, sink)
        });
        self.after_done(finished)
    }

    /// Ends the processing of `item`, whichever hand-out it was.
    pub(crate) fn done_item(&self, item: &T) -> bool {
        let stamp = self.stamp();
        let metrics = self.metrics.as_ref();
        let hash = self.hash(item);
        let finished =
            self.with_shard(shard_of(hash), |shard, sink| match shard.find(item, hash) {
                Some(slot) => shard.done(slot, None, stamp, metrics, sink),
                None => Finished::unchanged(),
            });
        self.after_done(finished)
    }

    fn after_done(&self, finished: Finished<T>) -> bool {
        if finished.readied {
            self.line.wake(1);
        }
        drop(finished.released);
        if finished.was_processing && self.draining.load(Ordering::Acquire) {
            self.wake_drainers_if_drained();
        }
        finished.was_processing
    }

    /// Whether every shard is empty. The `SeqCst` fence pairs with the
    /// one of whoever emptied another shard concurrently (each stores its
    /// count, fences, then reads the others): one of them sees all zeros.
    fn all_empty(&self) -> bool {
        fence(Ordering::SeqCst);
        self.shards
            .iter()
            .all(|cell| cell.live.load(Ordering::Relaxed) == 0)
    }

    /// Whether `shut_down_with_drain` may return.
    pub(crate) fn drain_finished(&self) -> bool {
        !self.draining.load(Ordering::Acquire) || self.all_empty()
    }

    fn wake_drainers_if_drained(&self) {
        if self.drain_finished() {
            let wake = self.drain_waiters.lock().drain();
            wake.into_iter().for_each(Waker::wake);
        }
    }

    /// Number of ready items.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|cell| cell.ready.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether a ready item may be waiting (a cheap check, used when a
    /// waiter leaves with a wake-up it will not use).
    pub(crate) fn maybe_ready(&self) -> bool {
        !self.fifo.is_empty() || self.len() > 0
    }

    /// Counts over every shard (each read under its lock).
    pub(crate) fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for cell in self.shards.iter() {
            let c = cell.lock.lock().counts;
            total.ready += c.ready;
            total.processing += c.processing;
            total.parked += c.parked;
            total.delayed += c.delayed;
        }
        total
    }

    /// Starts shutting down: refuses further adds, withdraws the delayed
    /// items and returns them, and wakes every waiting get.
    pub(crate) fn shut_down(&self, drain: bool) -> Vec<T> {
        self.draining.store(drain, Ordering::Release);
        self.shutting_down.store(true, Ordering::Release);
        // Every add that got in before the flag finishes before this
        // passes; every add or done that locks a shard after it sees both
        // flags (the lock orders them).
        for cell in self.shards.iter() {
            drop(cell.lock.lock());
        }
        let withdrawn = self.withdraw_delayed();
        if let Some(id) = self.take_ticker() {
            self.clock.cancel_timer(id);
        }
        let mut wake = self.line.take_all();
        if self.drain_finished() {
            wake.extend(self.drain_waiters.lock().drain());
        }
        wake.into_iter().for_each(Waker::wake);
        withdrawn
    }

    /// Sum and maximum of the ages of in-flight items, in seconds.
    pub(crate) fn unfinished_work(&self, now: Instant) -> (f64, f64) {
        let mut total = (0.0, 0.0);
        for cell in self.shards.iter() {
            let shard = cell.lock.lock();
            if let Some(times) = &shard.times {
                let (sum, max) = times.unfinished_work(now);
                total = (total.0 + sum, f64::max(total.1, max));
            }
        }
        total
    }

    /// Leaves the line of waiters; if this waiter had been woken for an
    /// item it will not take, passes the wake-up on.
    pub(crate) fn withdraw_waiter(&self, id: u64) {
        if !self.line.remove(id) && self.maybe_ready() {
            self.line.wake(1);
        }
    }
}
