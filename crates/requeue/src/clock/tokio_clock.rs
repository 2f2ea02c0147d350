//! Time from tokio's clock, so that `tokio::time::pause()` (and
//! `#[tokio::test(start_paused = true)]`) governs requeue's timers too.

use super::{Clock, TimerId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

/// tokio's clock (`tokio::time::Instant`) as a requeue [`Clock`].
///
/// Under tokio's paused time (`tokio::time::pause()`, or a test marked
/// `#[tokio::test(start_paused = true)]`) time stands still until every
/// task waits, then jumps to the next timer, requeue's included: a test of
/// a queue with hour-long delays runs in milliseconds, without a
/// [`FakeClock`](super::FakeClock) to advance by hand. Outside paused time
/// it is the machine's monotonic clock, like [`RealClock`](super::RealClock).
///
/// Each waiting deadline is a tokio timer task on the runtime the clock was
/// made on, so blocked threads and tasks of other executors are woken too,
/// as long as that runtime runs. [`RealClock`](super::RealClock) needs no
/// runtime and is cheaper for production.
///
/// ```
/// use requeue::clock::TokioClock;
/// use requeue::queue::WorkQueue;
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let queue: WorkQueue<&str> = WorkQueue::builder()
///     .clock(TokioClock::new())
///     .build();
/// queue.add_after("later", Duration::from_secs(3600)).unwrap();
/// let start = tokio::time::Instant::now();
/// let item = queue.get_async().await.unwrap(); // an hour of paused time
/// assert_eq!(*item, "later");
/// assert!(start.elapsed() >= Duration::from_secs(3600));
/// # });
/// ```
#[derive(Debug)]
pub struct TokioClock {
    runtime: Handle,
    timers: Mutex<HashMap<u64, AbortHandle>>,
    next: AtomicU64,
}

impl TokioClock {
    /// A clock on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::runtime::Handle::current`);
    /// use [`TokioClock::on`] there.
    pub fn new() -> Self {
        TokioClock::on(Handle::current())
    }

    /// A clock whose timers run on `runtime`, which needs its time driver
    /// (`enable_time`).
    pub fn on(runtime: Handle) -> Self {
        TokioClock {
            runtime,
            timers: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Timers waiting (for tests; bounded by the waits in progress: each
    /// entry leaves when it fires or is cancelled).
    pub fn waiting(&self) -> usize {
        self.timers.lock().len()
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        // `tokio::time::Instant::now` reads the current runtime's clock;
        // entered here so that threads outside the runtime see the same.
        let _entered = self.runtime.enter();
        tokio::time::Instant::now().into_std()
    }

    fn register_timer(&self, deadline: Instant, waker: &Waker) -> TimerId {
        if deadline <= self.now() {
            waker.wake_by_ref();
            return TimerId::TRANSIENT;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) % (u64::MAX - 1);
        let waker = waker.clone();
        // Registered before the task can finish, so its own removal (below,
        // in `cancel_timer` or when it fires) always finds the entry.
        let mut timers = self.timers.lock();
        let task = self.runtime.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
            waker.wake();
        });
        timers.insert(id, task.abort_handle());
        // Fired timers leave the map on their waiter's next registration
        // or cancellation; prune the finished ones so that it stays as
        // small as the waits in progress.
        timers.retain(|_, task| !task.is_finished());
        TimerId::new(id)
    }

    fn cancel_timer(&self, id: TimerId) {
        if let Some(task) = self.timers.lock().remove(&id.get()) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_timer_never_fires_and_leaves_the_table() {
        let clock = TokioClock::new();
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = waker_setting(woken.clone());
        let id = clock.register_timer(clock.now() + Duration::from_secs(5), &waker);
        assert_eq!(clock.waiting(), 1);
        clock.cancel_timer(id);
        assert_eq!(clock.waiting(), 0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!woken.load(Ordering::SeqCst));
    }

    fn waker_setting(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Waker {
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        Waker::from(std::sync::Arc::new(Flag(flag)))
    }
}
