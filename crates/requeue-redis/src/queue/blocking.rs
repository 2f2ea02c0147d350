//! [`BlockingRedisQueue`]: the Redis queue for thread-based callers.

use super::RedisQueue;
use requeue::engine::{AddError, QueueError};
use requeue::queue::{AddOpts, Added, Item, Key};
use requeue::wait::Stop;
use std::time::Duration;

/// A [`RedisQueue`] for threads without an async runtime: the same calls,
/// blocking. Items are the same [`Item`] guard (dropping one marks it done
/// in the background). Build it with
/// [`RedisQueueBuilder::build_blocking`](super::RedisQueueBuilder::build_blocking),
/// or wrap an async queue with [`from_async`](BlockingRedisQueue::from_async).
///
/// Calling it from inside an async task panics (as blocking inside a
/// runtime would stall it); use the [`RedisQueue`] there.
#[derive(Debug)]
pub struct BlockingRedisQueue<T> {
    queue: RedisQueue<T>,
}

impl<T> Clone for BlockingRedisQueue<T> {
    fn clone(&self) -> Self {
        BlockingRedisQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Key> BlockingRedisQueue<T> {
    pub(super) fn new(queue: RedisQueue<T>) -> Self {
        BlockingRedisQueue { queue }
    }

    /// The blocking facade of an async queue (they share everything).
    pub fn from_async(queue: RedisQueue<T>) -> Self {
        BlockingRedisQueue { queue }
    }

    /// The async queue behind this facade.
    pub fn as_async(&self) -> &RedisQueue<T> {
        &self.queue
    }

    fn block_on<R>(&self, fut: impl std::future::Future<Output = R>) -> R {
        self.queue.shared.runtime.block_on(fut)
    }

    /// See [`RedisQueue::add`].
    pub fn add(&self, item: T) -> Result<Added, AddError<T>> {
        self.block_on(self.queue.add(item))
    }

    /// See [`RedisQueue::add_after`].
    pub fn add_after(&self, item: T, delay: Duration) -> Result<Added, AddError<T>> {
        self.block_on(self.queue.add_after(item, delay))
    }

    /// See [`RedisQueue::add_rate_limited`].
    pub fn add_rate_limited(&self, item: T) -> Result<Added, AddError<T>> {
        self.block_on(self.queue.add_rate_limited(item))
    }

    /// See [`RedisQueue::add_with`].
    pub fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>> {
        self.block_on(self.queue.add_with(item, opts))
    }

    /// See [`RedisQueue::get`].
    pub fn get(&self) -> Result<Item<T>, QueueError> {
        self.block_on(self.queue.get())
    }

    /// See [`RedisQueue::get_until`].
    pub fn get_until(&self, stop: &Stop) -> Result<Item<T>, QueueError> {
        self.block_on(self.queue.get_until(stop))
    }

    /// See [`RedisQueue::forget`].
    pub fn forget(&self, item: &T) -> Result<(), QueueError> {
        self.block_on(self.queue.forget(item))
    }

    /// See [`RedisQueue::num_requeues`].
    pub fn num_requeues(&self, item: &T) -> Result<u32, QueueError> {
        self.block_on(self.queue.num_requeues(item))
    }

    /// See [`RedisQueue::len`].
    pub fn len(&self) -> Result<usize, QueueError> {
        self.block_on(self.queue.len())
    }

    /// See [`RedisQueue::is_empty`].
    pub fn is_empty(&self) -> Result<bool, QueueError> {
        self.block_on(self.queue.is_empty())
    }

    /// See [`RedisQueue::shut_down`].
    pub fn shut_down(&self) {
        self.queue.shut_down();
    }

    /// See [`RedisQueue::shut_down_with_drain`].
    pub fn shut_down_with_drain(&self) {
        self.block_on(self.queue.shut_down_with_drain());
    }

    /// See [`RedisQueue::is_shutting_down`].
    pub fn is_shutting_down(&self) -> bool {
        self.queue.is_shutting_down()
    }
}
