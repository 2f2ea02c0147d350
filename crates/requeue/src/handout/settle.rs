//! How a hand-out ends ([`Action`] as a handler says it, [`Then`] as the
//! queue does it, [`Ended`] as it went) and how a remote engine's hand-out
//! plugs into the one [`Item`](crate::queue::Item) guard ([`Lease`]).
//!
//! One outcome, two words for it: a handler answers with an [`Action`]
//! (kube-runtime's vocabulary), [`Action::then`] is the one place that
//! says which queue calls it stands for, and the metrics label is
//! `From<Action>` (`metrics::ReconcileResult`).

use super::{Added, QueueError};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What to do with a key after handling it: a handler's (or an error
/// policy's) answer. [`Action::then`] turns it into the queue's ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Finished: its backoff history is cleared.
    Done,
    /// Handle it again soon: it goes to the back of the queue.
    Requeue,
    /// Handle it again after this long (its backoff history is cleared).
    RequeueAfter(Duration),
    /// Handle it again after its rate limiter's delay.
    RequeueRateLimited,
}

impl Action {
    /// The queue calls this answer stands for:
    ///
    /// | action | ending | queue calls |
    /// |---|---|---|
    /// | `Done` | [`Then::Forget`] | `forget`, done |
    /// | `Requeue` | [`Then::Requeue`] | `add`, done |
    /// | `RequeueAfter(d)` | [`Then::ForgetRetryAfter`] | `forget`, `add_after(d)`, done |
    /// | `RequeueRateLimited` | [`Then::Retry`] | `add_rate_limited`, done |
    pub fn then(self) -> Then {
        match self {
            Action::Done => Then::Forget,
            Action::Requeue => Then::Requeue,
            Action::RequeueAfter(delay) => Then::ForgetRetryAfter(delay),
            Action::RequeueRateLimited => Then::Retry,
        }
    }
}

/// How a hand-out ends: marked done, and what else happens to the key in
/// the same step. The guard's methods (`done`, `forget`, `retry`, …) are
/// shorthands for these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Only mark it done.
    Done,
    /// Clear its rate-limiter history, then mark it done (success).
    Forget,
    /// Re-add it at once, then mark it done.
    Requeue,
    /// Re-add it after the rate limiter's delay, then mark it done (failure).
    Retry,
    /// Re-add it after this long, then mark it done.
    RetryAfter(Duration),
    /// Clear its history and re-add it after this long, then mark it done
    /// (a successful reconcile that asks to come back).
    ForgetRetryAfter(Duration),
}

impl Then {
    /// Whether this ending clears the key's rate-limiter history.
    pub fn forgets(self) -> bool {
        matches!(self, Then::Forget | Then::ForgetRetryAfter(_))
    }

    /// The re-add this ending makes before it marks the hand-out done
    /// (re-adding first, while the key is still held, parks the re-add
    /// until the done, so nothing is lost); `None` for [`Then::Done`] and
    /// [`Then::Forget`]. Every engine applies this one mapping.
    pub fn readd(self) -> Option<Readd> {
        match self {
            Then::Done | Then::Forget => None,
            Then::Requeue => Some(Readd::Now),
            Then::Retry => Some(Readd::RateLimited),
            Then::RetryAfter(delay) | Then::ForgetRetryAfter(delay) => Some(Readd::After(delay)),
        }
    }
}

/// The re-add an ending makes ([`Then::readd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readd {
    /// At once (client-go's `Add`).
    Now,
    /// After the rate limiter's delay (`AddRateLimited`).
    RateLimited,
    /// After this long (`AddAfter`).
    After(Duration),
}

/// What ending a hand-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// `true` if this guard's hand-out was still current and is now ended;
    /// `false` if it had already been ended (an explicit `done`) or its
    /// lease was lost.
    pub released: bool,
    /// What the re-add did, for endings that re-add (and were not refused).
    pub added: Option<Added>,
    /// The re-add was refused because the queue is shutting down; the key
    /// comes back with the next add or resync.
    pub refused: bool,
}

impl Ended {
    /// Nothing was ended: the hand-out had already been ended.
    pub const NOTHING: Ended = Ended {
        released: false,
        added: None,
        refused: false,
    };
}

/// What ending a hand-out and taking the next item in one trip gives
/// ([`Item::end_then_next`](crate::queue::Item::end_then_next)): the
/// ending's outcome, and the next item if one was taken on the way.
pub type EndedThenNext<T> = (Result<Ended, QueueError>, Option<crate::queue::Item<T>>);

/// A boxed, sendable future, as [`Lease::end_async`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One hand-out held from a remote engine; implemented by engines such as
/// `requeue-redis`, used only through [`Item`](crate::queue::Item).
///
/// An engine builds an item with [`Item::leased`](crate::queue::Item::leased).
pub trait Lease<T>: Send + Sync + 'static {
    /// Whether the holder still believes it holds the item (its lease has
    /// not run out or been reported lost).
    fn is_valid(&self) -> bool;

    /// The fencing token of this hand-out, for downstream systems that
    /// reject stale writers.
    fn token(&self) -> String;

    /// Ends the hand-out without waiting: the engine applies `then` in the
    /// background, in order with this process's other calls. Used by the
    /// guard's drop and its synchronous methods; must not block.
    fn end(self: Box<Self>, item: T, then: Then);

    /// Ends the hand-out and reports what happened.
    fn end_async(
        self: Box<Self>,
        item: T,
        then: Then,
    ) -> BoxFuture<'static, Result<Ended, QueueError>>;

    /// Ends the hand-out as [`end_async`](Lease::end_async) does and, when
    /// the engine can do both in one trip, also takes the next ready item
    /// for the same holder: what a worker loop does between two items
    /// ([`Item::end_then_next`](crate::queue::Item::end_then_next)). `None`
    /// when no item was taken that way (none was ready, or the engine
    /// takes items only when asked): the holder asks with `get` as usual.
    fn end_then_next(self: Box<Self>, item: T, then: Then) -> BoxFuture<'static, EndedThenNext<T>>
    where
        T: crate::queue::Key,
    {
        let ending = self.end_async(item, then);
        Box::pin(async move { (ending.await, None) })
    }
}
