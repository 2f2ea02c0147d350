//! Helpers shared by the integration tests: step futures by hand and build
//! tick streams, so timing rules are checked on a `FakeClock` without threads.
#![allow(dead_code)]

use futures_core::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Upper bound for a test waiting on another thread; never reached when the code works.
pub const BOUND: Duration = Duration::from_secs(10);

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls a future by hand, with a waker that records whether it was woken.
pub struct Driver<'a, T> {
    fut: Pin<Box<dyn Future<Output = T> + 'a>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<'a, T> Driver<'a, T> {
    pub fn new(fut: impl Future<Output = T> + 'a) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        Driver {
            fut: Box::pin(fut),
            flag,
            waker,
        }
    }

    /// Polls until the future completes or waits without having woken itself.
    pub fn step(&mut self) -> Poll<T> {
        for _ in 0..100_000 {
            self.flag.0.store(false, Ordering::SeqCst);
            let mut cx = Context::from_waker(&self.waker);
            match self.fut.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return Poll::Ready(v),
                Poll::Pending if !self.flag.0.load(Ordering::SeqCst) => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Whether anything woke the future since the last poll.
    pub fn woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }

    /// Steps and expects completion.
    pub fn finish(&mut self) -> T {
        match self.step() {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("expected the future to complete"),
        }
    }
}

/// A stream over a fixed list of ticks; sets `dropped` when dropped.
pub struct Ticks {
    left: usize,
    pub dropped: Option<Arc<AtomicBool>>,
}

impl Ticks {
    pub fn new(count: usize) -> Self {
        Ticks {
            left: count,
            dropped: None,
        }
    }
}

impl Stream for Ticks {
    type Item = ();
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<()>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(()))
    }
}

impl Drop for Ticks {
    fn drop(&mut self) {
        if let Some(flag) = &self.dropped {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A stream that never yields nor ends (a silent ticker).
pub struct Silent;

impl Stream for Silent {
    type Item = ();
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<()>> {
        Poll::Pending
    }
}

/// Blocks until `cond` holds, re-checking with a real-time bound (a broken
/// test fails, never hangs). For state another thread changes; never a sleep.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + BOUND;
    while !cond() {
        assert!(
            std::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}
