//! The toolkit of an engine that keeps its queue outside the process
//! (Redis, a database): everything such an engine needs that belongs to
//! no backend in particular, written once.
//!
//! An engine implements [`LeaseEngine`]: four calls to its backend
//! ([`extend`](LeaseEngine::extend), [`release`](LeaseEngine::release),
//! [`end`](LeaseEngine::end) and a real-time [`pause`](LeaseEngine::pause))
//! and where its [`LeaseKeeper`] lives. In return it gets:
//!
//! - [`hand_out`]: the [`Item`](crate::queue::Item) guard for a leased key, registered for
//!   renewal, ended through the engine when the worker is done ([`guard`]
//!   for a key registered earlier, e.g. fetched ahead);
//! - [`renew`]: the task that keeps every held lease alive, renews first
//!   after a failure, and reports lost leases;
//! - [`end_with_retries`]: the end of a lease (the re-add of
//!   [`Then::readd`] first, then the fenced done), retried with backoff
//!   while the lease is still ours, given back when the backend's state is
//!   corrupt;
//! - [`report_unfinished_work`]: client-go's unfinished-work gauges over
//!   the held leases;
//! - [`retry_backoff`]: the one backoff of every retry loop.
//!
//! The key codecs ([`codec`](super::codec)), the blocking facade
//! ([`Blocking`](super::Blocking)) and the limiter description
//! ([`LimiterSpec`](crate::limiter::LimiterSpec)) are the rest of the kit.
//!
//! # Usage
//!
//! A toy engine whose "backend" is a map in memory, to show the shape
//! (a real one talks to a server in these four methods):
//!
//! ```
//! use requeue::engine::remote::{self, EndReply, Fenced, LeaseEngine, LeaseKeeper};
//! use requeue::engine::{BoxFuture, QueueError, Then};
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! struct Toy {
//!     keeper: LeaseKeeper<u64>,
//!     /// key → token of the current holder
//!     holders: Mutex<HashMap<Vec<u8>, u64>>,
//! }
//!
//! impl LeaseEngine<String> for Toy {
//!     type Token = u64;
//!     fn keeper(&self) -> &LeaseKeeper<u64> {
//!         &self.keeper
//!     }
//!     fn extend(self: Arc<Self>, held: Vec<(Vec<u8>, u64)>) -> BoxFuture<'static, Result<Vec<Vec<u8>>, QueueError>> {
//!         let holders = self.holders.lock().unwrap();
//!         let lost = held.into_iter().filter(|(k, t)| holders.get(k) != Some(t)).map(|(k, _)| k).collect();
//!         Box::pin(async move { Ok(lost) })
//!     }
//!     fn release(self: Arc<Self>, raw: Vec<u8>, token: u64) -> BoxFuture<'static, Result<bool, QueueError>> {
//!         let released = self.holders.lock().unwrap().remove_entry(&raw).is_some_and(|(_, t)| t == token);
//!         Box::pin(async move { Ok(released) })
//!     }
//!     fn end(self: Arc<Self>, raw: Vec<u8>, token: u64, _then: Then, _delay: Option<Duration>) -> BoxFuture<'static, Result<EndReply, QueueError>> {
//!         let mut holders = self.holders.lock().unwrap();
//!         let fenced = match holders.get(&raw) {
//!             Some(t) if *t == token => { holders.remove(&raw); Fenced::Ended }
//!             Some(_) => Fenced::LeaseLost,
//!             None => Fenced::NotHeld,
//!         };
//!         Box::pin(async move { Ok(EndReply { fenced, added: None }) })
//!     }
//!     fn spawn(&self, task: BoxFuture<'static, ()>) {
//!         tokio::spawn(task);
//!     }
//!     fn pause(&self, delay: Duration) -> BoxFuture<'static, ()> {
//!         Box::pin(tokio::time::sleep(delay))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let toy = Arc::new(Toy {
//!     keeper: LeaseKeeper::new("toy", Duration::from_secs(30), requeue::clock::real()),
//!     holders: Mutex::new(HashMap::from([(b"web".to_vec(), 7)])),
//! });
//! // The backend handed out "web" under token 7: wrap it in the one guard.
//! let sent = toy.keeper().local_ms();
//! let item = remote::hand_out(&toy, "web".to_string(), b"web".to_vec(), 7, sent);
//! assert_eq!(item.token().as_deref(), Some("7"));
//! assert_eq!(toy.keeper().table().len(), 1);
//! let ended = item.end_async(Then::Forget).await.unwrap();
//! assert!(ended.released);
//! assert!(toy.keeper().table().is_empty());
//! # });
//! ```
//!
//! # Implementation
//!
//! The keeper's table is the process's only record of what it holds; the
//! backend is the truth. Every lease is fenced by its token, so a call
//! for a lease that was reaped and handed to someone else changes nothing
//! there, and comes back as [`Fenced::LeaseLost`]. Local deadlines are
//! conservative (see [`LeaseTable::until`]), so a guard stops calling
//! itself valid before the backend can reap it.
//!
//! # Cancellation safety
//!
//! [`renew`] and [`report_unfinished_work`] end when their token is
//! cancelled, between calls. Dropping an [`end_with_retries`] future
//! mid-call leaves the lease to run out (nothing is lost: the item comes
//! back after one lease, with backoff).

mod ending;
mod keeper;
mod renewer;
mod table;

pub use ending::{END_ATTEMPTS, end_then_next, end_with_retries, guard, hand_out};
pub use keeper::LeaseKeeper;
pub use renewer::{renew, report_unfinished_work};
pub use table::{Held, LeaseState, LeaseTable};

use super::{BoxFuture, QueueError, Then};
use crate::handout::Added;
use crate::limiter::RateLimiter;
use crate::metrics::QueueMetrics;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a remote engine implements to use the toolkit (see the
/// [module docs](self)). `T` is the queue's item type.
///
/// Every call is fenced by the lease's token: a token that no longer
/// holds the key changes nothing in the backend.
pub trait LeaseEngine<T>: Send + Sync + Sized + 'static {
    /// The engine's fencing token (shown to users by
    /// [`Item::token`](crate::queue::Item::token)).
    type Token: Copy + PartialEq + fmt::Display + Send + Sync + 'static;

    /// Where this process's leases are kept.
    fn keeper(&self) -> &LeaseKeeper<Self::Token>;

    /// The queue's metrics, if any (lease lost, work duration, unfinished work).
    fn metrics(&self) -> Option<&QueueMetrics> {
        None
    }

    /// A rate limiter of this process's own, if the queue has one: a
    /// rate-limited re-add asks it, and an ending that forgets clears it.
    /// `None`: the backend's shared limiter decides.
    fn local_limiter(&self) -> Option<&dyn RateLimiter<T>> {
        None
    }

    /// Extends every listed lease (key bytes, token) to run a whole lease
    /// from now, never shortening one; returns the keys whose lease is
    /// lost. Must be safe to repeat. An empty list only proves the
    /// backend answers.
    fn extend(
        self: Arc<Self>,
        held: Vec<(Vec<u8>, Self::Token)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, QueueError>>;

    /// Gives a held key back to the head of the queue without processing
    /// it and without counting a failure; `Ok(true)` if it was ours.
    fn release(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Self::Token,
    ) -> BoxFuture<'static, Result<bool, QueueError>>;

    /// One attempt at ending a lease as `then` says: its re-add first
    /// ([`Then::readd`]; a rate-limited one after `local_delay` when a
    /// local limiter answered), then the fenced done, which also clears
    /// the key's failure count when [`Then::forgets`]. Must leave the
    /// backend as it was when it fails.
    fn end(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Self::Token,
        then: Then,
        local_delay: Option<Duration>,
    ) -> BoxFuture<'static, Result<EndReply, QueueError>>;

    /// One attempt at ending a lease whose ending re-adds nothing
    /// ([`Then::Done`] or [`Then::Forget`]) that also, in the same trip,
    /// leases the next ready key to this process for the same holder
    /// (what `end_then_next` asks for). The next key comes back decoded,
    /// not yet registered in the keeper: the toolkit does that. The same
    /// rules as [`end`](LeaseEngine::end) hold for the ending; a failed
    /// attempt must leave the backend as it was. The default takes no
    /// key: [`end`](LeaseEngine::end) alone.
    fn end_then_get(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Self::Token,
        then: Then,
    ) -> BoxFuture<'static, EndThenGet<T, Self::Token>>
    where
        T: Send + 'static,
    {
        Box::pin(async move { Ok((self.end(raw, token, then, None).await?, None)) })
    }

    /// Runs `task` on the engine's runtime, without waiting for it (a
    /// guard's drop must not block).
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// Waits `delay` of real time, from any executor: network backoff
    /// paces a network, not the queue, even when the queue's clock is fake.
    fn pause(&self, delay: Duration) -> BoxFuture<'static, ()>;
}

/// A key leased by [`LeaseEngine::end_then_get`] for the holder that
/// ended the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextLease<T, Token> {
    /// The key, decoded.
    pub item: T,
    /// Its bytes in the backend.
    pub raw: Vec<u8>,
    /// Its fencing token.
    pub token: Token,
    /// The keeper's local ms just before the call was sent (see
    /// [`LeaseKeeper::hand_out`]).
    pub sent_ms: u64,
    /// The key's failure count, if the backend reported it with the lease
    /// ([`Item::requeues`](crate::queue::Item::requeues)).
    pub requeues: Option<u32>,
}

/// The reply of one [`LeaseEngine::end_then_get`] attempt: the ending's,
/// and the next key if one was leased.
pub type EndThenGet<T, Token> = Result<(EndReply, Option<NextLease<T, Token>>), QueueError>;

/// What the fenced done of [`LeaseEngine::end`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// The lease was ours and is ended (a parked re-add is queued now).
    Ended,
    /// Nobody holds the key: on a retry, most likely the earlier attempt
    /// ended it and only its reply was lost.
    NotHeld,
    /// Someone else holds it now: nothing changed.
    LeaseLost,
}

/// The reply of one [`LeaseEngine::end`] attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndReply {
    /// What the fenced done found.
    pub fenced: Fenced,
    /// What the re-add did, if `then` re-adds.
    pub added: Option<Added>,
}

/// The backoff of every retry loop of a remote engine (reconnects,
/// renewals, gets, ends): from `first`, doubling up to 2 s, without end.
/// Real time: it paces a network, not the queue.
pub fn retry_backoff(first: Duration) -> crate::wait::Backoff {
    crate::wait::Backoff::new(first)
        .factor(2.0)
        .steps(u32::MAX)
        .cap(Duration::from_secs(2))
}
