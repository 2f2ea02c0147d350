//! The controller's metric hooks (controller-runtime's series).
//!
//! They live here, with the queue's hooks, so that `metrics` does not
//! depend on `controller` (the controller depends on them);
//! `requeue::controller` re-exports them where its users look for them.

/// How a reconcile ended, as controller-runtime's `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// The handler returned `Ok(Action::Done)`.
    Success,
    /// `Err(_)` or a panic.
    Error,
    /// `Ok(Action::Requeue)` or `Ok(Action::RequeueRateLimited)`.
    Requeue,
    /// `Ok(Action::RequeueAfter(_))`.
    RequeueAfter,
}

/// The label of a reconcile that returned `Ok(action)` (a failure is
/// [`ReconcileResult::Error`], whatever the error policy answered).
impl From<crate::handout::Action> for ReconcileResult {
    fn from(action: crate::handout::Action) -> Self {
        use crate::handout::Action;
        match action {
            Action::Done => ReconcileResult::Success,
            Action::Requeue | Action::RequeueRateLimited => ReconcileResult::Requeue,
            Action::RequeueAfter(_) => ReconcileResult::RequeueAfter,
        }
    }
}

impl ReconcileResult {
    /// The label value: `success`, `error`, `requeue` or `requeue_after`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Requeue => "requeue",
            ReconcileResult::RequeueAfter => "requeue_after",
        }
    }
}

/// Receives the controller's events for metrics (controller-runtime's
/// `controller_runtime_*` series); implementations must be quick.
pub trait ControllerMetrics: Send + Sync {
    /// One reconcile ended with `result` (errors and panics included).
    fn reconciled(&self, result: ReconcileResult);
    /// The handler panicked (counted in addition to the error).
    fn panicked(&self);
    /// A worker started (`+1`) or finished (`-1`) a reconcile.
    fn active_workers(&self, delta: i64);
    /// The run's worker count.
    fn max_concurrent_reconciles(&self, workers: usize);
    /// How long one reconcile took, in seconds (the handler's run, on the
    /// queue's clock; controller-runtime's `reconcile_time_seconds`).
    fn reconcile_time(&self, seconds: f64) {
        let _ = seconds;
    }
    /// A failed reconcile that will not be retried: the error policy
    /// answered [`Action::Done`](crate::handout::Action::Done)
    /// (controller-runtime's terminal errors).
    fn terminal_error(&self) {}
}
