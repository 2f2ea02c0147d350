//! The guard `get` returns: the item, marked done when the guard goes away.
//!
//! One guard type serves every engine: an in-memory hand-out ends through
//! its queue's state machine; a remote one (e.g. a Redis lease) through the
//! engine's [`Lease`].

use super::outcome::HandOut;
use super::shard::Handle;
use super::{Added, Key, ShutDown, WorkQueue};
use crate::handout::{Ended, EndedThenNext, Lease, QueueError, Readd, Then};
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// Where a hand-out is held.
enum Hold<T: Key> {
    /// In a [`WorkQueue`] of this process.
    Local {
        queue: WorkQueue<T>,
        handle: Handle,
        token: u32,
    },
    /// In a remote engine; `None` once ended or detached.
    Leased(Option<Box<dyn Lease<T>>>),
}

/// An item handed out by a queue, being processed by its holder.
///
/// Dereferences to the item. Dropping the guard marks the item done
/// (deviation 8: a forgotten `done` can no longer wedge a key); the methods
/// below end the processing with a decision instead. Each guard only ever
/// ends its own hand-out: after an explicit [`WorkQueue::done`] the guard's
/// drop does nothing, even if the item has been handed out again since.
///
/// The same guard comes from the in-memory [`WorkQueue`] and from remote
/// engines (see [`AsyncQueue`](crate::engine::AsyncQueue)). For a remote
/// item the synchronous methods hand the ending to the engine's background
/// task and return at once (re-adds report [`Added::Sent`]);
/// [`end_async`](Item::end_async) waits and reports the outcome, including
/// [`QueueError::LeaseLost`].
#[must_use = "dropping the guard marks the item done at once"]
pub struct Item<T: Key> {
    hold: Hold<T>,
    item: Option<T>,
    priority: i32,
    /// The key's failure count at hand-out, when the engine reported it.
    requeues: Option<u32>,
}

impl<T: Key> Item<T> {
    pub(crate) fn new(queue: WorkQueue<T>, out: HandOut<T>) -> Self {
        Item {
            hold: Hold::Local {
                queue,
                handle: out.handle,
                token: out.token,
            },
            item: Some(out.item),
            priority: out.priority,
            requeues: None,
        }
    }

    /// A guard for an item a remote engine handed out under `lease`.
    pub fn leased(item: T, lease: Box<dyn Lease<T>>) -> Self {
        Item {
            hold: Hold::Leased(Some(lease)),
            item: Some(item),
            priority: 0,
            requeues: None,
        }
    }

    /// Notes the key's failure count at hand-out (client-go's
    /// `NumRequeues`), for engines that learn it with the hand-out, so a
    /// worker can know which try this is without asking the queue again.
    /// `None` leaves it unknown.
    pub fn with_requeues(mut self, requeues: impl Into<Option<u32>>) -> Self {
        self.requeues = requeues.into();
        self
    }

    /// The key's failure count when it was handed out (client-go's
    /// `NumRequeues`), if the engine reported it with the hand-out (the
    /// Redis engine does); `None`: ask the queue's `num_requeues`.
    pub fn requeues(&self) -> Option<u32> {
        self.requeues
    }

    /// The priority the item was queued with (0 unless added with one;
    /// always 0 from engines without priorities).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Whether this holder still holds the item: `true` for in-memory items
    /// until they are ended; for remote items, until the lease runs out or
    /// is reported lost. A handler doing long work can check it before
    /// side effects.
    pub fn is_valid(&self) -> bool {
        match &self.hold {
            Hold::Local { .. } => self.item.is_some(),
            Hold::Leased(lease) => lease.as_ref().is_some_and(|l| l.is_valid()),
        }
    }

    /// The fencing token of a remote hand-out (`None` for in-memory items),
    /// for downstream systems that reject stale writers.
    pub fn token(&self) -> Option<String> {
        match &self.hold {
            Hold::Local { .. } => None,
            Hold::Leased(lease) => lease.as_ref().map(|l| l.token()),
        }
    }

    /// Marks the item done. Returns `false` if its processing had already
    /// been ended by an explicit [`WorkQueue::done`] (or, for a remote
    /// item, if its lease is no longer valid).
    pub fn done(self) -> bool {
        self.end(Then::Done).released
    }

    /// Success: clears the item's rate-limiter history
    /// ([`WorkQueue::forget`]) and marks it done.
    pub fn forget(self) -> bool {
        self.end(Then::Forget).released
    }

    /// Failure: re-adds the item after the rate limiter's delay
    /// ([`WorkQueue::add_rate_limited`]), then marks it done.
    pub fn retry(self) -> Result<Added, ShutDown<T>> {
        self.end_readding(Then::Retry)
    }

    /// Re-adds the item after `delay`, then marks it done.
    pub fn retry_after(self, delay: Duration) -> Result<Added, ShutDown<T>> {
        self.end_readding(Then::RetryAfter(delay))
    }

    /// Re-adds the item at once (it goes to the back of the queue), then marks it done.
    pub fn requeue(self) -> Result<Added, ShutDown<T>> {
        self.end_readding(Then::Requeue)
    }

    /// Takes the item out of the guard *without* marking it done: you
    /// must call the queue's `done` yourself, as in client-go
    /// ([`WorkQueue::done`], or [`AsyncQueue::done`](crate::engine::AsyncQueue::done)
    /// on any engine). A remote engine keeps renewing the lease until then.
    pub fn detach(mut self) -> T {
        if let Hold::Leased(lease) = &mut self.hold {
            drop(lease.take());
        }
        self.take_item()
    }

