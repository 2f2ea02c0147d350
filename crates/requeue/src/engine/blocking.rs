//! [`Blocking`]: any [`AsyncQueue`] for threads without an async runtime.

use super::{AddError, AsyncQueue, QueueError};
use crate::exec::block_on;
use crate::queue::{AddOpts, Added, Item, Key};
use crate::wait::Stop;
use std::time::Duration;

/// Any [`AsyncQueue`] engine for plain threads: the same calls, blocking
/// the calling thread (it parks until the engine's future is done; no
/// runtime is needed). Items are the same [`Item`] guard.
///
/// ```
/// use requeue::engine::Blocking;
/// use requeue::queue::WorkQueue;
///
/// // Written once for every engine; here the in-memory one.
/// fn drain<Q: requeue::engine::AsyncQueue<String>>(queue: &Blocking<Q>) -> Vec<String> {
///     let mut seen = Vec::new();
///     while queue.len().unwrap_or(0) > 0 {
///         let item = queue.get().expect("an item");
///         seen.push((*item).clone());
///     }
///     seen
/// }
///
/// let queue = Blocking::from_async(WorkQueue::<String>::new());
/// queue.add("a".to_string()).unwrap();
/// queue.add("b".to_string()).unwrap();
/// assert_eq!(drain(&queue), ["a", "b"]);
/// ```
///
/// Blocking a task of an async runtime stalls the runtime's thread: from
/// async code use the engine itself.
#[derive(Debug, Clone)]
pub struct Blocking<Q> {
    queue: Q,
}

impl<Q> Blocking<Q> {
    /// The blocking facade of `queue` (they share everything).
    pub fn from_async(queue: Q) -> Self {
        Blocking { queue }
    }

    /// The async queue behind this facade.
    pub fn as_async(&self) -> &Q {
        &self.queue
    }

    /// The async queue behind this facade, by value.
    pub fn into_async(self) -> Q {
        self.queue
    }

    /// See [`AsyncQueue::add`].
    pub fn add<T: Key>(&self, item: T) -> Result<Added, AddError<T>>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.add(item))
    }

    /// See [`AsyncQueue::add_after`].
    pub fn add_after<T: Key>(&self, item: T, delay: Duration) -> Result<Added, AddError<T>>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.add_after(item, delay))
    }

    /// See [`AsyncQueue::add_rate_limited`].
    pub fn add_rate_limited<T: Key>(&self, item: T) -> Result<Added, AddError<T>>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.add_rate_limited(item))
    }

    /// See [`AsyncQueue::add_with`].
    pub fn add_with<T: Key>(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.add_with(item, opts))
    }

    /// See [`AsyncQueue::get`].
    pub fn get<T: Key>(&self) -> Result<Item<T>, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.get())
    }

    /// See [`AsyncQueue::get_until`].
    pub fn get_until<T: Key>(&self, stop: &Stop) -> Result<Item<T>, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.get_until(stop))
    }

    /// See [`AsyncQueue::done`].
    pub fn done<T: Key>(&self, item: &T) -> Result<bool, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.done(item))
    }

    /// See [`AsyncQueue::forget`].
    pub fn forget<T: Key>(&self, item: &T) -> Result<(), QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.forget(item))
    }

    /// See [`AsyncQueue::num_requeues`].
    pub fn num_requeues<T: Key>(&self, item: &T) -> Result<u32, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.num_requeues(item))
    }

    /// See [`AsyncQueue::len`].
    pub fn len<T: Key>(&self) -> Result<usize, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.len())
    }

    /// See [`AsyncQueue::is_empty`].
    pub fn is_empty<T: Key>(&self) -> Result<bool, QueueError>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.is_empty())
    }

    /// See [`AsyncQueue::shut_down`].
    pub fn shut_down<T: Key>(&self) -> Vec<T>
    where
        Q: AsyncQueue<T>,
    {
        self.queue.shut_down()
    }

    /// See [`AsyncQueue::shut_down_with_drain`].
    pub fn shut_down_with_drain<T: Key>(&self) -> Vec<T>
    where
        Q: AsyncQueue<T>,
    {
        block_on(self.queue.shut_down_with_drain())
    }

    /// See [`AsyncQueue::is_shutting_down`].
    pub fn is_shutting_down<T: Key>(&self) -> bool
    where
        Q: AsyncQueue<T>,
    {
        self.queue.is_shutting_down()
    }
}
