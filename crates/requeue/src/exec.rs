//! Runs a future to completion on the calling thread.
#![cfg_attr(requeue_loom, allow(dead_code, unused_imports))]
//!
//! Every blocking API in the crate is the async implementation driven by
//! [`block_on`], so the rules live in one place. While a future is polled
//! here, the real clock does not start its timer thread: it leaves a "park
//! until" hint and [`block_on`] parks the thread with that timeout instead.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// What the innermost `block_on` on this thread is polling with.
struct Frame {
    waker: Waker,
    park_until: Option<Instant>,
}

thread_local! {
    static FRAME: RefCell<Option<Frame>> = const { RefCell::new(None) };
    static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
}

/// Offers a deadline to the `block_on` polling on this thread with `waker`.
///
/// Returns `true` when the caller may rely on the thread waking up by
/// `deadline` on its own (the hint was taken), `false` when it must arrange
/// a wake-up itself (no `block_on` here, or another waker).
#[cfg(requeue_loom)]
pub(crate) fn offer_park_deadline(_deadline: Instant, _waker: &Waker) -> bool {
    false
}

/// Whether the innermost `block_on` on this thread polls with `waker`: the
/// future being polled has the thread to itself and may park it.
#[cfg(requeue_loom)]
pub(crate) fn blocks_on(_waker: &Waker) -> bool {
    false
}

/// Under loom, loom drives the future so it can explore thread interleavings.
#[cfg(requeue_loom)]
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    loom::future::block_on(fut)
}

#[cfg(not(requeue_loom))]
pub(crate) fn offer_park_deadline(deadline: Instant, waker: &Waker) -> bool {
    FRAME.with(|frame| {
        let mut frame = frame.borrow_mut();
        match frame.as_mut() {
            Some(f) if f.waker.will_wake(waker) => {
                f.park_until = Some(f.park_until.map_or(deadline, |d| d.min(deadline)));
                true
            }
            _ => false,
        }
    })
}

#[cfg(not(requeue_loom))]
pub(crate) fn blocks_on(waker: &Waker) -> bool {
    FRAME.with(|frame| {
        frame
            .borrow()
            .as_ref()
            .is_some_and(|f| f.waker.will_wake(waker))
    })
}

/// Polls `fut` on this thread until it completes, parking between polls.
#[cfg(not(requeue_loom))]
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    // Restores the enclosing block_on's frame even if `fut` panics.
    struct Restore(Option<Frame>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            FRAME.with(|f| *f.borrow_mut() = outer);
        }
    }
    let _restore = Restore(FRAME.with(|f| f.borrow_mut().take()));
    loop {
        FRAME.with(|f| {
            *f.borrow_mut() = Some(Frame {
                waker: waker.clone(),
                park_until: None,
            })
        });
        let polled = fut.as_mut().poll(&mut cx);
        let park_until = FRAME.with(|f| f.borrow_mut().take().and_then(|f| f.park_until));
        match polled {
            Poll::Ready(value) => return value,
            Poll::Pending => match park_until {
                Some(deadline) => {
                    let now = Instant::now();
                    if deadline > now {
                        thread::park_timeout(deadline - now);
                    }
                }
                None => thread::park(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn block_on_returns_ready_value_and_nests() {
        assert_eq!(block_on(async { 1 + block_on(async { 2 }) }), 3);
    }

    #[test]
    fn a_wake_from_another_thread_completes_the_future() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let waker_thread = thread::spawn(move || {
            let waker = rx.recv().expect("waker");
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            waker.wake();
        });
        let mut sent = false;
        block_on(std::future::poll_fn(|cx| {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if !sent {
                sent = true;
                tx.send(cx.waker().clone()).expect("send");
            }
            Poll::Pending
        }));
        waker_thread.join().expect("join");
    }

    #[test]
    fn only_the_polling_waker_blocks_on_this_thread() {
        assert!(!blocks_on(Waker::noop()));
        block_on(std::future::poll_fn(|cx| {
            assert!(blocks_on(cx.waker()));
            assert!(!blocks_on(Waker::noop()));
            Poll::Ready(())
        }));
    }

    #[test]
    fn park_hint_is_taken_only_by_the_polling_waker() {
        let deadline = Instant::now() + Duration::from_millis(1);
        assert!(!offer_park_deadline(deadline, Waker::noop()));
        block_on(std::future::poll_fn(|cx| {
            assert!(offer_park_deadline(deadline, cx.waker()));
            assert!(!offer_park_deadline(deadline, Waker::noop()));
            Poll::Ready(())
        }));
    }
}
