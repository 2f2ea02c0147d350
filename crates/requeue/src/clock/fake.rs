//! A clock that only moves when a test moves it.

use super::{Clock, TimerId, deadline_after};
use crate::sync::{Arc, Condvar, Mutex, lock};
use std::collections::{BTreeMap, HashMap};
use std::task::Waker;
use std::time::{Duration, Instant};

/// A manually driven clock for deterministic tests.
///
/// Time starts at the moment of construction (or a given instant) and moves
/// only through [`advance`](FakeClock::advance) and [`set`](FakeClock::set),
/// which wake every waiter whose deadline is not after the new time — blocked
/// threads and async tasks alike — in deadline order. A fired waiter is
/// removed at once, so [`has_waiters`](FakeClock::has_waiters) turns true
/// again only when the woken code has armed its next timer: tests step a loop
/// one round at a time by waiting for that, never by sleeping.
///
/// Cloning gives another handle to the same clock.
///
/// ```
/// use std::time::Duration;
/// use requeue::clock::{Clock, FakeClock};
///
/// let clock = FakeClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now() - start, Duration::from_millis(1500));
/// assert!(!clock.has_waiters());
/// ```
#[derive(Debug, Clone)]
pub struct FakeClock {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a waiter registers, for [`FakeClock::wait_for_waiters`].
    registered: Condvar,
}

