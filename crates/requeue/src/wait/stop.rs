//! [`Stop`]: the stop signal every loop in requeue watches.

use crate::clock::{self, SharedClock, Sleep};
use crate::exec;
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, Weak, lock};
use crate::waker_set::WakerSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A cloneable, fire-once stop signal that threads and tasks can wait on.
///
/// The Rust answer to client-go's `stopCh`, `wait.NeverStop` and a cancelled
/// `context.Context`: every clone observes the same signal, [`stop`](Stop::stop)
/// fires it once for all, and it can be waited on by blocking
/// ([`wait`](Stop::wait)) or async code ([`stopped`](Stop::stopped)).
/// [`child`](Stop::child) derives a signal that also fires with its parent.
///
/// ```
/// use requeue::wait::Stop;
///
/// let stop = Stop::new();
/// let worker = {
///     let stop = stop.clone();
///     std::thread::spawn(move || stop.wait())
/// };
/// assert!(stop.stop(), "the first stop fires the signal");
/// assert!(!stop.stop(), "later calls change nothing");
/// worker.join().unwrap();
/// assert!(Stop::never().wait_timeout(std::time::Duration::ZERO) == false);
/// ```
#[derive(Clone)]
pub struct Stop {
    /// `None` is the signal that never fires ([`Stop::never`]): no allocation.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    fired: AtomicBool,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    wakers: WakerSet,
    /// Dead children are pruned at every [`Stop::child`] call, so it holds
    /// the children alive at the last call plus the one it added; emptied
    /// when the signal fires.
    children: Vec<Weak<Inner>>,
}

impl Inner {
    fn fire(&self) -> bool {
        let mut waiting = lock(&self.waiting);
        if self.fired.swap(true, Ordering::SeqCst) {
            return false;
        }
        let wakers = waiting.wakers.drain();
        let children = std::mem::take(&mut waiting.children);
        drop(waiting);
        wakers.into_iter().for_each(|w| w.wake());
        for child in children.iter().filter_map(Weak::upgrade) {
            child.fire();
        }
        true
    }
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Stop(never)"),
            Some(_) => f
                .debug_struct("Stop")
                .field("stopped", &self.is_stopped())
                .finish(),
        }
    }
}

impl Stop {
    /// A new signal that has not fired.
    pub fn new() -> Self {
        Stop {
            inner: Some(Arc::new(Inner {
                fired: AtomicBool::new(false),
                waiting: Mutex::new(Waiting::default()),
            })),
        }
    }

    /// A signal that never fires (client-go's `wait.NeverStop`).
    /// [`stop`](Stop::stop) on it does nothing and returns `false`.
    pub const fn never() -> Self {
        Stop { inner: None }
    }

    /// A new signal that has already fired.
    pub fn stopped_already() -> Self {
        let stop = Self::new();
        stop.stop();
        stop
    }

    /// Fires the signal, waking every waiter and every child.
    /// Returns `true` only for the call that fired it.
    pub fn stop(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.fire())
    }

    /// Whether the signal has fired.
    pub fn is_stopped(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.fired.load(Ordering::SeqCst))
    }

    /// A new signal that fires when this one does, and can also be fired on
    /// its own without affecting this one (like a derived `context.Context`).
    pub fn child(&self) -> Stop {
        let child = Stop::new();
        if let (Some(parent), Some(inner)) = (&self.inner, &child.inner) {
            let mut waiting = lock(&parent.waiting);
            if parent.fired.load(Ordering::SeqCst) {
                drop(waiting);
                inner.fire();
            } else {
                waiting.children.retain(|c| c.strong_count() > 0);
                waiting.children.push(Arc::downgrade(inner));
            }
        }
        child
    }

    /// A future that completes once the signal fires.
    pub fn stopped(&self) -> Stopped<'_> {
        Stopped {
            stop: self,
            key: None,
        }
    }

    /// Blocks the current thread until the signal fires.
    pub fn wait(&self) {
        exec::block_on(self.stopped())
    }

    /// Blocks for at most `timeout` of real time; returns whether the signal fired.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_timeout_on(&clock::real(), timeout)
    }

    /// Like [`wait_timeout`](Stop::wait_timeout), measuring `timeout` on `clock`.
    pub fn wait_timeout_on(&self, clock: &SharedClock, timeout: Duration) -> bool {
        let deadline = clock::deadline_after(clock.now(), timeout);
        let mut sleep = Sleep::new(&**clock, deadline);
        let mut stopped = self.stopped();
        exec::block_on(std::future::poll_fn(|cx| {
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            sleep.poll_elapsed(cx).map(|()| false)
        }))
    }

    /// Adapts a `tokio_util` cancellation token: the returned signal fires
    /// when the token is cancelled.
    ///
    /// Inside a tokio runtime a small task watches the token; elsewhere a
    /// thread does. The watcher ends when either side fires.
    #[cfg(feature = "tokio")]
    pub fn from_cancellation_token(token: tokio_util::sync::CancellationToken) -> Stop {
        let stop = Stop::new();
        if token.is_cancelled() {
            stop.stop();
            return stop;
        }
        let watcher = {
            let stop = stop.clone();
            async move {
                let cancelled = token.cancelled();
                let mut cancelled = std::pin::pin!(cancelled);
                let mut stopped = stop.stopped();
                std::future::poll_fn(|cx| {
                    if cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(true);
                    }
                    Pin::new(&mut stopped).poll(cx).map(|()| false)
                })
                .await
                .then(|| stop.stop());
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(watcher);
            }
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("requeue-stop-watch".into())
                    .spawn(move || exec::block_on(watcher));
                if let Err(error) = spawned {
                    tracing::error!(%error, "cannot watch the cancellation token; stop fired");
                    stop.stop();
                }
            }
        }
        stop
    }
}

