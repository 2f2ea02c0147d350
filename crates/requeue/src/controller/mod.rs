//! A controller: N workers taking keys from a [`WorkQueue`], a handler that
//! succeeds, fails or asks to come back, retries with the queue's rate
//! limiter, panics contained, and a clean stop.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use requeue::controller::{Action, Controller};
//! use requeue::queue::WorkQueue;
//! use requeue::wait::Stop;
//!
//! let queue: WorkQueue<String> = WorkQueue::new();
//! for key in ["shop/web", "shop/db"] {
//!     queue.add(key.to_string()).unwrap();
//! }
//! let stop = Stop::new();
//! let controller = Controller::new(queue.clone(), 2);
//! let summary = std::thread::scope(|s| {
//!     let run = s.spawn(|| {
//!         controller.run(&stop, |key: &String| -> Result<Action, std::io::Error> {
//!             println!("reconciling {key}");
//!             Ok(Action::Done)
//!         })
//!     });
//!     while controller.counts().succeeded < 2 {
//!         std::thread::sleep(Duration::from_millis(1));
//!     }
//!     stop.stop();
//!     run.join().unwrap()
//! });
//! assert_eq!(summary.succeeded, 2);
//! ```
//!
//! Each handled key ends in exactly one way:
//!
//! | outcome | queue calls |
//! |---|---|
//! | `Ok(Action::Done)` | `forget`, done |
//! | `Ok(Action::Requeue)` | `add` (back of the queue), done |
//! | `Ok(Action::RequeueAfter(d))` | `forget`, `add_after(d)`, done |
//! | `Ok(Action::RequeueRateLimited)` | `add_rate_limited`, done |
//! | `Err(e)` | `add_rate_limited`, done; a Warning event if a recorder is set |
//! | panic | logged with the key, counted, then handled as an error |
//!
//! # Implementation
//!
//! The rules live in one private function (`settle`) that both the
//! blocking workers (threads) and the async workers (tokio tasks) call. A
//! stop signal ends intake: each worker finishes the key in hand, then
//! exits; the queue is shut down, and the summary reports what was left.
//!
//! # Cancellation safety
//!
//! The async runner only returns once every worker has finished its key.

mod outcome;
mod run_async;
mod runner;
mod settle;
mod signal;

/// Re-exported from [`crate::metrics`], where they live.
pub use crate::metrics::{ControllerMetrics, ReconcileResult};
pub use outcome::{Action, Counts, Summary};
#[cfg(feature = "signal")]
pub use signal::{SignalError, stop_on_signals};

use crate::engine::AsyncQueue;
#[cfg(feature = "events")]
use crate::events::{ObjectReference, Recorder};
use crate::queue::{Key, WorkQueue};
use outcome::Counters;
use std::fmt;
use std::sync::Arc;

/// Turns a key into the object its Warning events are about.
#[cfg(feature = "events")]
pub type ObjectOf<T> = Arc<dyn Fn(&T) -> ObjectReference + Send + Sync>;

/// Lists every key a resync re-adds.
pub type Lister<T> = Arc<dyn Fn() -> Vec<T> + Send + Sync>;

/// The priority resync adds use: controller-runtime's `LowPriority`, so keys
/// with real changes are handled first (fairness still serves these).
pub const RESYNC_PRIORITY: i32 = -100;

/// Runs a handler over a queue's keys; see the [module docs](self).
///
/// `Q` is the engine: the in-memory [`WorkQueue`] by default, or any
/// [`AsyncQueue`] (such as `requeue-redis`'s) for
/// [`run_async`](Controller::run_async).
pub struct Controller<T: Key, Q: AsyncQueue<T> = WorkQueue<T>> {
    queue: Q,
    workers: usize,
    resync: Option<(std::time::Duration, Lister<T>)>,
    metrics: Option<Arc<dyn ControllerMetrics>>,
    #[cfg(feature = "events")]
    events: Option<(Recorder, ObjectOf<T>)>,
    counters: Arc<Counters>,
}

impl<T: Key, Q: AsyncQueue<T>> Clone for Controller<T, Q> {
    fn clone(&self) -> Self {
        Controller {
            queue: self.queue.clone(),
            workers: self.workers,
            resync: self.resync.clone(),
            metrics: self.metrics.clone(),
            #[cfg(feature = "events")]
            events: self.events.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>> fmt::Debug for Controller<T, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("queue", &self.queue.name())
            .field("workers", &self.workers)
            .field("counts", &self.counts())
            .finish()
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>> Controller<T, Q> {
    /// A controller with `workers` workers (at least one) over `queue`.
    pub fn new(queue: Q, workers: usize) -> Self {
        Controller {
            queue,
            workers: workers.max(1),
            resync: None,
            metrics: None,
            #[cfg(feature = "events")]
            events: None,
            counters: Arc::new(Counters::default()),
        }
    }

    #[cfg(feature = "events")]
    /// Records a Warning event (reason `ReconcileError`) for every error,
    /// about the object `object_of` names for the key.
    pub fn record_errors(
        mut self,
        recorder: Recorder,
        object_of: impl Fn(&T) -> ObjectReference + Send + Sync + 'static,
    ) -> Self {
        self.events = Some((recorder, Arc::new(object_of)));
        self
    }

    /// Re-adds every key `lister` returns, at [`RESYNC_PRIORITY`], at the
    /// start of a run and then every `period` until it stops (a periodic
    /// resync, as informers do).
    pub fn resync(
        mut self,
        period: std::time::Duration,
        lister: impl Fn() -> Vec<T> + Send + Sync + 'static,
    ) -> Self {
        self.resync = Some((period, Arc::new(lister)));
        self
    }

    /// One resync round.
    async fn resync_once(&self, lister: &Lister<T>) {
        let opts = crate::queue::AddOpts::new().priority(RESYNC_PRIORITY);
        for key in lister() {
            if self.queue.add_with(key, opts).await.is_err() {
                return; // shutting down, or the engine is failing: next round
            }
        }
    }

    /// Runs the resync loop (if any) until `stop` fires.
    async fn run_resync(&self, stop: &crate::wait::Stop) {
        if let Some((period, lister)) = &self.resync {
            crate::wait::Periodic::new(*period)
                .clock(self.queue.clock().clone())
                .run_async(stop, || self.resync_once(lister))
                .await;
        }
    }

    /// Reports reconciles, errors, panics and busy workers to `metrics`
    /// (controller-runtime's series; see `PrometheusControllerMetrics`).
    pub fn metrics(mut self, metrics: Arc<dyn ControllerMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn report(&self, f: impl FnOnce(&dyn ControllerMetrics)) {
        if let Some(metrics) = &self.metrics {
            f(&**metrics);
        }
    }

    /// The queue the controller works on.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// The counts so far (also while running).
    pub fn counts(&self) -> Counts {
        self.counters.snapshot()
    }
}
