//! client-go's work queue: a deduplicating FIFO with a processing set,
//! delays, priorities and rate-limited re-adds, for threads and async tasks.
//!
//! # Usage
//!
//! Producers [`add`](WorkQueue::add) keys; workers [`get`](WorkQueue::get)
//! them, do the work, and end the processing through the returned [`Item`]
//! guard. The queue promises what client-go's does:
//!
//! - **fair**: items are handed out in the order they were added (within a
//!   priority level);
//! - **stingy**: an item is never handed to two workers at once, and adds
//!   of an item that is already waiting collapse into one;
//! - an item added again while it is processed is handed out again after
//!   its processing ends (it joins the back of the queue at that moment);
//! - after shutdown, queued items are still handed out until none is left.
//!
//! ```
//! use std::time::Duration;
//! use requeue::clock::FakeClock;
//! use requeue::queue::WorkQueue;
//!
//! // A fake clock keeps the example's timing exact; omit it for real time.
//! let queue = WorkQueue::builder().clock(FakeClock::new()).build();
//! queue.add("default/web".to_string()).unwrap();
//! queue.add("default/web".to_string()).unwrap(); // collapses into the first
//! queue.add("default/db".to_string()).unwrap();
//! assert_eq!(queue.len(), 2);
//!
//! let item = queue.get().expect("queued");
//! assert_eq!(*item, "default/web");
//! // The work failed: retry later with the item's own backoff.
//! item.retry().unwrap();
//! assert_eq!(queue.num_requeues(&"default/web".to_string()), 1);
//!
//! let item = queue.get().expect("queued");
//! assert_eq!(*item, "default/db");
//! item.forget(); // success: clear its backoff; dropping marks it done too
//!
//! // Shutting down hands back the retry still waiting out its backoff.
//! assert_eq!(queue.shut_down(), ["default/web".to_string()]);
//! assert!(queue.get().is_none());
//! ```
//!
//! The same queue serves async tasks ([`get_async`](WorkQueue::get_async),
//! [`stream`](WorkQueue::stream)) and blocked threads at once.
//!
//! ## Coming from client-go
//!
//! | client-go | requeue |
//! |---|---|
//! | `workqueue.NewTypedRateLimitingQueueWithConfig(rl, cfg)` | `WorkQueue::builder().name(..).clock(..).rate_limiter(rl).metrics(..).build()` |
//! | `NewTyped`, `NewTypedDelayingQueue` | [`WorkQueue::new`] (every queue delays and rate-limits) |
//! | `Add(x)` | [`add`](WorkQueue::add) → `Result<Added, ShutDown<T>>` |
//! | `AddAfter(x, d)` | [`add_after`](WorkQueue::add_after) |
//! | `AddRateLimited(x)` | [`add_rate_limited`](WorkQueue::add_rate_limited), or [`Item::retry`] |
//! | controller-runtime `AddWithOpts(o, x)` | [`add_with`](WorkQueue::add_with) with [`AddOpts`] |
//! | `Get() (x, shutdown)` | [`get`](WorkQueue::get) → `Option<Item<T>>`; [`get_async`](WorkQueue::get_async), [`stream`](WorkQueue::stream), [`get_timeout`](WorkQueue::get_timeout), [`get_deadline`](WorkQueue::get_deadline), [`get_until`](WorkQueue::get_until), [`try_get`](WorkQueue::try_get) |
//! | `GetWithPriority()` | [`Item::priority`] |
//! | `Done(x)` | drop the [`Item`], [`Item::done`], or [`done`](WorkQueue::done) |
//! | `Forget(x)` | [`forget`](WorkQueue::forget) or [`Item::forget`] |
//! | `NumRequeues(x)` | [`num_requeues`](WorkQueue::num_requeues) |
//! | `Len()` | [`len`](WorkQueue::len); [`snapshot`](WorkQueue::snapshot) for in-flight and delayed counts |
//! | `ShutDown()` | [`shut_down`](WorkQueue::shut_down) → the delayed items it withdrew |
//! | `ShutDownWithDrain()` | [`shut_down_with_drain`](WorkQueue::shut_down_with_drain), [`shut_down_with_drain_async`](WorkQueue::shut_down_with_drain_async) |
//! | `ShuttingDown()` | [`is_shutting_down`](WorkQueue::is_shutting_down) |
//! | `ParallelizeUntil` | [`crate::parallel::parallelize_until`] |
//! | rate limiters | [`crate::limiter`] |
//! | `MetricsProvider` | [`crate::metrics::MetricsProvider`] |
//!
//! ## Where requeue deliberately differs
//!
//! Numbered as in `docs/behaviour.md` in the repository, which describes
//! each in full; `tests/queue_deviations.rs` has one test per item.
//!
//! 1. **Drain means drained**: [`shut_down_with_drain`](WorkQueue::shut_down_with_drain)
//!    returns once nothing is queued or processing (or a plain `shut_down`
//!    is called), and wakes every drain waiter.
//! 2. **A stray `done` is harmless**: it returns `false` and never
//!    duplicates a queued item.
//! 3. **An immediate add wins over a pending delay**: the delayed entry is
//!    withdrawn; a delayed add of an already queued item is ignored; among
//!    delays the earliest wins.
//! 4. **Shutdown stops timers at once** and hands back the delayed items it withdrew.
//! 5. **Nothing blocks a producer**; adds after shutdown return
//!    `Err(ShutDown(item))`.
//! 6. **Time never overflows**: any `Duration` is accepted, sums saturate.
//! 7. **Waiting can end without shutting down**: deadline, timeout and
//!    stop-signal variants of `get`; dropping a pending async `get` loses
//!    no item and no wake-up.
//! 8. **Done cannot be forgotten**: the [`Item`] guard marks done on drop.
//! 9. **Priorities without starvation**: see [`WorkQueueBuilder::fairness`].
//! 10. **Panics are contained** (the controller runner turns a panicking
//!     handler into a retry); the queue itself runs no user code except
//!     the rate limiter and metrics hooks.
//!
//! # Implementation
//!
//! Keys are spread by hash over 64 shards, each a small state machine
//! (a slab of slots found through a hash table) behind its own lock, so an
//! add, a get or a done takes one lock, and threads on different keys do
//! not meet. Ready keys wait in a lock-free FIFO of slot handles while
//! every item has priority 0; the first other priority switches the queue,
//! once, to an ordered line under one lock. A waiting `get` joins a line of
//! wakers, one item wakes one waiter, and producers only touch that line
//! when someone sleeps. Delays use no thread: getters promote due items
//! themselves, and one timer per queue, registered with the clock, does it
//! when nobody is getting. The module `core` says which lock guards what.
//!
//! A blocking `get` that finds nothing looks again a few times (yielding
//! the core) before it sleeps, since an item is often a moment away; while
//! only delayed items are coming it sleeps at once, until the next is due,
//! and promotes it itself when it wakes.
//!
//! Producers that only re-add pending items give way: every 128 adds that
//! collapsed, if items are ready and others are being processed, the adding
//! thread pauses for 0.5 ms. Three busy threads on two cores would
//! otherwise get two thirds of a core each, the workers included; with the
//! pause the workers get the cores. A thread alone with its queue never
//! pauses, and an add that queues something never counts.
//!
//! # Cancellation safety
//!
//! [`get_async`](WorkQueue::get_async) and its variants can be dropped at
//! any time: they take no item until they complete, and a wake-up they
//! received passes to the next waiter. A completed `get` returns an
//! [`Item`]; dropping that marks the item done.