#[derive(Debug)]
struct State {
    now: Instant,
    /// One per registration not yet fired or cancelled (both remove it),
    /// as for the real clock.
    timers: BTreeMap<(Instant, u64), Waker>,
    /// The same registrations, by id (for cancelling).
    deadlines: HashMap<u64, Instant>,
    next_id: u64,
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeClock {
    /// A fake clock reading the current real instant, frozen there.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A fake clock reading `now`.
    pub fn starting_at(now: Instant) -> Self {
        FakeClock {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    now,
                    timers: BTreeMap::new(),
                    deadlines: HashMap::new(),
                    next_id: 0,
                }),
                registered: Condvar::new(),
            }),
        }
    }

    /// Moves time forward by `duration` (saturating) and wakes every waiter now due.
    pub fn advance(&self, duration: Duration) {
        let to = {
            let state = lock(&self.shared.state);
            deadline_after(state.now, duration)
        };
        self.move_to(to);
    }

    /// Sets the time to `now` (which may be earlier than the current time)
    /// and wakes every waiter whose deadline is not after it.
    pub fn set(&self, now: Instant) {
        self.move_to(now);
    }

    /// Sets the time, then wakes the due timers one by one in deadline
    /// order. Each waker runs without the clock's lock held, so a woken
    /// waiter may read the clock or register its next timer from inside
    /// `wake` (the work queue's promotion timer does); a timer it registers
    /// that is already due fires in this same call.
    fn move_to(&self, to: Instant) {
        lock(&self.shared.state).now = to;
        loop {
            let waker = {
                let mut state = lock(&self.shared.state);
                let now = state.now;
                let Some(entry) = state.timers.first_entry() else {
                    return;
                };
                if entry.key().0 > now {
                    return;
                }
                let ((_, id), waker) = entry.remove_entry();
                state.deadlines.remove(&id);
                waker
            };
            waker.wake();
        }
    }

    /// Whether any thread or task is waiting on this clock.
    pub fn has_waiters(&self) -> bool {
        self.waiters() > 0
    }

    /// How many threads or tasks are waiting on this clock.
    pub fn waiters(&self) -> usize {
        lock(&self.shared.state).timers.len()
    }

    /// The earliest deadline anyone is waiting for.
    pub fn next_deadline(&self) -> Option<Instant> {
        lock(&self.shared.state)
            .timers
            .keys()
            .next()
            .map(|(d, _)| *d)
    }

    /// Blocks (on real time, at most `timeout`) until at least `count`
    /// waiters are registered. Returns whether they are.
    ///
    /// This is how a test waits for a loop on another thread to reach its
    /// wait before stepping the clock; the timeout only bounds a broken test.
    pub fn wait_for_waiters(&self, count: usize, timeout: Duration) -> bool {
        let give_up = deadline_after(Instant::now(), timeout);
        let mut state = lock(&self.shared.state);
        while state.timers.len() < count {
            let now = Instant::now();
            if now >= give_up {
                return false;
            }
            state = self
                .shared
                .registered
                .wait_timeout(state, give_up - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        true
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        lock(&self.shared.state).now
    }

    fn register_timer(&self, deadline: Instant, waker: &Waker) -> TimerId {
        let mut state = lock(&self.shared.state);
        if deadline <= state.now {
            // Wake without the clock's lock: the waker may read the clock.
            drop(state);
            waker.wake_by_ref();
            return TimerId::TRANSIENT;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.timers.insert((deadline, id), waker.clone());
        state.deadlines.insert(id, deadline);
        drop(state);
        self.shared.registered.notify_all();
        TimerId::new(id)
    }

    fn cancel_timer(&self, id: TimerId) {
        let mut state = lock(&self.shared.state);
        if let Some(deadline) = state.deadlines.remove(&id.get()) {
            state.timers.remove(&(deadline, id.get()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SharedClock;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    const BOUND: Duration = Duration::from_secs(10);

    #[test]
    fn wall_time_moves_exactly_as_far_as_the_fake_clock() {
        let clock = FakeClock::new();
        let before = clock.wall_now();
        clock.advance(Duration::from_secs(90));
        let after = clock.wall_now();
        assert_eq!(
            after.duration_since(before).ok(),
            Some(Duration::from_secs(90))
        );
        let earlier = FakeClock::starting_at(clock.now() - Duration::from_secs(5));
        assert_eq!(
            after.duration_since(earlier.wall_now()).ok(),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn advance_wakes_a_blocked_thread_only_once_its_deadline_passes() {
        let clock = FakeClock::new();
        let shared: SharedClock = Arc::new(clock.clone());
        let deadline = clock.now() + Duration::from_secs(10);
        let waiter = std::thread::spawn(move || shared.sleep_until(deadline).wait());
        assert!(clock.wait_for_waiters(1, BOUND));
        clock.advance(Duration::from_secs(9));
        assert!(clock.has_waiters(), "not due yet");
        clock.advance(Duration::from_secs(1));
        waiter.join().expect("waiter");
        assert!(!clock.has_waiters());
    }

    #[test]
    fn advance_wakes_a_pending_task_and_cancel_on_drop_unregisters() {
        let clock = FakeClock::new();
        let dyn_clock = &clock;
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut sleep = pin!(dyn_clock.sleep(Duration::from_millis(50)));
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            assert_eq!(clock.waiters(), 1);
            clock.advance(Duration::from_millis(49));
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            clock.advance(Duration::from_millis(1));
            assert!(!clock.has_waiters(), "fired waiters are removed at once");
            assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        {
            let mut sleep = pin!(dyn_clock.sleep(Duration::from_secs(1)));
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
            assert!(clock.has_waiters());
        }
        assert!(!clock.has_waiters(), "dropping a sleep cancels it");
    }

    #[test]
    fn set_can_move_time_backwards_and_fires_in_deadline_order() {
        let clock = FakeClock::new();
        let start = clock.now();
        clock.set(start + Duration::from_secs(5));
        clock.set(start);
        assert_eq!(clock.now(), start);
        let dyn_clock = &clock;
        let mut cx = Context::from_waker(Waker::noop());
        let mut late = pin!(dyn_clock.sleep_until(start + Duration::from_secs(2)));
        let mut early = pin!(dyn_clock.sleep_until(start + Duration::from_secs(1)));
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_deadline(), Some(start + Duration::from_secs(1)));
        clock.set(start + Duration::from_secs(1));
        assert_eq!(clock.waiters(), 1);
        assert!(early.as_mut().poll(&mut cx).is_ready());
        assert!(late.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn registering_an_already_due_deadline_wakes_at_once() {
        let clock = FakeClock::new();
        let woken = Arc::new(crate::sync::AtomicBool::new(false));
        struct Flag(Arc<crate::sync::AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, crate::sync::Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let id = clock.register_timer(clock.now(), &waker);
        assert_eq!(id, TimerId::TRANSIENT);
        assert!(woken.load(crate::sync::Ordering::SeqCst));
        assert!(!clock.has_waiters());
    }

    #[test]
    fn huge_advance_saturates() {
        let clock = FakeClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert!(clock.now() > Instant::now());
    }

    #[test]
    fn wait_for_waiters_gives_up_after_its_bound() {
        let clock = FakeClock::new();
        assert!(!clock.wait_for_waiters(1, Duration::from_millis(1)));
    }
}
