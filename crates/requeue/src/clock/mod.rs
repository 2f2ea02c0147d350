//! Time as a dependency: the [`Clock`] trait, the monotonic [`RealClock`] and
//! the manual [`FakeClock`] for deterministic tests.
//!
//! # Usage
//!
//! Everything in requeue that reads or waits on time takes a clock. Production
//! code uses [`RealClock`] (the default everywhere); tests hand in a
//! [`FakeClock`] and move time by hand with [`FakeClock::advance`], which wakes
//! every waiter whose deadline has passed — blocked threads and pending async
//! tasks alike.
//!
//! ```
//! use std::time::Duration;
//! use requeue::clock::{Clock, FakeClock};
//!
//! let clock = FakeClock::new();
//! let deadline = clock.now() + Duration::from_secs(5);
//! let waiter = {
//!     let clock = clock.clone();
//!     std::thread::spawn(move || clock.sleep_until(deadline).wait())
//! };
//! // Step only once the thread is really waiting: no real sleeping involved.
//! assert!(clock.wait_for_waiters(1, Duration::from_secs(10)));
//! clock.advance(Duration::from_secs(5));
//! waiter.join().unwrap();
//! ```
//!
//! # Implementation
//!
//! A clock only has to say what time it is and wake a [`Waker`] once a
//! deadline has passed. Blocking waits are the same futures driven on the
//! calling thread, whose waker unparks that thread. [`RealClock`] lets such a
//! thread park with a timeout instead of involving its shared timer thread,
//! which serves async tasks only.
//!
//! # Cancellation safety
//!
//! Dropping a [`Sleep`] cancels its timer registration; nothing else is
//! affected.

mod fake;
mod real;
mod sleep;
#[cfg(feature = "tokio")]
mod tokio_clock;

pub use fake::FakeClock;
pub use real::RealClock;
pub use sleep::Sleep;
#[cfg(feature = "tokio")]
pub use tokio_clock::TokioClock;

use std::fmt;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

/// A clock shared between the parts of a program that need the same time.
pub type SharedClock = Arc<dyn Clock>;

/// Identifies one timer registration made with [`Clock::register_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

impl TimerId {
    /// A registration that needs no cancellation and must be renewed on every
    /// poll (used when a clock wakes the waiter some other way).
    pub const TRANSIENT: TimerId = TimerId(u64::MAX);

    /// Wraps a clock-specific number. `u64::MAX` is reserved for [`TimerId::TRANSIENT`].
    pub const fn new(id: u64) -> Self {
        TimerId(id)
    }

    /// The clock-specific number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A source of monotonic time that can wake waiters at a deadline.
///
/// Implementations must be cheap to query and safe to share between threads.
/// requeue ships [`RealClock`] and [`FakeClock`]; implement this trait only to
/// bridge another time source (for example a simulation).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant. Never goes backwards for [`RealClock`].
    fn now(&self) -> Instant;

    /// Arranges for `waker` to be woken once `now() >= deadline`.
    ///
    /// If the deadline has already passed the clock must wake `waker` at
    /// once (this closes the race between checking the time and registering).
    /// Returns an id for [`Clock::cancel_timer`], or [`TimerId::TRANSIENT`]
    /// when nothing needs cancelling and the caller should register again
    /// on its next poll.
    fn register_timer(&self, deadline: Instant, waker: &Waker) -> TimerId;

    /// Withdraws a registration made by [`Clock::register_timer`]. Unknown or
    /// already fired ids are ignored.
    fn cancel_timer(&self, id: TimerId);

    /// The wall-clock time of [`now`](Clock::now), for timestamps people
    /// read (event times). The default maps this clock's instants onto the
    /// system time through one process-wide anchor ([`wall_time`]), so a
    /// [`FakeClock`] moves its wall time exactly as far as it is advanced;
    /// [`RealClock`] returns the system time itself.
    fn wall_now(&self) -> SystemTime {
        wall_time(self.now())
    }

    /// A future (and blocking waiter) that completes once this clock reaches `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep<'_>
    where
        Self: Sized,
    {
        Sleep::new(self, deadline)
    }

    /// A future (and blocking waiter) that completes `duration` from now on this clock.
    fn sleep(&self, duration: Duration) -> Sleep<'_>
    where
        Self: Sized,
    {
        Sleep::new(self, deadline_after(self.now(), duration))
    }
}

/// How far ahead a deadline is placed when `now + duration` does not fit in
/// an [`Instant`]: about a century, which no program waits out.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + duration`, saturating at a far-future instant instead of panicking.
pub fn deadline_after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 60 * 60)))
        .unwrap_or(now)
}

/// The system time that the monotonic `instant` corresponds to: both clocks
/// are read once (at the first call in the process) and the difference is
/// carried over, saturating at the ends of `SystemTime`'s range.
pub fn wall_time(instant: Instant) -> SystemTime {
    static ANCHOR: std::sync::OnceLock<(Instant, SystemTime)> = std::sync::OnceLock::new();
    let (mono, wall) = *ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    if instant >= mono {
        wall.checked_add(instant - mono).unwrap_or(wall)
    } else {
        wall.checked_sub(mono - instant).unwrap_or(wall)
    }
}

/// The default clock: a shared [`RealClock`].
pub fn real() -> SharedClock {
    static REAL: std::sync::OnceLock<SharedClock> = std::sync::OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealClock)).clone()
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn register_timer(&self, deadline: Instant, waker: &Waker) -> TimerId {
        (**self).register_timer(deadline, waker)
    }
    fn cancel_timer(&self, id: TimerId) {
        (**self).cancel_timer(id)
    }
    fn wall_now(&self) -> SystemTime {
        (**self).wall_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_after_saturates_instead_of_panicking() {
        let now = Instant::now();
        let far = deadline_after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(50 * 365 * 24 * 3600));
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    #[test]
    fn timer_id_round_trips() {
        assert_eq!(TimerId::new(7).get(), 7);
        assert_eq!(TimerId::TRANSIENT.get(), u64::MAX);
    }
}