mod builder;
mod core;
mod delayed;
mod delays;
mod fifo;
mod get;
mod item;
mod machine;
mod metered;
mod options;
mod order;
mod outcome;
mod ready;
mod shard;
mod timer;
mod waiters;

#[cfg(test)]
mod core_tests;

#[cfg(all(test, requeue_loom))]
mod loom_tests;

pub use crate::handout::{Added, GetError, Key, ShutDown, TryGetError};
pub use builder::{DEFAULT_FAIRNESS, WorkQueueBuilder};
pub use get::{Get, GetWithin, ItemStream};
pub use item::Item;
pub use options::AddOpts;

use crate::clock::SharedClock;
use crate::exec::block_on;
use crate::limiter::RateLimiter;
use crate::sync::Arc;
use core::Shared;
use shard::{Handle, KeyArg};
use std::fmt;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

/// A point-in-time view of a queue's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Ready to be handed out ([`WorkQueue::len`]).
    pub ready: usize,
    /// Handed out and not yet done.
    pub processing: usize,
    /// Of those, how many were added again meanwhile (they are queued at done).
    pub added_while_processing: usize,
    /// Waiting for a delay to pass.
    pub delayed: usize,
    /// `get` callers waiting for an item.
    pub waiting_gets: usize,
    /// Whether a shutdown has begun.
    pub shutting_down: bool,
}

