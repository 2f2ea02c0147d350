//! Taking items out: blocking, with a deadline or stop signal, async, and as a stream.
//!
//! Every flavour is the same poll step ([`WorkQueue::poll_item`]): take a
//! ready item under the lock, or join the line of waiters. A blocking call
//! drives the async future on its own thread, so threads and tasks wait in
//! one line and an item wakes exactly one of them.

use super::{Item, Key, WorkQueue};
use crate::clock::{Clock, Sleep, deadline_after};
use crate::exec::block_on;
use crate::handout::{GetError, TryGetError};
use crate::wait::{Stop, Stopped};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How many times a blocking `get` looks for an item before it sleeps
/// (none under loom, whose threads must block to be interleaved).
#[cfg(not(requeue_loom))]
const SPIN_ROUNDS: u32 = 16;
#[cfg(requeue_loom)]
const SPIN_ROUNDS: u32 = 0;

impl<T: Key> WorkQueue<T> {
    /// Waits for an item and hands it out; `None` once the queue is shut
    /// down and empty (client-go's `Get` with `shutdown == true`).
    ///
    /// After [`shut_down`](WorkQueue::shut_down) queued items are still
    /// handed out until none is left.
    pub fn get(&self) -> Option<Item<T>> {
        // Look again a few times before sleeping: an item is often only
        // a moment away when producers are busy, and sleeping costs a
        // futex wait here and a wake-up call in the producer. Yielding
        // (not spinning) once the first looks fail lets a producer that
        // shares this core run.
        // Not while delayed items are pending: then an item comes when the
        // clock says so, and the thread parks until then (see `Waiting`).
        let rounds = if self.shared.delays_pending() {
            0
        } else {
            SPIN_ROUNDS
        };
        for round in 0..rounds {
            match self.try_get() {
                Ok(item) => return Some(item),
                Err(TryGetError::ShutDown) => return None,
                Err(TryGetError::Empty) if round < 3 => std::hint::spin_loop(),
                Err(TryGetError::Empty) => std::thread::yield_now(),
            }
        }
        match self.try_get() {
            Ok(item) => Some(item),
            Err(TryGetError::ShutDown) => None,
            Err(TryGetError::Empty) => block_on(Get {
                wait: Waiting::new(self, None, None).parking(),
            }),
        }
    }

    /// Hands out a ready item without waiting.
    pub fn try_get(&self) -> Result<Item<T>, TryGetError> {
        match self.shared.take(self.shared.stamp()) {
            Some(out) => Ok(Item::new(self.clone(), out)),
            None if self.shared.is_shutting_down() => Err(TryGetError::ShutDown),
            None => Err(TryGetError::Empty),
        }
    }

    /// Like [`get`](WorkQueue::get), but gives up at `deadline` on the queue's clock.
    pub fn get_deadline(&self, deadline: Instant) -> Result<Item<T>, GetError> {
        block_on(GetWithin {
            wait: Waiting::new(self, Some(deadline), None).parking(),
        })
    }

    /// Like [`get`](WorkQueue::get), but gives up after `timeout` on the queue's clock.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Item<T>, GetError> {
        self.get_deadline(deadline_after(self.shared.clock.now(), timeout))
    }

    /// Like [`get`](WorkQueue::get), but gives up when `stop` fires.
    pub fn get_until(&self, stop: &Stop) -> Result<Item<T>, GetError> {
        block_on(GetWithin {
            wait: Waiting::new(self, None, Some(stop)).parking(),
        })
    }

    /// Waits for an item without blocking the thread.
    ///
    /// Cancellation safe: dropping the future before it completes takes no
    /// item, and a wake-up meant for it passes to the next waiter.
    pub fn get_async(&self) -> Get<'_, T> {
        Get {
            wait: Waiting::new(self, None, None),
        }
    }

    /// [`get_deadline`](WorkQueue::get_deadline) for async code.
    pub fn get_deadline_async(&self, deadline: Instant) -> GetWithin<'_, T> {
        GetWithin {
            wait: Waiting::new(self, Some(deadline), None),
        }
    }

    /// [`get_timeout`](WorkQueue::get_timeout) for async code.
    pub fn get_timeout_async(&self, timeout: Duration) -> GetWithin<'_, T> {
        self.get_deadline_async(deadline_after(self.shared.clock.now(), timeout))
    }

    /// [`get_until`](WorkQueue::get_until) for async code.
    pub fn get_until_async<'a>(&'a self, stop: &'a Stop) -> GetWithin<'a, T> {
        GetWithin {
            wait: Waiting::new(self, None, Some(stop)),
        }
    }

    /// The queue as a [`Stream`](futures_core::Stream) of items that ends
    /// once the queue is shut down and empty.
    pub fn stream(&self) -> ItemStream<T> {
        ItemStream {
            queue: self.clone(),
            waiter: None,
        }
    }

    /// One poll of any get: an item, `None` when shut down and empty, or
    /// pending with `waiter` in the line.
    fn poll_item(&self, waiter: &mut Option<u64>, cx: &mut Context<'_>) -> Poll<Option<Item<T>>> {
        if let Some(done) = self.poll_once(waiter) {
            return Poll::Ready(done);
        }
        // Join the line, then look once more (the sleeper handshake of
        // `waiters.rs`): an item made ready meanwhile is found here, or
        // its producer saw this waiter and wakes it.
        *waiter = Some(self.shared.line.register(*waiter, cx.waker()));
        match self.poll_once(waiter) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }

    /// Takes an item, or says the queue is shut down and empty; leaves the
    /// line if it does either.
    fn poll_once(&self, waiter: &mut Option<u64>) -> Option<Option<Item<T>>> {
        let done = match self.shared.take(self.shared.stamp()) {
            Some(out) => Some(Item::new(self.clone(), out)),
            None if self.shared.is_shutting_down() => None,
            None => return None,
        };
        if let Some(id) = waiter.take() {
            self.shared.line.remove(id);
        }
        Some(done)
    }

    /// Leaves the line of waiters, passing on a wake-up this waiter will not use.
    fn withdraw(&self, waiter: &mut Option<u64>) {
        if let Some(id) = waiter.take() {
            self.shared.withdraw_waiter(id);
        }
    }
}

