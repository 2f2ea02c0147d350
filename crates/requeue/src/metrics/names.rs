//! The metric names, help texts and buckets of client-go's workqueue and
//! controller-runtime's controller series, shared by every provider so
//! that each exposes the same series.

/// `workqueue_depth`.
pub(crate) const DEPTH: &str = "workqueue_depth";
/// Exposed as `workqueue_adds_total` (OpenMetrics adds the counter suffix).
pub(crate) const ADDS: &str = "workqueue_adds";
/// `workqueue_queue_duration_seconds`.
pub(crate) const QUEUE_DURATION: &str = "workqueue_queue_duration_seconds";
/// `workqueue_work_duration_seconds`.
pub(crate) const WORK_DURATION: &str = "workqueue_work_duration_seconds";
/// `workqueue_unfinished_work_seconds`.
pub(crate) const UNFINISHED_WORK: &str = "workqueue_unfinished_work_seconds";
/// `workqueue_longest_running_processor_seconds`.
pub(crate) const LONGEST_RUNNING: &str = "workqueue_longest_running_processor_seconds";
/// Exposed as `workqueue_retries_total`.
pub(crate) const RETRIES: &str = "workqueue_retries";
/// Exposed as `workqueue_lease_expired_total` (engines with leases).
pub(crate) const LEASE_EXPIRED: &str = "workqueue_lease_expired";
/// Exposed as `workqueue_lease_lost_total` (engines with leases).
pub(crate) const LEASE_LOST: &str = "workqueue_lease_lost";

pub(crate) const DEPTH_HELP: &str = "Current depth of workqueue";
pub(crate) const ADDS_HELP: &str = "Total number of adds handled by workqueue";
pub(crate) const QUEUE_DURATION_HELP: &str =
    "How long in seconds an item stays in workqueue before being requested.";
pub(crate) const WORK_DURATION_HELP: &str =
    "How long in seconds processing an item from workqueue takes.";
pub(crate) const UNFINISHED_WORK_HELP: &str = "How many seconds of work has done that is in progress and \
     hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce \
     the number of stuck threads by observing the rate at which this increases.";
pub(crate) const LONGEST_RUNNING_HELP: &str =
    "How many seconds has the longest running processor for workqueue been running.";
pub(crate) const RETRIES_HELP: &str = "Total number of retries handled by workqueue";
pub(crate) const LEASE_EXPIRED_HELP: &str =
    "Total number of leases that ran out and were reaped (the holder presumed dead)";
pub(crate) const LEASE_LOST_HELP: &str =
    "Total number of ends refused because the holder's lease had been lost";

/// client-go's queue-time and work-time buckets: 1e-8 s, factor 10, 10
/// buckets (1e-8 … 10 s).
pub(crate) const CLIENT_GO_SECONDS_BUCKETS: [f64; 10] =
    [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// controller-runtime's buckets of `reconcile_time_seconds`: fine below a
/// second, where most reconciles end, up to a minute.
pub(crate) const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

/// Exposed as `controller_runtime_reconcile_total{controller, result}`.
pub(crate) const RECONCILE: &str = "controller_runtime_reconcile";
pub(crate) const RECONCILE_HELP: &str = "Total number of reconciliations per controller";
/// Exposed as `controller_runtime_reconcile_errors_total`.
pub(crate) const RECONCILE_ERRORS: &str = "controller_runtime_reconcile_errors";
pub(crate) const RECONCILE_ERRORS_HELP: &str =
    "Total number of reconciliation errors per controller";
/// Exposed as `controller_runtime_reconcile_panics_total`.
pub(crate) const RECONCILE_PANICS: &str = "controller_runtime_reconcile_panics";
pub(crate) const RECONCILE_PANICS_HELP: &str =
    "Total number of reconciliation panics per controller";
/// Exposed as `controller_runtime_terminal_reconcile_errors_total`.
pub(crate) const TERMINAL_ERRORS: &str = "controller_runtime_terminal_reconcile_errors";
pub(crate) const TERMINAL_ERRORS_HELP: &str =
    "Total number of terminal reconciliation errors per controller";
/// `controller_runtime_reconcile_time_seconds`.
pub(crate) const RECONCILE_TIME: &str = "controller_runtime_reconcile_time_seconds";
pub(crate) const RECONCILE_TIME_HELP: &str = "Length of time per reconciliation per controller";
/// `controller_runtime_active_workers`.
pub(crate) const ACTIVE_WORKERS: &str = "controller_runtime_active_workers";
pub(crate) const ACTIVE_WORKERS_HELP: &str = "Number of currently used workers per controller";
/// `controller_runtime_max_concurrent_reconciles`.
pub(crate) const MAX_CONCURRENT: &str = "controller_runtime_max_concurrent_reconciles";
pub(crate) const MAX_CONCURRENT_HELP: &str =
    "Maximum number of concurrent reconciles per controller";
