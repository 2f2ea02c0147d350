//! One async queue interface over every engine: the in-memory
//! [`WorkQueue`](crate::queue::WorkQueue) here, the Redis engine of
//! `requeue-redis`, and any you write. Code written against
//! [`AsyncQueue`] — including [`Controller::run_async`](crate::controller::Controller::run_async)
//! — switches engines by changing the one line that builds the queue.
//!
//! # Usage
//!
//! ```
//! use requeue::engine::{AsyncQueue, QueueError};
//! use requeue::queue::WorkQueue;
//!
//! /// A worker loop that runs on any engine.
//! async fn drain<Q: AsyncQueue<String>>(queue: &Q) -> Result<Vec<String>, QueueError> {
//!     let mut seen = Vec::new();
//!     while queue.len().await? > 0 {
//!         let item = queue.get().await?;
//!         seen.push((*item).clone());
//!         item.end_async(requeue::engine::Then::Forget).await?;
//!     }
//!     Ok(seen)
//! }
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(async {
//! let queue: WorkQueue<String> = WorkQueue::new();
//! for key in ["a", "b", "a"] {
//!     AsyncQueue::add(&queue, key.to_string()).await.unwrap();
//! }
//! assert_eq!(drain(&queue).await.unwrap(), ["a", "b"]);
//! # });
//! ```
//!
//! On a concrete [`WorkQueue`](crate::queue::WorkQueue) the inherent,
//! synchronous methods of the same names win; call the trait's as
//! `AsyncQueue::add(&queue, …)` or from generic code.
//!
//! # Implementation
//!
//! Every method returns a `Send` future, so generic workers can be
//! spawned on a multi-threaded runtime. Items come back as the one
//! [`Item`] guard: an engine that holds items remotely implements
//! [`Lease`] and builds guards with [`Item::leased`].
//!
//! # Cancellation safety
//!
//! Dropping a `get` future before it completes loses no item on either
//! engine shipped with requeue: an item is only taken when the future
//! returns it.

mod blocking;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;
#[cfg(feature = "remote")]
pub mod remote;

pub use crate::handout::{
    AddError, BoxError, BoxFuture, Ended, EndedThenNext, Lease, QueueError, Readd, Then,
};
pub use blocking::Blocking;

use crate::clock::SharedClock;
use crate::queue::{AddOpts, Added, Item, Key};
use crate::wait::Stop;
use std::future::Future;
use std::time::Duration;

/// client-go's rate-limiting work queue as an async interface, implemented
/// by every engine (see the [module docs](self)).
///
/// The rules are the same on every engine: an item is queued at most once
/// however often it is added; an item being processed is not handed out
/// again until its holder is done, and one re-added meanwhile is queued
/// again then; the earliest of several delays wins; an immediate add
/// cancels a pending delay.
pub trait AsyncQueue<T: Key>: Clone + Send + Sync + 'static {
    /// The queue's name (the `name` label of its metrics).
    fn name(&self) -> &str;

    /// The clock the queue's delays run on.
    fn clock(&self) -> &SharedClock;

    /// Adds `item` as `opts` say (engines without priorities ignore
    /// `opts.priority`).
    fn add_with(
        &self,
        item: T,
        opts: AddOpts,
    ) -> impl Future<Output = Result<Added, AddError<T>>> + Send;

    /// Adds `item` now (client-go's `Add`).
    fn add(&self, item: T) -> impl Future<Output = Result<Added, AddError<T>>> + Send {
        self.add_with(item, AddOpts::new())
    }

    /// Adds `item` after `delay` (client-go's `AddAfter`).
    fn add_after(
        &self,
        item: T,
        delay: Duration,
    ) -> impl Future<Output = Result<Added, AddError<T>>> + Send {
        self.add_with(item, AddOpts::new().after(delay))
    }

    /// Adds `item` after its rate limiter's delay (client-go's `AddRateLimited`).
    fn add_rate_limited(&self, item: T) -> impl Future<Output = Result<Added, AddError<T>>> + Send {
        self.add_with(item, AddOpts::new().rate_limited())
    }

    /// Waits for the next item; [`QueueError::ShutDown`] once the queue is
    /// shut down (and drained of what this process may still take).
    fn get(&self) -> impl Future<Output = Result<Item<T>, QueueError>> + Send;

    /// As [`get`](AsyncQueue::get), but gives up with
    /// [`QueueError::Stopped`] when `stop` fires.
    fn get_until(&self, stop: &Stop) -> impl Future<Output = Result<Item<T>, QueueError>> + Send;

    /// Ends the processing of `item`, handed out to this process, whose
    /// guard was [detached](Item::detach) (client-go's `Done`). `Ok(false)`
    /// if this process was not processing it (or had ended it already);
    /// for a remote engine, [`QueueError::LeaseLost`] if its lease ran out
    /// meanwhile (another worker may hold it now).
    fn done(&self, item: &T) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Clears `item`'s rate-limiter history (client-go's `Forget`).
    fn forget(&self, item: &T) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// How often `item` has been retried since its last forget
    /// (client-go's `NumRequeues`).
    fn num_requeues(&self, item: &T) -> impl Future<Output = Result<u32, QueueError>> + Send;

    /// Items ready to be handed out (client-go's `Len`; for shared engines,
    /// across every process).
    fn len(&self) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// Whether no item is ready (see [`len`](AsyncQueue::len)).
    fn is_empty(&self) -> impl Future<Output = Result<bool, QueueError>> + Send {
        let len = self.len();
        async move { Ok(len.await? == 0) }
    }

    /// Stops handing out items and refuses adds from this process; waiting
    /// gets return [`QueueError::ShutDown`]. Returns the delayed items this
    /// process withdrew (shared engines keep theirs for other processes).
    fn shut_down(&self) -> Vec<T>;

    /// As [`shut_down`](AsyncQueue::shut_down), then waits until every item
    /// this process holds is done.
    fn shut_down_with_drain(&self) -> impl Future<Output = Vec<T>> + Send;

    /// Whether [`shut_down`](AsyncQueue::shut_down) has been called.
    fn is_shutting_down(&self) -> bool;
}
