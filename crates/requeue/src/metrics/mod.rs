//! Metrics hooks with client-go's metric set.
//!
//! # Usage
//!
//! A [`WorkQueue`](crate::queue::WorkQueue) built with a name and a
//! [`MetricsProvider`] asks the provider for its seven metrics once, at
//! construction, and updates them at exactly the points client-go does:
//!
//! | metric (Prometheus name in client-go) | kind | moves when |
//! |---|---|---|
//! | depth (`workqueue_depth`) | gauge | +1 when an item newly needs processing (also a re-add while it is processed), −1 when `get` hands it out |
//! | adds (`workqueue_adds_total`) | counter | with every depth +1 (collapsed duplicates are not counted) |
//! | latency (`workqueue_queue_duration_seconds`) | histogram | at `get`: time since the item's first add since its last `get` |
//! | work duration (`workqueue_work_duration_seconds`) | histogram | at `done`: time since the matching `get` |
//! | unfinished work (`workqueue_unfinished_work_seconds`) | settable gauge | every 500 ms of the queue's clock until shutdown: summed age of in-flight items |
//! | longest running processor (`workqueue_longest_running_processor_seconds`) | settable gauge | same tick: age of the oldest in-flight item |
//! | retries (`workqueue_retries_total`) | counter | every `add_after` / `add_rate_limited` call on a running queue, zero delays included |
//!
//! Without a provider (the default) or without a name, the queue keeps no
//! metric state, reads no clock for metrics and runs no ticker: the hooks
//! cost one branch. [`InMemoryMetrics`] records everything for tests and
//! dashboards; the Prometheus exporter implements the same trait.
//! With the `prometheus` feature, `PrometheusMetrics` registers client-go's
//! seven metric families in a `prometheus-client` registry, `encode_text`
//! renders it, and `serve_metrics` serves it at `/metrics` on a thread of
//! its own, with timeouts and a connection limit so that no client can keep
//! the scrapes from being answered.
//!
//! ```
//! use std::sync::Arc;
//! use requeue::metrics::InMemoryMetrics;
//! use requeue::queue::WorkQueue;
//!
//! let metrics = Arc::new(InMemoryMetrics::new());
//! let queue = WorkQueue::builder().name("pods").metrics(metrics.clone()).build();
//! queue.add("default/web".to_string()).unwrap();
//! queue.add("default/web".to_string()).unwrap(); // collapsed: not counted
//! let pods = metrics.queue("pods").expect("registered at construction");
//! assert_eq!((pods.adds(), pods.depth()), (1, 1));
//! drop(queue.get());
//! assert_eq!(pods.depth(), 0);
//! ```
//!
//! # Implementation
//!
//! The queue calls the hooks while holding its lock, as client-go does, so
//! the values are consistent with each other; hooks must be quick and must
//! not call back into the queue.

mod controller;
mod memory;
#[cfg(any(feature = "prometheus", feature = "opentelemetry"))]
mod names;
#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(feature = "prometheus")]
mod prometheus_controller;
#[cfg(feature = "prometheus")]
mod serve;

pub use controller::{ControllerMetrics, ReconcileResult};
pub use memory::{DEFAULT_MAX_OBSERVATIONS, InMemoryMetrics, QueueRecord};
#[cfg(feature = "opentelemetry")]
pub use otel::{OtelControllerMetrics, OtelMetrics};
#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusMetrics, encode_text};
#[cfg(feature = "prometheus")]
pub use prometheus_controller::PrometheusControllerMetrics;
#[cfg(feature = "prometheus")]
pub use serve::{MetricsServer, ServeOptions, serve_metrics, serve_metrics_with};

/// A gauge that moves up and down by one (`workqueue_depth`).
pub trait GaugeMetric: Send + Sync {
    /// Adds one.
    fn inc(&self);
    /// Subtracts one.
    fn dec(&self);
    /// Sets the value outright. Engines that learn the depth as a whole
    /// (the Redis engine reads it from every script reply) call this; the
    /// default does nothing, so implement it in providers used with them.
    fn set_value(&self, _value: i64) {}
}

/// A monotonically increasing counter.
pub trait CounterMetric: Send + Sync {
    /// Adds one.
    fn inc(&self);
}

/// A gauge that is set to a value.
pub trait SettableGaugeMetric: Send + Sync {
    /// Sets the value.
    fn set(&self, value: f64);
}

/// A distribution of observed values (seconds, for the queue's metrics).
pub trait HistogramMetric: Send + Sync {
    /// Records one observation.
    fn observe(&self, value: f64);
}

