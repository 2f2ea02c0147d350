//! The fencing token of the key a handler is reconciling, readable from
//! inside the handler without changing its signature (kube-shaped
//! handlers take only the object and a context).
//!
//! # Usage
//!
//! ```
//! use requeue::controller::{Action, Controller, fencing_token};
//! use requeue::queue::WorkQueue;
//! use requeue::wait::Stop;
//!
//! let queue = WorkQueue::new();
//! queue.add("web".to_string());
//! let controller = Controller::new(queue, 1);
//! let stop = Stop::new();
//! let done = stop.clone();
//! controller.run(&stop, move |_key: &String| {
//!     // In memory nobody else can hold the key, so there is no token;
//!     // a remote engine (requeue-redis) gives its lease's token here,
//!     // for downstream writes to carry and to reject stale holders.
//!     assert_eq!(fencing_token(), None);
//!     done.stop();
//!     Ok::<_, std::convert::Infallible>(Action::Done)
//! });
//! ```
//!
//! # Implementation
//!
//! The worker wraps the handler's future: each poll sets a thread-local
//! to the hand-out's token and restores the previous value afterwards, so
//! it is seen by the handler's own code on any executor (a blocking
//! worker's `block_on`, a tokio task that moves between threads), and by
//! nothing else. Tasks the handler spawns do not inherit it: read it
//! first and pass it along.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The fencing token of the hand-out the calling handler is reconciling:
/// `Some` for a remote engine's lease (e.g. requeue-redis's
/// `"<epoch>:<nonce>"`), `None` in memory or outside a controller's
/// handler.
pub fn fencing_token() -> Option<String> {
    CURRENT.with(|current| current.borrow().clone())
}

/// `fut`, with [`fencing_token`] answering `token` while it is polled.
pub(super) fn with_token<F: Future>(token: Option<String>, fut: F) -> WithToken<F> {
    WithToken {
        token,
        fut: Box::pin(fut),
    }
}

/// See [`with_token`].
pub(super) struct WithToken<F> {
    token: Option<String>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for WithToken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let previous = CURRENT.with(|current| current.replace(this.token.clone()));
        // Restored even if the handler panics (the worker catches it).
        struct Restore(Option<String>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|current| *current.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        this.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_seen_only_while_the_future_is_polled() {
        assert_eq!(fencing_token(), None);
        let seen =
            crate::exec::block_on(with_token(Some("7:abc".into()), async { fencing_token() }));
        assert_eq!(seen.as_deref(), Some("7:abc"));
        assert_eq!(fencing_token(), None);
    }
}
