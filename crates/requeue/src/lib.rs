//! Kubernetes' battle-tested controller primitives for Rust: the `wait`
//! loops of apimachinery, client-go's work queue and event recorder — with
//! the same semantics, for blocking threads and async tasks alike, on an
//! injectable clock.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`wait`] | `until`, `jitter_until`, `poll*`, backoff, [`Stop`](wait::Stop), [`Group`](wait::Group) |
//! | [`clock`] | the [`Clock`](clock::Clock) trait, [`RealClock`](clock::RealClock), [`FakeClock`](clock::FakeClock) |
//! | [`queue`] | [`WorkQueue`](queue::WorkQueue): client-go's work queue with delays, priorities and rate-limited retries |
//! | [`limiter`] | client-go's rate limiters ([`default_controller`](limiter::default_controller) and the rest) |
//! | [`metrics`] | the queue's metrics hooks with client-go's metric set |
//! | [`parallel`] | [`parallelize_until`](parallel::parallelize_until) |
//! | [`crash`] | what happens when your code panics inside a loop |
//!
//! ```
//! use std::time::Duration;
//! use requeue::wait::{self, Stop};
//!
//! let stop = Stop::new();
//! let mut beats = 0;
//! wait::until(Duration::from_millis(1), &stop, || {
//!     beats += 1;
//!     if beats == 2 {
//!         stop.stop();
//!     }
//! });
//! assert_eq!(beats, 2);
//! ```
#![deny(missing_docs)]

pub mod clock;
pub mod crash;
mod exec;
pub mod limiter;
pub mod metrics;
pub mod parallel;
pub mod queue;
mod sync;
pub mod wait;
mod waker_set;

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
