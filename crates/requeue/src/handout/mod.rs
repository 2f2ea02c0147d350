//! The hand-out vocabulary every queue shares, below both
//! [`queue`](crate::queue) and [`engine`](crate::engine): what a queue item
//! must be ([`Key`]), how a hand-out ends ([`Then`], [`Ended`]), what an
//! add did ([`Added`]), how a remote engine plugs its hand-outs into the
//! one guard [`Item`](crate::queue::Item) ([`Lease`]), and every queue
//! error. Nothing here depends on `queue` or `engine`, so `queue` no longer
//! depends on `engine` to name them.
//!
//! The guard itself stays with the in-memory queue, whose hold it carries
//! unboxed: an in-memory hand-out must not cost an allocation, and the
//! queue's `Arc` (loom's, in the concurrency models) cannot be turned into
//! a trait object without `unsafe` code.
//!
//! # Usage
//!
//! ```
//! use requeue::handout::{Added, Then};
//! use requeue::queue::WorkQueue;
//!
//! let queue: WorkQueue<String> = WorkQueue::new();
//! queue.add("a".to_string()).unwrap();
//! let item = queue.get().expect("an item");
//! // A failure: the key comes back after its rate limiter's delay.
//! let ended = item.end(Then::Retry);
//! assert!(ended.released);
//! assert!(matches!(ended.added, Some(Added::Delayed { .. })));
//! ```
//!
//! The same items are re-exported where they are used: `requeue::queue`
//! (`Added`, `Key`, `ShutDown`, `GetError`, `TryGetError`) and
//! `requeue::engine` (`Lease`, `Then`, `Ended`, `QueueError`, …).

mod added;
mod error;
mod settle;

pub use added::Added;
pub use error::{AddError, BoxError, GetError, QueueError, ShutDown, TryGetError};
pub use settle::{Action, BoxFuture, Ended, EndedThenNext, Lease, Readd, Then};

use std::hash::Hash;

/// What a queue item must be: compared and hashed for dedup, cloned into
/// the queue's index, shared between threads.
pub trait Key: Eq + Hash + Clone + Send + Sync + 'static {}
impl<T: Eq + Hash + Clone + Send + Sync + 'static> Key for T {}
