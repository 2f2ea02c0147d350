//! The controller and its reconciler on a shared engine's queue, with
//! `Controller::run_async`: in this process (`--workers-procs 1`, on the
//! same queue handle as the update stream), and in each worker process.

use super::super::fleet::{self, Fleet};
use super::super::panics::PanicLog;
use super::super::reconcile::{AsyncReconciler, Odds};
use super::super::sample::InProcess;
use requeue::controller::{Controller, ControllerMetrics, Summary};
use requeue::engine::AsyncQueue;
use requeue::events::Recorder;
use requeue::wait::Stop;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The controller and its reconciler, on any engine's queue.
pub struct Here<Q: AsyncQueue<String>> {
    controller: Controller<String, Q>,
    reconciler: Arc<AsyncReconciler<Q>>,
}

impl<Q: AsyncQueue<String> + Clone + Send + Sync + 'static> Here<Q> {
    /// `workers` workers over `queue`, failing and panicking at `odds`,
    /// recording errors with `recorder`.
    pub fn new(
        queue: &Q,
        fleet: &Arc<Fleet>,
        odds: Odds,
        workers: u32,
        recorder: Recorder,
        metrics: Option<Arc<dyn ControllerMetrics>>,
    ) -> Self {
        let reconciler = Arc::new(AsyncReconciler {
            fleet: fleet.clone(),
            queue: queue.clone(),
            odds,
            requeued_after: AtomicU64::new(0),
        });
        let mut controller = Controller::new(queue.clone(), workers as usize)
            .record_errors(recorder, |key: &String| fleet::object_of(key));
        if let Some(metrics) = metrics {
            controller = controller.metrics(metrics);
        }
        Here {
            controller,
            reconciler,
        }
    }

    /// Runs the workers until `stop` fires and they have finished their keys.
    pub async fn run(&self, stop: &Stop) -> Summary {
        let reconciler = self.reconciler.clone();
        let handler = move |key: String| {
            let reconciler = reconciler.clone();
            async move { reconciler.reconcile(&key).await }
        };
        self.controller.run_async(stop, handler).await
    }

    /// The controller.
    pub fn controller(&self) -> &Controller<String, Q> {
        &self.controller
    }

    /// The reconciler (its fleet and counts).
    pub fn reconciler(&self) -> &AsyncReconciler<Q> {
        &self.reconciler
    }

    /// The view's source of the workers' numbers.
    pub fn workers<'a>(&'a self, panics: &'a PanicLog) -> InProcess<'a, Q> {
        InProcess {
            controller: &self.controller,
            requeued_after: &self.reconciler.requeued_after,
            panics,
        }
    }
}