/// Creates the metrics of a named queue (client-go's `MetricsProvider`).
///
/// Each method is called once per queue, at construction, with the queue's name.
pub trait MetricsProvider: Send + Sync {
    /// `workqueue_depth`.
    fn new_depth_metric(&self, name: &str) -> Box<dyn GaugeMetric>;
    /// `workqueue_adds_total`.
    fn new_adds_metric(&self, name: &str) -> Box<dyn CounterMetric>;
    /// `workqueue_queue_duration_seconds`.
    fn new_latency_metric(&self, name: &str) -> Box<dyn HistogramMetric>;
    /// `workqueue_work_duration_seconds`.
    fn new_work_duration_metric(&self, name: &str) -> Box<dyn HistogramMetric>;
    /// `workqueue_unfinished_work_seconds`.
    fn new_unfinished_work_seconds_metric(&self, name: &str) -> Box<dyn SettableGaugeMetric>;
    /// `workqueue_longest_running_processor_seconds`.
    fn new_longest_running_processor_seconds_metric(
        &self,
        name: &str,
    ) -> Box<dyn SettableGaugeMetric>;
    /// `workqueue_retries_total`.
    fn new_retries_metric(&self, name: &str) -> Box<dyn CounterMetric>;

    /// `workqueue_lease_expired_total`: leases of queue `name` that ran out
    /// and were reaped (engines with leases only; the default counts nothing).
    fn new_lease_expired_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let _ = name;
        Box::new(Uncounted)
    }

    /// `workqueue_lease_lost_total`: ends refused because the holder's lease
    /// was gone (engines with leases only; the default counts nothing).
    fn new_lease_lost_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let _ = name;
        Box::new(Uncounted)
    }
}

/// A counter that counts nothing (the default of the lease metrics).
struct Uncounted;

impl CounterMetric for Uncounted {
    fn inc(&self) {}
}

/// The seven metrics of one queue.
/// One queue's metrics, made from a [`MetricsProvider`]: what an engine
/// reports to (the in-memory queue builds one itself; other engines, such
/// as `requeue-redis`, use [`QueueMetrics::new`]).
pub struct QueueMetrics {
    /// `workqueue_depth`.
    pub depth: Box<dyn GaugeMetric>,
    /// `workqueue_adds_total`.
    pub adds: Box<dyn CounterMetric>,
    /// `workqueue_queue_duration_seconds`.
    pub latency: Box<dyn HistogramMetric>,
    /// `workqueue_work_duration_seconds`.
    pub work_duration: Box<dyn HistogramMetric>,
    /// `workqueue_unfinished_work_seconds`.
    pub unfinished_work: Box<dyn SettableGaugeMetric>,
    /// `workqueue_longest_running_processor_seconds`.
    pub longest_running: Box<dyn SettableGaugeMetric>,
    /// `workqueue_retries_total`.
    pub retries: Box<dyn CounterMetric>,
    /// `workqueue_lease_expired_total` (engines with leases).
    pub lease_expired: Box<dyn CounterMetric>,
    /// `workqueue_lease_lost_total` (engines with leases).
    pub lease_lost: Box<dyn CounterMetric>,
}

impl std::fmt::Debug for QueueMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueMetrics")
    }
}

impl QueueMetrics {
    /// Creates client-go's seven metrics of queue `name` from `provider`
    /// (the lease counters count nothing: an engine without leases).
    pub fn new(provider: &dyn MetricsProvider, name: &str) -> Self {
        QueueMetrics {
            depth: provider.new_depth_metric(name),
            adds: provider.new_adds_metric(name),
            latency: provider.new_latency_metric(name),
            work_duration: provider.new_work_duration_metric(name),
            unfinished_work: provider.new_unfinished_work_seconds_metric(name),
            longest_running: provider.new_longest_running_processor_seconds_metric(name),
            retries: provider.new_retries_metric(name),
            lease_expired: Box::new(Uncounted),
            lease_lost: Box::new(Uncounted),
        }
    }

    /// As [`new`](QueueMetrics::new), plus the two lease counters, for
    /// engines with leases.
    pub fn with_leases(provider: &dyn MetricsProvider, name: &str) -> Self {
        QueueMetrics {
            lease_expired: provider.new_lease_expired_metric(name),
            lease_lost: provider.new_lease_lost_metric(name),
            ..QueueMetrics::new(provider, name)
        }
    }
}
