//! The errors of every queue, in one place: those every engine reports in
//! the same words ([`QueueError`], [`AddError`]) and the in-memory
//! queue's own ([`ShutDown`], [`GetError`], [`TryGetError`]).

use std::error::Error as StdError;

/// A boxed error from an engine's backend (I/O, protocol, …).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a queue operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue is shutting down (for gets: shut down and, for this
    /// process, nothing left to hand out).
    #[error("the work queue is shutting down")]
    ShutDown,
    /// The stop signal fired before an item was ready.
    #[error("stopped while waiting for an item")]
    Stopped,
    /// A deadline passed before an item was ready.
    #[error("timed out waiting for an item")]
    TimedOut,
    /// The item's lease ran out and may now be held by another worker; the
    /// call did not touch the new holder's lease.
    #[error("the lease on this item was lost; another worker may hold it now")]
    LeaseLost,
    /// A stored key could not be decoded into the queue's item type. The
    /// item was left where it was: its lease runs out and it comes back
    /// with backoff, so nothing is lost and nothing hot-loops.
    #[error("cannot decode the stored key {raw:?}: {reason}")]
    Decode {
        /// The stored bytes.
        raw: Vec<u8>,
        /// What the decoder said.
        reason: String,
    },
    /// The backend failed (connection lost, protocol error, …).
    #[error("queue backend error: {0}")]
    Backend(#[source] BoxError),
    /// The engine's stored state holds something the engine never writes
    /// (for Redis: a key of the wrong type, or a count that is not a
    /// number). The operation stopped before changing anything, so nothing
    /// was lost; the state needs repair (`requeue repair` for Redis) before
    /// the operation can succeed. Not transient: retrying does not help.
    #[error("queue state is corrupt: {key}{} {problem}", field_part(field.as_deref()))]
    Corrupt {
        /// Where, e.g. the Redis key `rq:{emails}:meta`.
        key: String,
        /// The field inside it, if the problem is one field.
        field: Option<String>,
        /// What is wrong, e.g. "is not an integer".
        problem: String,
    },
}

/// ` field "…"` (at most 100 characters of it), or nothing.
fn field_part(field: Option<&str>) -> String {
    const MAX: usize = 100;
    match field {
        Some(f) if f.chars().count() > MAX => {
            let kept: String = f.chars().take(MAX - 1).collect();
            format!(" field {:?}", kept + "…")
        }
        Some(f) => format!(" field {f:?}"),
        None => String::new(),
    }
}

impl QueueError {
    /// Wraps any backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        QueueError::Backend(error.into())
    }
}

/// An add that did not happen; the item is handed back, so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[error("the item was not added: {error}")]
pub struct AddError<T> {
    /// The item, handed back.
    pub item: T,
    /// Why.
    #[source]
    pub error: QueueError,
}

impl<T> AddError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T> From<ShutDown<T>> for AddError<T> {
    fn from(refused: ShutDown<T>) -> Self {
        AddError {
            item: refused.0,
            error: QueueError::ShutDown,
        }
    }
}

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

/// Why [`WorkQueue::try_get`](crate::queue::WorkQueue::try_get) returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryGetError {
    /// No item is ready right now.
    #[error("no item is ready")]
    Empty,
    /// The queue is shut down and has no item left to hand out.
    #[error("the work queue is shut down and empty")]
    ShutDown,
}

/// The in-memory queue's get errors in the words every engine uses.
impl From<GetError> for QueueError {
    fn from(error: GetError) -> Self {
        match error {
            GetError::ShutDown => QueueError::ShutDown,
            GetError::Stopped => QueueError::Stopped,
            GetError::TimedOut => QueueError::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_error_keeps_its_meaning_in_the_engines_words() {
        assert!(matches!(
            QueueError::from(GetError::ShutDown),
            QueueError::ShutDown
        ));
        assert!(matches!(
            QueueError::from(GetError::Stopped),
            QueueError::Stopped
        ));
        assert!(matches!(
            QueueError::from(GetError::TimedOut),
            QueueError::TimedOut
        ));
        let refused: AddError<&str> = ShutDown("k").into();
        assert!(matches!(refused.error, QueueError::ShutDown));
        assert_eq!(refused.into_inner(), "k");
    }
}
