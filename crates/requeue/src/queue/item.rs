//! The guard `get` returns: the item, marked done when the guard goes away.

use super::outcome::HandOut;
use super::{Added, Key, ShutDown, WorkQueue};
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// An item handed out by a [`WorkQueue`], being processed by its holder.
///
/// Dereferences to the item. Dropping the guard marks the item done
/// (deviation 8: a forgotten `done` can no longer wedge a key); the methods
/// below end the processing with a decision instead. Each guard only ever
/// ends its own hand-out: after an explicit [`WorkQueue::done`] the guard's
/// drop does nothing, even if the item has been handed out again since.
#[must_use = "dropping the guard marks the item done at once"]
pub struct Item<T: Key> {
    queue: WorkQueue<T>,
    item: Option<T>,
    slot: u32,
    token: u64,
    priority: i32,
}

impl<T: Key> Item<T> {
    pub(crate) fn new(queue: WorkQueue<T>, out: HandOut<T>) -> Self {
        Item {
            queue,
            item: Some(out.item),
            slot: out.slot,
            token: out.token,
            priority: out.priority,
        }
    }

    /// The priority the item was queued with (0 unless added with one).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Marks the item done. Returns `false` if its processing had already
    /// been ended by an explicit [`WorkQueue::done`].
    pub fn done(mut self) -> bool {
        self.finish()
    }

    /// Success: clears the item's rate-limiter history
    /// ([`WorkQueue::forget`]) and marks it done.
    pub fn forget(mut self) -> bool {
        if let Some(item) = &self.item {
            self.queue.forget(item);
        }
        self.finish()
    }

    /// Failure: re-adds the item after the rate limiter's delay
    /// ([`WorkQueue::add_rate_limited`]), then marks it done.
    pub fn retry(mut self) -> Result<Added, ShutDown<T>> {
        let result = self.readd(|q, item| q.add_rate_limited(item));
        self.finish();
        result
    }

    /// Re-adds the item after `delay`, then marks it done.
    pub fn retry_after(mut self, delay: Duration) -> Result<Added, ShutDown<T>> {
        let result = self.readd(|q, item| q.add_after(item, delay));
        self.finish();
        result
    }

    /// Re-adds the item at once (it goes to the back of the queue), then marks it done.
    pub fn requeue(mut self) -> Result<Added, ShutDown<T>> {
        let result = self.readd(|q, item| q.add(item));
        self.finish();
        result
    }

    /// Takes the item out of the guard *without* marking it done: you
    /// must call [`WorkQueue::done`] yourself, as in client-go.
    pub fn detach(mut self) -> T {
        match self.item.take() {
            Some(item) => item,
            None => unreachable!("the item is only taken when the guard is consumed"),
        }
    }

    fn readd(
        &self,
        add: impl FnOnce(&WorkQueue<T>, T) -> Result<Added, ShutDown<T>>,
    ) -> Result<Added, ShutDown<T>> {
        match &self.item {
            Some(item) => add(&self.queue, item.clone()),
            None => unreachable!("the item is only taken when the guard is consumed"),
        }
    }

    fn finish(&mut self) -> bool {
        match self.item.take() {
            Some(_) => self.queue.finish(self.slot, self.token),
            None => false,
        }
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
        self.finish();
    }
}

impl<T: Key + fmt::Debug> fmt::Debug for Item<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("item", &self.item)
            .field("priority", &self.priority)
            .finish()
    }
}