/// The shared machinery of [`Get`] and [`GetWithin`].
struct Waiting<'a, T: Key> {
    queue: &'a WorkQueue<T>,
    waiter: Option<u64>,
    sleep: Option<Sleep<'a>>,
    stopped: Option<Stopped<'a>>,
    /// A blocked thread's own wake-up for the earliest delayed item, so
    /// it parks with a timeout and promotes the item itself, rather than
    /// waiting for the timer thread to promote it and wake the thread
    /// (two wake-ups instead of none). Async getters rely on the
    /// queue's promotion timer.
    due: Option<Sleep<'a>>,
    park_until_due: bool,
}

impl<'a, T: Key> Waiting<'a, T> {
    fn new(queue: &'a WorkQueue<T>, deadline: Option<Instant>, stop: Option<&'a Stop>) -> Self {
        Waiting {
            queue,
            waiter: None,
            sleep: deadline.map(|d| Sleep::new(&*queue.shared.clock, d)),
            stopped: stop.map(Stop::stopped),
            due: None,
            park_until_due: false,
        }
    }

    /// For a blocking get (driven by `block_on` on its own thread).
    fn parking(mut self) -> Self {
        self.park_until_due = true;
        self
    }

    /// Arranges for this thread to wake when the earliest delayed item is due.
    fn wake_when_due(&mut self, cx: &mut Context<'_>) {
        let shared = &self.queue.shared;
        // A head already due is being promoted by another thread (this
        // get's own look either promoted it or left a request with that
        // thread), whose push wakes this waiter: nothing to arrange.
        let Some(at) = shared.next_due_at().filter(|&at| at > shared.clock.now()) else {
            self.due = None;
            return;
        };
        if self.due.as_ref().is_none_or(|due| due.deadline() != at) {
            self.due = Some(Sleep::new(&*shared.clock, at));
        }
        if let Some(due) = &mut self.due
            && due.poll_elapsed(cx).is_ready()
        {
            // Came due meanwhile: look again at once (the get promotes it).
            cx.waker().wake_by_ref();
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Item<T>, GetError>> {
        if let Poll::Ready(got) = self.queue.poll_item(&mut self.waiter, cx) {
            return Poll::Ready(got.ok_or(GetError::ShutDown));
        }
        // Only once in line: a wake-up that races with the deadline or the
        // stop is passed on by `withdraw`, never lost.
        if let Some(sleep) = &mut self.sleep
            && sleep.poll_elapsed(cx).is_ready()
        {
            self.queue.withdraw(&mut self.waiter);
            return Poll::Ready(Err(GetError::TimedOut));
        }
        if let Some(stopped) = &mut self.stopped
            && Pin::new(stopped).poll(cx).is_ready()
        {
            self.queue.withdraw(&mut self.waiter);
            return Poll::Ready(Err(GetError::Stopped));
        }
        // An async get driven by `block_on` (a blocking controller worker
        // runs its async loop so) has the thread to itself, as a blocking
        // get does: it parks the same way.
        if self.park_until_due || crate::exec::blocks_on(cx.waker()) {
            self.wake_when_due(cx);
        }
        Poll::Pending
    }
}

impl<T: Key> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.queue.withdraw(&mut self.waiter);
    }
}

/// Future of [`WorkQueue::get_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T: Key> {
    wait: Waiting<'a, T>,
}

impl<T: Key> Future for Get<'_, T> {
    type Output = Option<Item<T>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.wait.poll(cx).map(Result::ok)
    }
}

/// Future of the deadline, timeout and stop variants of `get`.
#[must_use = "futures do nothing unless awaited"]
pub struct GetWithin<'a, T: Key> {
    wait: Waiting<'a, T>,
}

impl<T: Key> Future for GetWithin<'_, T> {
    type Output = Result<Item<T>, GetError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.wait.poll(cx)
    }
}

/// The queue as a stream of items; see [`WorkQueue::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct ItemStream<T: Key> {
    queue: WorkQueue<T>,
    waiter: Option<u64>,
}

impl<T: Key> futures_core::Stream for ItemStream<T> {
    type Item = Item<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item<T>>> {
        let this = &mut *self;
        this.queue.poll_item(&mut this.waiter, cx)
    }
}

impl<T: Key> Drop for ItemStream<T> {
    fn drop(&mut self) {
        self.queue.withdraw(&mut self.waiter);
    }
}

macro_rules! debug_as_waiter {
    ($($ty:ident),*) => {$(
        impl<T: Key> fmt::Debug for $ty<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("queue", &self.wait.queue.name()).finish()
            }
        }
    )*};
}
debug_as_waiter!(Get, GetWithin);

impl<T: Key> fmt::Debug for ItemStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemStream")
            .field("queue", &self.queue.name())
            .finish()
    }
}
