//! What a reconcile (or an error policy) answers: kube's `Action`, with
//! the same constructors, plus [`Action::backoff`] for requeue's per-key
//! rate limiter.
//!
//! kube-runtime's `Action` keeps its delay private, so it cannot be read
//! back; this one mirrors its API (`requeue`, `await_change`) so that
//! porting a reconciler is a change of `use` line.
//!
//! ```
//! use std::time::Duration;
//! use requeue_kube::Action;
//!
//! let answer = Action::requeue(Duration::from_secs(300));
//! assert_eq!(answer.requeue_after(), Some(Duration::from_secs(300)));
//! assert_eq!(answer.to_requeue(), requeue::controller::Action::RequeueAfter(Duration::from_secs(300)));
//! assert_eq!(Action::await_change().to_requeue(), requeue::controller::Action::Done);
//! assert_eq!(Action::backoff().to_requeue(), requeue::controller::Action::RequeueRateLimited);
//! ```

use std::time::Duration;

/// The answer of a reconcile or an error policy; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    AwaitChange,
    RequeueAfter(Duration),
    Backoff,
}

impl Action {
    /// Reconcile the object again after `duration` unless a change comes
    /// first (kube's `Action::requeue`). The key's backoff is reset.
    #[must_use]
    pub const fn requeue(duration: Duration) -> Self {
        Action {
            then: Then::RequeueAfter(duration),
        }
    }

    /// Do nothing until the object (or something that triggers it)
    /// changes (kube's `Action::await_change`). The key's backoff is reset.
    #[must_use]
    pub const fn await_change() -> Self {
        Action {
            then: Then::AwaitChange,
        }
    }

    /// Retry after the key's own rate-limited delay, which grows with each
    /// retry and is reset when a reconcile succeeds (client-go's
    /// `AddRateLimited`; kube-runtime has no equivalent). The natural
    /// answer of an error policy.
    #[must_use]
    pub const fn backoff() -> Self {
        Action {
            then: Then::Backoff,
        }
    }

    /// The fixed delay asked for, if any.
    pub const fn requeue_after(&self) -> Option<Duration> {
        match self.then {
            Then::RequeueAfter(duration) => Some(duration),
            Then::AwaitChange | Then::Backoff => None,
        }
    }

    /// The requeue controller's answer this stands for.
    pub const fn to_requeue(self) -> requeue::controller::Action {
        use requeue::controller::Action as R;
        match self.then {
            Then::AwaitChange => R::Done,
            Then::RequeueAfter(duration) => R::RequeueAfter(duration),
            Then::Backoff => R::RequeueRateLimited,
        }
    }
}
