//! [`BlockingRedisQueue`]: the Redis queue for thread-based callers.

use super::RedisQueue;

/// A [`RedisQueue`] for threads without an async runtime: the same calls,
/// blocking (core's generic [`Blocking`](requeue::engine::Blocking) facade,
/// which serves every engine). Items are the same
/// [`Item`](requeue::queue::Item) guard (dropping one marks it done in the
/// background). Build it with
/// [`RedisQueueBuilder::build_blocking`](super::RedisQueueBuilder::build_blocking),
/// or wrap an async queue with `Blocking::from_async`.
///
/// The calls park the calling thread while the queue's own runtime does
/// the work. From async code use the [`RedisQueue`] itself: blocking a
/// runtime's task stalls that runtime's thread.
pub type BlockingRedisQueue<T> = requeue::engine::Blocking<RedisQueue<T>>;
