//! What the controller does with a failed reconcile: the error policy.

use super::Action;
use std::borrow::Cow;
use std::fmt;

/// The reason of the Warning event a failure records unless the policy
/// gives another.
pub const RECONCILE_ERROR: &str = "ReconcileError";

/// How a reconcile failed.
#[derive(Debug)]
pub enum Failure<'a, E> {
    /// The handler returned this error.
    Error(&'a E),
    /// The handler panicked with this message.
    Panicked(&'a str),
}

// Derived `Clone`/`Copy` would ask `E: Clone`; the variants only borrow.
impl<E> Clone for Failure<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Failure<'_, E> {}

impl<E: fmt::Display> fmt::Display for Failure<'_, E> {
    /// The message logged and put in the Warning event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(error) => error.fmt(f),
            Failure::Panicked(message) => write!(f, "the handler panicked: {message}"),
        }
    }
}

/// Decides what happens to a key whose reconcile failed (kube-runtime's
/// `error_policy`); set one with
/// [`Controller::error_policy`](super::Controller::error_policy).
///
/// The answer is applied exactly as if the handler had returned it (see
/// the table in the [module docs](super)): `Action::Done` gives the key up
/// (its rate-limiter history is forgotten, and it comes back only when
/// something adds it again), `Action::RequeueRateLimited` retries it with
/// the queue's rate limiter, and so on. The reconcile is counted and
/// reported as failed whatever the answer.
///
/// A closure `Fn(&T, &E, u32) -> Action` is a policy: it decides for
/// errors; a panic is retried with the rate limiter, as by default.
/// Implement the trait to decide for panics too, or to give the Warning
/// event another reason.
///
/// `attempt` is the try that failed: 1 on the first, then one more for
/// each rate-limited retry since the key was last forgotten (the queue's
/// `num_requeues` plus one, read before the handler ran). A policy that
/// counts attempts should therefore answer `RequeueRateLimited` until it
/// gives up. It is 0 when the engine could not say (a remote engine that
/// cannot be reached).
///
/// The policy runs on the worker, between the handler and the settling of
/// the key: keep it quick. If it panics, the panic is logged and the key
/// is retried with the rate limiter.
pub trait ErrorPolicy<T, E>: Send + Sync + 'static {
    /// What to do with `key` after its `attempt`-th try failed.
    fn on_failure(&self, key: &T, failure: Failure<'_, E>, attempt: u32) -> Action;

    /// The reason of the Warning event recorded for the failure (when
    /// [`record_errors`](super::Controller::record_errors) is set):
    /// [`RECONCILE_ERROR`] unless overridden.
    fn reason(&self, key: &T, failure: Failure<'_, E>) -> Cow<'static, str> {
        let _ = (key, failure);
        Cow::Borrowed(RECONCILE_ERROR)
    }
}

/// The default policy: every failure is retried with the queue's rate
/// limiter, and its event's reason is [`RECONCILE_ERROR`] (client-go's
/// and controller-runtime's behaviour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOnError;

impl<T, E> ErrorPolicy<T, E> for RetryOnError {
    fn on_failure(&self, _: &T, _: Failure<'_, E>, _: u32) -> Action {
        Action::RequeueRateLimited
    }
}

impl<T, E, F> ErrorPolicy<T, E> for F
where
    F: Fn(&T, &E, u32) -> Action + Send + Sync + 'static,
{
    fn on_failure(&self, key: &T, failure: Failure<'_, E>, attempt: u32) -> Action {
        match failure {
            Failure::Error(error) => self(key, error, attempt),
            Failure::Panicked(_) => Action::RequeueRateLimited,
        }
    }
}
