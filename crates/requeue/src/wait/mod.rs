//! Loops, polling and backoff: apimachinery's `wait` package for threads and
//! async tasks.
//!
//! # Usage
//!
//! | you want | blocking | async |
//! |---|---|---|
//! | run `f` periodically until stopped | [`until`], [`non_sliding_until`], [`jitter_until`], [`backoff_until`], [`forever`] | the same names with `_async` |
//! | wait until a condition holds | [`poll`], [`poll_immediate`], [`poll_infinite`], [`poll_immediate_infinite`], [`poll_until`], [`poll_immediate_until`], [`poll_until_timeout`], [`poll_until_cancel`], [`wait_for`] | the same names with `_async` |
//! | retry with exponential backoff | [`exponential_backoff`], [`exponential_backoff_until`] | [`exponential_backoff_async`] |
//! | configure clock, jitter, panics | [`Periodic`], [`Poller`], [`Retry`] | the same, `run_async` |
//!
//! Every loop watches a [`Stop`] signal ([`Stop::never`] for none), takes
//! its time from a [`Clock`](crate::clock::Clock) (real by default, a
//! [`FakeClock`](crate::clock::FakeClock) in tests), and handles panics in
//! your code by a [`PanicPolicy`](crate::crash::PanicPolicy).
//!
//! ```
//! use std::time::Duration;
//! use requeue::clock::FakeClock;
//! use requeue::wait::{Poller, Stop, WaitError};
//!
//! // A deterministic poll: each check takes a second of fake time.
//! let clock = FakeClock::new();
//! let fake = clock.clone();
//! let result = Poller::every(Duration::from_secs(1))
//!     .immediate(true)
//!     .timeout(Duration::from_secs(5))
//!     .clock(clock)
//!     .run(&Stop::never(), || {
//!         fake.advance(Duration::from_secs(1));
//!         Ok::<_, std::io::Error>(false)
//!     });
//! assert!(matches!(result, Err(WaitError::TimedOut)));
//! ```
//!
//! # Implementation
//!
//! Each loop is written once, as async code; the blocking functions drive
//! that same future on the calling thread. So the ordering rules (stop
//! checked before each run and after each wait, timer armed before or after
//! the body) cannot drift apart between the two worlds.
//!
//! # Cancellation safety
//!
//! Every async loop can be dropped at any await point; it then never calls
//! your function again and leaves no timer behind.

/// Generates the `clock` and `panics` setters for a loop builder with an
/// `env: LoopEnv` field, so every builder offers them with the same words.
macro_rules! loop_env_setters {
    () => {
        /// Measures time on `clock` instead of the real clock.
        pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
            self.env.clock = std::sync::Arc::new(clock);
            self
        }

        /// How a panic in your code is handled (default:
        /// [`PanicPolicy::inherit`](crate::crash::PanicPolicy::inherit)).
        pub fn panics(mut self, policy: crate::crash::PanicPolicy) -> Self {
            self.env.panics = policy;
            self
        }
    };
}

mod backoff;
mod env;
mod error;
pub(crate) mod event;
mod group;
mod jitter;
mod periodic;
mod poll;
mod poll_fns;
mod retry;
mod stop;

pub use backoff::{
    Backoff, BackoffManager, DelayWithReset, ExponentialBackoffManager, JitteredBackoffManager,
};
pub use error::{Interrupted, WaitError, is_interrupted};
pub use group::Group;
pub use jitter::{jitter, jitter_with};
pub use periodic::{
    Periodic, backoff_until, backoff_until_async, forever, forever_async, jitter_until,
    jitter_until_async, non_sliding_until, non_sliding_until_async, until, until_async,
};
pub use poll::{NoTicks, Poller};
pub use poll_fns::{
    PollResult, poll, poll_async, poll_immediate, poll_immediate_async, poll_immediate_infinite,
    poll_immediate_infinite_async, poll_immediate_until, poll_immediate_until_async, poll_infinite,
    poll_infinite_async, poll_until, poll_until_async, poll_until_cancel, poll_until_cancel_async,
    poll_until_timeout, poll_until_timeout_async, wait_for, wait_for_async,
};
pub use retry::{Retry, exponential_backoff, exponential_backoff_async, exponential_backoff_until};
pub use stop::{Stop, Stopped};

/// A timeout long enough to mean "forever" in a test (apimachinery's `ForeverTestTimeout`).
pub const FOREVER_TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
