//! The monotonic wall clock and the timer thread that wakes async sleepers.

use super::sleep::park_hint;
use super::{Clock, TimerId};
use crate::sync::{Arc, Condvar, Mutex, lock};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;
use std::task::Waker;
use std::time::Instant;

/// The machine's monotonic clock ([`Instant::now`]).
///
/// Blocked threads wait with a parking timeout. Async tasks are woken by
/// one lazily started, process-wide timer thread (`requeue-timer`), so no
/// async runtime is required.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    fn register_timer(&self, deadline: Instant, waker: &Waker) -> TimerId {
        if deadline <= Instant::now() {
            waker.wake_by_ref();
            return TimerId::TRANSIENT;
        }
        if park_hint(deadline, waker) {
            return TimerId::TRANSIENT;
        }
        timer_thread().register(deadline, waker.clone())
    }

    fn cancel_timer(&self, id: TimerId) {
        if let Some(timers) = TIMERS.get() {
            timers.cancel(id);
        }
    }
}

static TIMERS: OnceLock<Arc<TimerThread>> = OnceLock::new();

fn timer_thread() -> &'static Arc<TimerThread> {
    TIMERS.get_or_init(|| {
        let timers = Arc::new(TimerThread::default());
        let worker = timers.clone();
        std::thread::Builder::new()
            .name("requeue-timer".into())
            .spawn(move || worker.run())
            .map_err(|e| tracing::error!(error = %e, "cannot start the requeue timer thread"))
            .ok();
        timers
    })
}

#[derive(Default)]
struct TimerThread {
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    /// Deadlines in order; entries whose id left `wakers` are stale. A
    /// fired entry is popped; cancelled ones are dropped by a rebuild once
    /// they make the heap more than 64 long and twice `wakers`.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// One per timer registered and not yet fired or cancelled: each
    /// `Sleep` cancels its own when dropped, and a queue keeps at most its
    /// promotion timer and its metrics tick.
    wakers: HashMap<u64, (Instant, Waker)>,
    next_id: u64,
}

impl TimerThread {
    fn register(&self, deadline: Instant, waker: Waker) -> TimerId {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        let earliest = state
            .heap
            .peek()
            .is_none_or(|Reverse((first, _))| deadline < *first);
        state.heap.push(Reverse((deadline, id)));
        state.wakers.insert(id, (deadline, waker));
        drop(state);
        if earliest {
            self.changed.notify_one();
        }
        TimerId::new(id)
    }

    fn cancel(&self, id: TimerId) {
        let mut state = lock(&self.state);
        state.wakers.remove(&id.get());
        // Stale heap entries are dropped when they come due; rebuild when
        // they dominate so memory stays proportional to live timers.
        if state.heap.len() > 64 && state.heap.len() > 2 * state.wakers.len() {
            let live: BinaryHeap<_> = state
                .wakers
                .iter()
                .map(|(id, (deadline, _))| Reverse((*deadline, *id)))
                .collect();
            state.heap = live;
        }
    }

    fn run(&self) {
        let mut state = lock(&self.state);
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(Reverse((deadline, id))) = state.heap.peek().copied() {
                if deadline > now {
                    break;
                }
                state.heap.pop();
                if let Some((_, waker)) = state.wakers.remove(&id) {
                    due.push(waker);
                }
            }
            if !due.is_empty() {
                drop(state);
                for waker in due {
                    // A waker may run code (the work queue promotes due
                    // items from `wake`); a panic there must not take down
                    // the timer every other sleeper depends on.
                    let woke =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
                    if let Err(payload) = woke {
                        tracing::error!(
                            panic = crate::crash::panic_message(&*payload),
                            "a timer waker panicked"
                        );
                    }
                }
                state = lock(&self.state);
                continue;
            }
            state = match state.heap.peek() {
                Some(Reverse((deadline, _))) => {
                    let timeout = deadline.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(state, timeout)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SharedClock;
    use std::time::Duration;

    #[test]
    fn blocking_sleep_on_the_real_clock_waits_at_least_the_duration() {
        let clock: SharedClock = Arc::new(RealClock);
        let start = Instant::now();
        clock.sleep(Duration::from_millis(5)).wait();
        assert!(start.elapsed() >= Duration::from_millis(5));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_sleep_on_the_real_clock_is_woken_by_the_timer_thread() {
        let clock: SharedClock = Arc::new(RealClock);
        let start = Instant::now();
        clock.sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() >= Duration::from_millis(5));
    }

    #[test]
    fn cancelled_timers_do_not_accumulate() {
        let timers = TimerThread::default();
        let far = Instant::now() + Duration::from_secs(3600);
        for _ in 0..1000 {
            let id = timers.register(far, Waker::noop().clone());
            timers.cancel(id);
        }
        assert!(lock(&timers.state).heap.len() <= 130);
    }
}
