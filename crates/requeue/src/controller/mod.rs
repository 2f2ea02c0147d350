//! A controller: N workers taking keys from a [`WorkQueue`] (or any
//! [`AsyncQueue`] engine), a handler that succeeds, fails or asks to come
//! back, retries as an error policy says (with the queue's rate limiter by
//! default), panics contained, and a clean stop.
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
//! | `Err(e)` | as the [error policy](Controller::error_policy) answers (by default `RequeueRateLimited`: `add_rate_limited`, done); a Warning event if a recorder is set |
//! | panic | logged with the key, counted, then handled as an error |
//!
//! Failures are counted and reported as errors whatever the policy
//! answers; the policy's answer is then applied as in the rows above.
//!
//! # Tracing
//!
//! Each key is reconciled (handler, policy, settling) inside an `info`
//! span named `reconcile` with the fields `queue`, `key`, `attempt` (1 on
//! the first try, one more per rate-limited retry since the key was last
//! forgotten; absent if the engine cannot say) and `cause`, why the key
//! was queued:
//!
//! | `cause` | the key was queued by |
//! |---|---|
//! | `add` | someone other than this controller |
//! | `retry` | this controller, after a failed reconcile |
//! | `requeue` | this controller, because the handler answered `Requeue` or `RequeueRateLimited` |
//! | `requeue-after` | this controller, because the handler answered `RequeueAfter` |
//! | `resync` | this controller's periodic [`resync`](Controller::resync) |
//!
//! When several adds collapse into one, the first since the key was last
//! handed out names the cause.
//!
//! # Implementation
//!
//! There is one worker loop, an async one. The blocking
//! [`run`](Controller::run) starts a thread per worker that drives the loop
//! with the crate's `block_on` (parking between polls); the async
//! [`run_async`](Controller::run_async) spawns it as tokio tasks. The rules
//! live in one private function (`settle`) that the loop calls. A stop
//! signal ends intake: each worker finishes the key in hand, then exits;
//! the queue is shut down, and the summary reports what was left.
//!
//! # Cancellation safety
//!
//! The async runner only returns once every worker has finished its key.

mod cause;
mod fencing;
mod handler;
mod outcome;
mod policy;
mod run_async;
mod runner;
mod settle;
mod signal;
mod worker;

pub use crate::handout::Action;
/// Re-exported from [`crate::metrics`], where they live.
pub use crate::metrics::{ControllerMetrics, ReconcileResult};
pub use fencing::fencing_token;
pub use outcome::{Counts, Summary};
pub use policy::{ErrorPolicy, Failure, RECONCILE_ERROR, RetryOnError};
#[cfg(feature = "tokio")]
pub use signal::stop_on_tokio_signals;
#[cfg(feature = "signal")]
pub use signal::{SignalError, stop_on_signals};

use crate::engine::AsyncQueue;
#[cfg(feature = "events")]
use crate::events::{ObjectReference, Recorder};
use crate::queue::{Key, WorkQueue};
use cause::{Cause, Causes, made_pending};
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
/// [`AsyncQueue`] (such as `requeue-redis`'s). `P` is the
/// [error policy](ErrorPolicy): [`RetryOnError`] unless set with
/// [`error_policy`](Controller::error_policy).
pub struct Controller<T: Key, Q: AsyncQueue<T> = WorkQueue<T>, P = RetryOnError> {
    queue: Q,
    workers: usize,
    resync: Option<(std::time::Duration, Lister<T>)>,
    metrics: Option<Arc<dyn ControllerMetrics>>,
    #[cfg(feature = "events")]
    events: Option<(Recorder, ObjectOf<T>)>,
    policy: Arc<P>,
    counters: Arc<Counters>,
    causes: Arc<Causes<T>>,
}

// Not derived: the derive would ask `T: Clone` and `P: Clone`.
impl<T: Key, Q: AsyncQueue<T>, P> Clone for Controller<T, Q, P> {
    fn clone(&self) -> Self {
        Controller {
            queue: self.queue.clone(),
            workers: self.workers,
            resync: self.resync.clone(),
            metrics: self.metrics.clone(),
            #[cfg(feature = "events")]
            events: self.events.clone(),
            policy: self.policy.clone(),
            counters: self.counters.clone(),
            causes: self.causes.clone(),
        }
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> fmt::Debug for Controller<T, Q, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("queue", &self.queue.name())
            .field("workers", &self.workers)
            .field("counts", &self.counts())
            .finish()
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>> Controller<T, Q> {
    /// A controller with `workers` workers (at least one) over `queue`,
    /// retrying failures with the queue's rate limiter.
    pub fn new(queue: Q, workers: usize) -> Self {
        Controller {
            queue,
            workers: workers.max(1),
            resync: None,
            metrics: None,
            #[cfg(feature = "events")]
            events: None,
            policy: Arc::new(RetryOnError),
            counters: Arc::new(Counters::default()),
            causes: Arc::new(Causes::default()),
        }
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> Controller<T, Q, P> {
    /// Decides with `policy` what happens to a key whose reconcile failed
    /// (kube-runtime's `error_policy`); by default every failure is retried
    /// with the queue's rate limiter ([`RetryOnError`]). A closure
    /// `Fn(&T, &E, u32) -> Action` is a policy for errors (it gets the key,
    /// the handler's error and the attempt: 1 on the first try); see
    /// [`ErrorPolicy`] for panics and for the Warning event's reason.
    ///
    /// ```
    /// use requeue::controller::{Action, Controller};
    /// use requeue::queue::WorkQueue;
    ///
    /// let queue: WorkQueue<String> = WorkQueue::new();
    /// // Give a key up after its third failed try.
    /// let controller = Controller::new(queue, 2).error_policy(
    ///     |_key: &String, _error: &std::io::Error, attempt: u32| {
    ///         if attempt >= 3 { Action::Done } else { Action::RequeueRateLimited }
    ///     },
    /// );
    /// # let _ = controller;
    /// ```
    pub fn error_policy<P2>(self, policy: P2) -> Controller<T, Q, P2> {
        Controller {
            queue: self.queue,
            workers: self.workers,
            resync: self.resync,
            metrics: self.metrics,
            #[cfg(feature = "events")]
            events: self.events,
            policy: Arc::new(policy),
            counters: self.counters,
            causes: self.causes,
        }
    }

    #[cfg(feature = "events")]
    /// Records a Warning event for every failure, about the object
    /// `object_of` names for the key; its reason is the error policy's
    /// ([`RECONCILE_ERROR`] by default).
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
        // The lister is user code: a panic in it skips this round (told
        // in the log) instead of ending the resync loop for good.
        let keys = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lister())) {
            Ok(keys) => keys,
            Err(panic) => {
                let message = crate::crash::panic_message(panic.as_ref());
                tracing::error!(queue = self.queue.name(), panic = %message, "the resync lister panicked; this round is skipped");
                return;
            }
        };
        for key in keys {
            // Noted before the add: a worker may take the key at once.
            let noted = self.causes.note(&key, Cause::Resync).then(|| key.clone());
            let added = self.queue.add_with(key, opts).await;
            if let Some(key) = noted
                && !added.as_ref().is_ok_and(|&added| made_pending(added))
            {
                self.causes.withdraw(&key, Cause::Resync);
            }
            if added.is_err() {
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