    /// Ends the hand-out as `then` says, without waiting. In memory the
    /// result is exact; for a remote item the ending is handed to the
    /// engine's background task: `released` tells whether the lease was
    /// still valid, and a re-add reports [`Added::Sent`].
    pub fn end(mut self, then: Then) -> Ended {
        let item = self.take_item();
        match &mut self.hold {
            Hold::Local {
                queue,
                handle,
                token,
            } => end_local(queue, *handle, *token, item, then),
            Hold::Leased(lease) => match lease.take() {
                Some(lease) => {
                    let released = lease.is_valid();
                    lease.end(item, then);
                    Ended {
                        released,
                        added: readds(then).then_some(Added::Sent),
                        refused: false,
                    }
                }
                None => Ended::NOTHING,
            },
        }
    }

    /// Ends the hand-out as `then` says and waits for the outcome: for a
    /// remote item, [`QueueError::LeaseLost`] if another worker may hold
    /// it now (the new holder's lease is not touched).
    pub async fn end_async(mut self, then: Then) -> Result<Ended, QueueError> {
        let item = self.take_item();
        match &mut self.hold {
            Hold::Local {
                queue,
                handle,
                token,
            } => Ok(end_local(queue, *handle, *token, item, then)),
            Hold::Leased(lease) => match lease.take() {
                Some(lease) => lease.end_async(item, then).await,
                None => Ok(Ended::NOTHING),
            },
        }
    }

    /// Ends the hand-out as [`end_async`](Item::end_async) does and takes
    /// the next item in the same trip when the engine can: the step
    /// between two items of a worker loop. The next item is `Some` only
    /// when one was ready and the engine took it on the way (a remote
    /// engine ending a lease with a done or a forget); otherwise ask with
    /// `get` as usual. In memory it is always `None` (a `get` there costs
    /// no trip).
    ///
    /// A next item is held like any other: process it, even when the
    /// worker was told to stop meanwhile (dropping it marks it done).
    ///
    /// ```
    /// use requeue::engine::{AsyncQueue, QueueError, Then};
    /// use requeue::queue::WorkQueue;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # runtime.block_on(async {
    /// let queue = WorkQueue::new();
    /// queue.add("a");
    /// queue.add("b");
    /// let mut item = AsyncQueue::get(&queue).await?;
    /// loop {
    ///     // ... process *item ...
    ///     let (ended, next) = item.end_then_next(Then::Forget).await;
    ///     ended?;
    ///     item = match next {
    ///         Some(next) => next,
    ///         None if queue.len() == 0 => break,
    ///         None => AsyncQueue::get(&queue).await?,
    ///     };
    /// }
    /// # Ok::<(), QueueError>(())
    /// # }).unwrap();
    /// ```
    pub async fn end_then_next(mut self, then: Then) -> EndedThenNext<T> {
        let item = self.take_item();
        match &mut self.hold {
            Hold::Local {
                queue,
                handle,
                token,
            } => (Ok(end_local(queue, *handle, *token, item, then)), None),
            Hold::Leased(lease) => match lease.take() {
                Some(lease) => lease.end_then_next(item, then).await,
                None => (Ok(Ended::NOTHING), None),
            },
        }
    }

    fn end_readding(self, then: Then) -> Result<Added, ShutDown<T>> {
        let item = (*self).clone();
        let ended = self.end(then);
        match ended.added {
            Some(added) if !ended.refused => Ok(added),
            _ => Err(ShutDown(item)),
        }
    }

    fn take_item(&mut self) -> T {
        match self.item.take() {
            Some(item) => item,
            None => unreachable!("the item is only taken when the guard is consumed"),
        }
    }
}

/// Whether an ending re-adds the item.
fn readds(then: Then) -> bool {
    then.readd().is_some()
}

/// Ends an in-memory hand-out: the re-add first (so a key re-added while
/// processing is queued again when it is done), then done.
fn end_local<T: Key>(
    queue: &WorkQueue<T>,
    handle: Handle,
    token: u32,
    item: T,
    then: Then,
) -> Ended {
    if then.forgets() {
        queue.forget(&item);
    }
    let readd = then.readd().map(|readd| match readd {
        Readd::Now => queue.add(item),
        Readd::RateLimited => queue.add_rate_limited(item),
        Readd::After(delay) => queue.add_after(item, delay),
    });
    let released = queue.finish(handle, token);
    match readd {
        None => Ended {
            released,
            added: None,
            refused: false,
        },
        Some(Ok(added)) => Ended {
            released,
            added: Some(added),
            refused: false,
        },
        Some(Err(_)) => Ended {
            released,
            added: None,
            refused: true,
        },
    }
}

impl<T: Key> Deref for Item<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.item {
            Some(item) => item,
            None => unreachable!("the item is only taken when the guard is consumed"),
        }
    }
}

impl<T: Key> Drop for Item<T> {
    fn drop(&mut self) {
        let Some(item) = self.item.take() else {
            return;
        };
        match &mut self.hold {
            Hold::Local {
                queue,
                handle,
                token,
            } => {
                queue.finish(*handle, *token);
            }
            Hold::Leased(lease) => {
                if let Some(lease) = lease.take() {
                    lease.end(item, Then::Done);
                }
            }
        }
    }
}

impl<T: Key + fmt::Debug> fmt::Debug for Item<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("item", &self.item)
            .field("priority", &self.priority)
            .field("remote", &matches!(self.hold, Hold::Leased(_)))
            .finish()
    }
}