/// A work queue with client-go's semantics; see the [module docs](self).
///
/// Cloning gives another handle to the same queue.
pub struct WorkQueue<T: Key> {
    shared: Arc<Shared<T>>,
}

impl<T: Key> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            shared: self.shared.clone(),
        }
    }
}

// The queue stays consistent if a panic unwinds through it: its lock
// ignores poisoning, and user code (the rate limiter, metrics hooks) runs
// outside the lock (the rate limiter) or must not panic (metrics hooks).
impl<T: Key> std::panic::UnwindSafe for WorkQueue<T> {}
impl<T: Key> std::panic::RefUnwindSafe for WorkQueue<T> {}

impl<T: Key> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Key> fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.shared.name)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl<T: Key> WorkQueue<T> {
    /// An unnamed queue on the real clock with the default controller rate limiter.
    pub fn new() -> Self {
        WorkQueueBuilder::default().build()
    }

    /// Starts configuring a queue.
    pub fn builder() -> WorkQueueBuilder<T> {
        WorkQueueBuilder::default()
    }

    /// The queue's name ("" if unnamed).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The clock the queue measures delays and metrics on.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The queue's rate limiter.
    pub fn rate_limiter(&self) -> &dyn RateLimiter<T> {
        &*self.shared.limiter
    }

    /// Marks `item` as needing processing. Collapses into a pending add of
    /// the same item; withdraws a pending delayed add of it.
    ///
    /// A thread whose adds keep collapsing into pending items (128 of them)
    /// while items wait and others are being processed pauses for 0.5 ms:
    /// such adds do no work, and on a busy machine the workers need the
    /// CPU more (see the module docs). The add itself is never refused or
    /// delayed in effect; it has taken effect before the pause.
    pub fn add(&self, item: T) -> Result<Added, ShutDown<T>> {
        self.add_with(item, AddOpts::new())
    }

    /// Adds `item` once `delay` has passed on the queue's clock (at once for
    /// a zero delay). If it is already waiting, the earlier time wins; if it
    /// is already queued, nothing changes.
    pub fn add_after(&self, item: T, delay: Duration) -> Result<Added, ShutDown<T>> {
        self.add_with(item, AddOpts::new().after(delay))
    }

    /// Adds `item` after the delay its rate limiter gives (which counts the attempt).
    pub fn add_rate_limited(&self, item: T) -> Result<Added, ShutDown<T>> {
        self.add_with(item, AddOpts::new().rate_limited())
    }

    /// Adds `item` with a delay, rate limiting and/or a priority.
    ///
    /// With both `after` and `rate_limited`, the limiter is asked (and
    /// counts the attempt) and the shorter delay wins, a zero `after`
    /// counting as unset. The retries metric counts every call with `after`
    /// or `rate_limited` on a running queue, as client-go counts `AddAfter`.
    pub fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, ShutDown<T>> {
        self.admit(KeyArg::Owned(item), opts)
    }

    /// [`add`](WorkQueue::add) for a key you keep: the queue clones it only
    /// if it has to store it (the item was not pending yet), so re-adding a
    /// held key costs no allocation. A refused add hands back a clone.
    pub fn add_ref(&self, item: &T) -> Result<Added, ShutDown<T>> {
        self.admit(KeyArg::Borrowed(item), AddOpts::new())
    }

    /// [`add_with`](WorkQueue::add_with) for a key you keep; see [`add_ref`](WorkQueue::add_ref).
    pub fn add_ref_with(&self, item: &T, opts: AddOpts) -> Result<Added, ShutDown<T>> {
        self.admit(KeyArg::Borrowed(item), opts)
    }