#[cfg(feature = "tokio")]
impl From<tokio_util::sync::CancellationToken> for Stop {
    fn from(token: tokio_util::sync::CancellationToken) -> Self {
        Stop::from_cancellation_token(token)
    }
}

/// Future returned by [`Stop::stopped`]; completes once the signal fires.
///
/// Cancellation safe: dropping it only withdraws its waker.
#[must_use = "futures do nothing unless awaited"]
pub struct Stopped<'a> {
    stop: &'a Stop,
    key: Option<u64>,
}

impl fmt::Debug for Stopped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped").field("stop", self.stop).finish()
    }
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(inner) = &this.stop.inner else {
            return Poll::Pending;
        };
        if inner.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        // Register under the lock that `fire` takes before waking, and
        // re-check there: a fire cannot slip between check and register.
        let mut waiting = lock(&inner.waiting);
        if inner.fired.load(Ordering::SeqCst) {
            this.key = None;
            return Poll::Ready(());
        }
        this.key = Some(waiting.wakers.register(this.key, cx.waker()));
        Poll::Pending
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let (Some(key), Some(inner)) = (self.key, &self.stop.inner) {
            lock(&inner.waiting).wakers.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn never_is_never_stopped_and_cannot_be_fired() {
        let never = Stop::never();
        assert!(!never.stop());
        assert!(!never.is_stopped());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut never.stopped()).poll(&mut cx).is_pending());
    }

    #[test]
    fn children_fire_with_their_parent_but_not_the_other_way() {
        let parent = Stop::new();
        let a = parent.child();
        let b = parent.child();
        let grandchild = a.child();
        b.stop();
        assert!(!parent.is_stopped());
        parent.stop();
        assert!(a.is_stopped() && b.is_stopped() && grandchild.is_stopped());
        assert!(
            parent.child().is_stopped(),
            "a child of a fired signal starts fired"
        );
    }

    #[test]
    fn a_dropped_waiter_is_unregistered() {
        let stop = Stop::new();
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut stopped = stop.stopped();
            assert!(Pin::new(&mut stopped).poll(&mut cx).is_pending());
            let inner = stop.inner.as_ref().expect("inner");
            assert_eq!(lock(&inner.waiting).wakers.len(), 1);
        }
        let inner = stop.inner.as_ref().expect("inner");
        assert_eq!(lock(&inner.waiting).wakers.len(), 0);
    }

    #[test]
    fn wait_timeout_on_a_fake_clock_times_out_when_the_clock_passes() {
        let fake = crate::clock::FakeClock::new();
        let clock: SharedClock = Arc::new(fake.clone());
        let stop = Stop::new();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.wait_timeout_on(&clock, Duration::from_secs(30)))
        };
        assert!(fake.wait_for_waiters(1, Duration::from_secs(10)));
        fake.advance(Duration::from_secs(30));
        assert!(!waiter.join().expect("join"));
        assert!(Stop::stopped_already().wait_timeout(Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn async_waiters_and_blocked_threads_are_all_woken() {
        let stop = Stop::new();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.wait())
        };
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.stopped().await })
        };
        tokio::task::yield_now().await;
        stop.stop();
        task.await.expect("task");
        thread.join().expect("thread");
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn a_cancelled_token_fires_the_stop() {
        let token = tokio_util::sync::CancellationToken::new();
        let stop = Stop::from(token.clone());
        assert!(!stop.is_stopped());
        token.cancel();
        stop.stopped().await;
        let already = tokio_util::sync::CancellationToken::new();
        already.cancel();
        assert!(Stop::from(already).is_stopped());
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn a_token_works_without_a_runtime() {
        let token = tokio_util::sync::CancellationToken::new();
        let stop = Stop::from(token.clone());
        token.cancel();
        assert!(stop.wait_timeout(Duration::from_secs(10)));
    }
}
