//! Errors of the work queue.

/// An add was refused because the queue is shutting down; the item is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the work queue is shutting down; the item was not added")]
pub struct ShutDown<T>(pub T);

impl<T> ShutDown<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why a waiting `get` returned without an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// The queue is shut down and has no item left to hand out.
    #[error("the work queue is shut down and empty")]
    ShutDown,
    /// The deadline passed before an item was ready.
    #[error("timed out waiting for an item")]
    TimedOut,
    /// The stop signal fired before an item was ready.
    #[error("stopped while waiting for an item")]
    Stopped,
}

/// Why [`WorkQueue::try_get`](super::WorkQueue::try_get) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryGetError {
    /// No item is ready right now.
    #[error("no item is ready")]
    Empty,
    /// The queue is shut down and has no item left to hand out.
    #[error("the work queue is shut down and empty")]
    ShutDown,
}