    fn admit(&self, item: KeyArg<'_, T>, opts: AddOpts) -> Result<Added, ShutDown<T>> {
        let admission = if opts == AddOpts::new() {
            self.shared.add_now(item)
        } else {
            self.shared.admit(item, opts)
        };
        let admission = admission.map_err(ShutDown)?;
        drop(admission.duplicate);
        Ok(admission.added)
    }

    /// Number of items ready to be handed out (in-flight and delayed items
    /// are not counted, as in client-go).
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether no item is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts of ready, in-flight, re-added and delayed items. Each shard
    /// of the queue is read under its own lock, one after the other, so
    /// under concurrent use the counts are a near-instant view, and exact
    /// whenever the queue is quiescent.
    pub fn snapshot(&self) -> QueueSnapshot {
        let c = self.shared.counts();
        QueueSnapshot {
            ready: c.ready,
            processing: c.processing,
            added_while_processing: c.parked,
            delayed: c.delayed,
            waiting_gets: self.shared.line.len(),
            shutting_down: self.shared.is_shutting_down(),
        }
    }

    /// Ends the processing of `item` (client-go's `Done`). If it was added
    /// again meanwhile, it goes to the back of the queue. Returns `false`,
    /// changing nothing, if `item` was not being processed.
    pub fn done(&self, item: &T) -> bool {
        self.shared.done_item(item)
    }

    /// Ends hand-out `token` of the key at `handle` (what a guard does).
    pub(crate) fn finish(&self, handle: Handle, token: u32) -> bool {
        self.shared.finish(handle, Some(token))
    }

    /// Clears the rate limiter's history of `item` (call it on success).
    pub fn forget(&self, item: &T) {
        self.shared.limiter.forget(item);
    }

    /// How many rate-limited re-adds `item` had since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.shared.limiter.num_requeues(item)
    }

    /// Whether a shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// Refuses further adds, stops the delay timer and wakes every waiting
    /// `get`. Queued items are still handed out; in-flight ones are not
    /// waited for. Returns the delayed items it withdrew (empty on a second call).
    pub fn shut_down(&self) -> Vec<T> {
        self.begin_shutdown(false)
    }

    /// Like [`shut_down`](WorkQueue::shut_down), then waits until no item is
    /// queued or being processed — workers keep getting the queued ones —
    /// or until a plain `shut_down` is called.
    pub fn shut_down_with_drain(&self) -> Vec<T> {
        let withdrawn = self.begin_shutdown(true);
        block_on(self.drained());
        withdrawn
    }

    /// [`shut_down_with_drain`](WorkQueue::shut_down_with_drain) for async code.
    pub async fn shut_down_with_drain_async(&self) -> Vec<T> {
        let withdrawn = self.begin_shutdown(true);
        self.drained().await;
        withdrawn
    }

    fn begin_shutdown(&self, drain: bool) -> Vec<T> {
        self.shared.shut_down(drain)
    }

    async fn drained(&self) {
        // The registration is withdrawn however the wait ends: a drain
        // future dropped before the queue drained (a timeout around
        // `shut_down_with_drain_async`, retried in a loop) would otherwise
        // leave its waker behind, one more per attempt, until the drain.
        struct Registration<'a, T: Key> {
            shared: &'a Shared<T>,
            key: Option<u64>,
        }
        impl<T: Key> Drop for Registration<'_, T> {
            fn drop(&mut self) {
                if let Some(k) = self.key.take() {
                    self.shared.drain_waiters.lock().remove(k);
                }
            }
        }
        let mut registration = Registration {
            shared: &self.shared,
            key: None,
        };
        poll_fn(|cx| {
            if self.shared.drain_finished() {
                return Poll::Ready(());
            }
            registration.key = Some(
                self.shared
                    .drain_waiters
                    .lock()
                    .register(registration.key, cx.waker()),
            );
            // Checked again after registering: a done that emptied the
            // queue in between either saw the registration or is seen here.
            if self.shared.drain_finished() {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}
