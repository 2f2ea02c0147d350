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
//! | [`engine`] | [`AsyncQueue`](engine::AsyncQueue): one async queue interface over the in-memory and Redis engines |
//! | [`controller`] | [`Controller`](controller::Controller): workers, handler outcomes, retries, contained panics, clean stop |
//! | [`crash`] | what happens when your code panics inside a loop |
//! | [`redact`] | server URLs without their credentials, for messages and logs (every engine uses it) |
//! | `events` | client-go's event machinery: the core/v1 `Event` model, recorder, broadcaster, correlator and sinks (feature `events`, on by default) |
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
//!
//! # Coming from client-go
//!
//! | Go | requeue |
//! |---|---|
//! | `workqueue.NewTypedRateLimitingQueueWithConfig` | [`WorkQueue::builder`](queue::WorkQueue::builder) |
//! | `Add`, `AddAfter`, `AddRateLimited`, `AddWithOpts` | [`add`](queue::WorkQueue::add), [`add_after`](queue::WorkQueue::add_after), [`add_rate_limited`](queue::WorkQueue::add_rate_limited), [`add_with`](queue::WorkQueue::add_with) |
//! | `Get`, `Done` | [`get`](queue::WorkQueue::get) → [`Item`](queue::Item) guard (drop = done) |
//! | `Forget`, `NumRequeues` | [`forget`](queue::WorkQueue::forget), [`num_requeues`](queue::WorkQueue::num_requeues) |
//! | `ShutDown`, `ShutDownWithDrain`, `ShuttingDown` | [`shut_down`](queue::WorkQueue::shut_down), [`shut_down_with_drain`](queue::WorkQueue::shut_down_with_drain), [`is_shutting_down`](queue::WorkQueue::is_shutting_down) |
//! | `DefaultControllerRateLimiter`, `NewItemExponentialFailureRateLimiter`, `NewItemFastSlowRateLimiter`, `BucketRateLimiter`, `NewMaxOfRateLimiter`, `NewWithMaxWaitRateLimiter` | [`limiter::default_controller`], [`limiter::ItemExponential`], [`limiter::ItemFastSlow`], [`limiter::TokenBucket`], [`limiter::MaxOf`], [`limiter::WithMaxWait`] |
//! | `MetricsProvider` | [`metrics::MetricsProvider`] |
//! | `ParallelizeUntil` | [`parallel::parallelize_until`] |
//! | `wait.Until`, `wait.PollUntilContextTimeout`, `wait.Backoff` … | [`wait::until`], [`wait::poll_until_timeout`], [`wait::Backoff`] … (the same names, snake_case; the README maps every one) |
//!
//! The [`queue`] module lists every client-go name and the ten places where
//! requeue deliberately behaves better. The repository's `docs/` directory
//! holds the design, the full behaviour contract, the Redis engine's design
//! and the benchmark method.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod controller;
pub mod crash;
pub mod engine;
#[cfg(feature = "events")]
pub mod events;
mod exec;
pub mod handout;
pub mod limiter;
pub mod metrics;
pub mod parallel;
pub mod queue;
pub mod redact;
mod sync;
pub mod wait;
mod waker_set;

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
