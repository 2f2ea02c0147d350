//! A metrics provider that keeps every value in memory, for tests and
//! in-process dashboards.

use super::{CounterMetric, GaugeMetric, HistogramMetric, MetricsProvider, SettableGaugeMetric};
use crate::sync::{Arc, Mutex, lock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Records the metrics of every queue built with it, by queue name.
///
/// Histograms keep every observation, so use it for tests and bounded runs.
#[derive(Debug, Default)]
pub struct InMemoryMetrics {
    queues: Mutex<HashMap<String, Arc<QueueRecord>>>,
}

impl InMemoryMetrics {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of queue `name`, if a queue of that name was built with this provider.
    pub fn queue(&self, name: &str) -> Option<Arc<QueueRecord>> {
        lock(&self.queues).get(name).cloned()
    }

    fn record(&self, name: &str) -> Arc<QueueRecord> {
        lock(&self.queues)
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// The current values of one queue's metrics.
#[derive(Debug, Default)]
pub struct QueueRecord {
    depth: AtomicI64,
    adds: AtomicU64,
    retries: AtomicU64,
    latency: Mutex<Vec<f64>>,
    work_duration: Mutex<Vec<f64>>,
    unfinished_work: Mutex<Option<f64>>,
    longest_running: Mutex<Option<f64>>,
    ticks: AtomicU64,
    lease_expired: AtomicU64,
    lease_lost: AtomicU64,
}

impl QueueRecord {
    /// `workqueue_depth`.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::SeqCst)
    }
    /// `workqueue_adds_total`.
    pub fn adds(&self) -> u64 {
        self.adds.load(Ordering::SeqCst)
    }
    /// `workqueue_retries_total`.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::SeqCst)
    }
    /// Every `workqueue_queue_duration_seconds` observation, in order.
    pub fn latency(&self) -> Vec<f64> {
        lock(&self.latency).clone()
    }
    /// Every `workqueue_work_duration_seconds` observation, in order.
    pub fn work_duration(&self) -> Vec<f64> {
        lock(&self.work_duration).clone()
    }
    /// The last `workqueue_unfinished_work_seconds` value, if ever set.
    pub fn unfinished_work(&self) -> Option<f64> {
        *lock(&self.unfinished_work)
    }
    /// The last `workqueue_longest_running_processor_seconds` value, if ever set.
    pub fn longest_running(&self) -> Option<f64> {
        *lock(&self.longest_running)
    }
    /// `workqueue_lease_expired_total` (engines with leases).
    pub fn lease_expired(&self) -> u64 {
        self.lease_expired.load(Ordering::SeqCst)
    }
    /// `workqueue_lease_lost_total` (engines with leases).
    pub fn lease_lost(&self) -> u64 {
        self.lease_lost.load(Ordering::SeqCst)
    }
    /// How many times the unfinished-work pair was set (one per 500 ms tick).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }
}

/// One metric handle: the shared record plus which field it moves.
struct Handle(Arc<QueueRecord>, Field);

#[derive(Clone, Copy)]
enum Field {
    Depth,
    Adds,
    Retries,
    Latency,
    WorkDuration,
    Unfinished,
    Longest,
    LeaseExpired,
    LeaseLost,
}

impl GaugeMetric for Handle {
    fn inc(&self) {
        self.0.depth.fetch_add(1, Ordering::SeqCst);
    }
    fn dec(&self) {
        self.0.depth.fetch_sub(1, Ordering::SeqCst);
    }
    fn set_value(&self, value: i64) {
        self.0.depth.store(value, Ordering::SeqCst);
    }
}

impl CounterMetric for Handle {
    fn inc(&self) {
        let counter = match self.1 {
            Field::Retries => &self.0.retries,
            Field::LeaseExpired => &self.0.lease_expired,
            Field::LeaseLost => &self.0.lease_lost,
            _ => &self.0.adds,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl HistogramMetric for Handle {
    fn observe(&self, value: f64) {
        let series = match self.1 {
            Field::Latency => &self.0.latency,
            _ => &self.0.work_duration,
        };
        lock(series).push(value);
    }
}

impl SettableGaugeMetric for Handle {
    fn set(&self, value: f64) {
        if let Field::Longest = self.1 {
            *lock(&self.0.longest_running) = Some(value);
            self.0.ticks.fetch_add(1, Ordering::SeqCst);
        } else {
            *lock(&self.0.unfinished_work) = Some(value);
        }
    }
}

impl InMemoryMetrics {
    fn handle(&self, name: &str, field: Field) -> Box<Handle> {
        Box::new(Handle(self.record(name), field))
    }
}

impl MetricsProvider for InMemoryMetrics {
    fn new_depth_metric(&self, name: &str) -> Box<dyn GaugeMetric> {
        self.handle(name, Field::Depth)
    }
    fn new_adds_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        self.handle(name, Field::Adds)
    }
    fn new_latency_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        self.handle(name, Field::Latency)
    }
    fn new_work_duration_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        self.handle(name, Field::WorkDuration)
    }
    fn new_unfinished_work_seconds_metric(&self, name: &str) -> Box<dyn SettableGaugeMetric> {
        self.handle(name, Field::Unfinished)
    }
    fn new_longest_running_processor_seconds_metric(
        &self,
        name: &str,
    ) -> Box<dyn SettableGaugeMetric> {
        self.handle(name, Field::Longest)
    }
    fn new_retries_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        self.handle(name, Field::Retries)
    }
    fn new_lease_expired_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        self.handle(name, Field::LeaseExpired)
    }
    fn new_lease_lost_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        self.handle(name, Field::LeaseLost)
    }
}
