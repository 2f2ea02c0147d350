//! The in-memory [`WorkQueue`] as an [`AsyncQueue`]: every call completes
//! at once except the gets and the drain, which wait as their async twins do.

use super::{AddError, AsyncQueue, QueueError};
use crate::clock::SharedClock;
use crate::queue::{AddOpts, Added, Item, Key, WorkQueue};
use crate::wait::Stop;
use std::future::{Future, ready};

impl<T: Key> AsyncQueue<T> for WorkQueue<T> {
    fn name(&self) -> &str {
        WorkQueue::name(self)
    }

    fn clock(&self) -> &SharedClock {
        WorkQueue::clock(self)
    }

    fn add_with(
        &self,
        item: T,
        opts: AddOpts,
    ) -> impl Future<Output = Result<Added, AddError<T>>> + Send {
        ready(WorkQueue::add_with(self, item, opts).map_err(AddError::from))
    }

    async fn get(&self) -> Result<Item<T>, QueueError> {
        self.get_async().await.ok_or(QueueError::ShutDown)
    }

    async fn get_until(&self, stop: &Stop) -> Result<Item<T>, QueueError> {
        self.get_until_async(stop).await.map_err(QueueError::from)
    }

    fn done(&self, item: &T) -> impl Future<Output = Result<bool, QueueError>> + Send {
        ready(Ok(WorkQueue::done(self, item)))
    }

    fn forget(&self, item: &T) -> impl Future<Output = Result<(), QueueError>> + Send {
        WorkQueue::forget(self, item);
        ready(Ok(()))
    }

    fn num_requeues(&self, item: &T) -> impl Future<Output = Result<u32, QueueError>> + Send {
        ready(Ok(WorkQueue::num_requeues(self, item)))
    }

    fn len(&self) -> impl Future<Output = Result<usize, QueueError>> + Send {
        ready(Ok(WorkQueue::len(self)))
    }

    fn shut_down(&self) -> Vec<T> {
        WorkQueue::shut_down(self)
    }

    fn shut_down_with_drain(&self) -> impl Future<Output = Vec<T>> + Send {
        self.shut_down_with_drain_async()
    }

    fn is_shutting_down(&self) -> bool {
        WorkQueue::is_shutting_down(self)
    }
}
