//! The user's handler, blocking or async, as the one future the worker
//! loop awaits, with panics caught.

use super::Action;
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(feature = "tokio")]
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// A handler's outcome: `Err` with the message if it panicked.
pub(super) type Outcome<E> = Result<Result<Action, E>, String>;

/// A handler the worker loop can await.
pub(super) trait Reconcile<T, E> {
    /// Reconciles `key`. The handler only starts when the future is first
    /// polled, so it runs inside the reconcile span.
    async fn reconcile(&self, key: &T) -> Outcome<E>;
}

/// A blocking handler (`Controller::run`): called on the worker's thread.
pub(super) struct Blocking<F>(pub(super) F);

impl<T, E, F: Fn(&T) -> Result<Action, E>> Reconcile<T, E> for Blocking<F> {
    async fn reconcile(&self, key: &T) -> Outcome<E> {
        catch_unwind(AssertUnwindSafe(|| (self.0)(key))).map_err(message)
    }
}

/// An async handler (`Controller::run_async`): takes the key by value, as
/// its future may outlive the borrow.
#[cfg(feature = "tokio")]
pub(super) struct Async<F>(pub(super) F);

#[cfg(feature = "tokio")]
impl<T, E, F, Fut> Reconcile<T, E> for Async<F>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
{
    async fn reconcile(&self, key: &T) -> Outcome<E> {
        // A handler may panic making its future, not only polling it.
        let fut = catch_unwind(AssertUnwindSafe(|| (self.0)(key.clone()))).map_err(message)?;
        CatchPanic(Box::pin(fut)).await
    }
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    crate::crash::panic_message(&*payload).to_string()
}

/// Polls a future, turning a panic into `Err` with its message.
#[cfg(feature = "tokio")]
struct CatchPanic<F>(Pin<Box<F>>);

#[cfg(feature = "tokio")]
impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(message(payload))),
        }
    }
}
