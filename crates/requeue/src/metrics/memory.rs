//! A metrics provider that keeps every value in memory, for tests and
//! in-process dashboards.

use super::{CounterMetric, GaugeMetric, HistogramMetric, MetricsProvider, SettableGaugeMetric};
use crate::sync::{Arc, Mutex, lock};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How many observations each histogram of an [`InMemoryMetrics`] keeps
/// by default: the most recent ones (800 KB per histogram when full).
pub const DEFAULT_MAX_OBSERVATIONS: usize = 100_000;

/// Records the metrics of every queue built with it, by queue name.
///
/// Histograms keep their observations in order, up to
/// [`DEFAULT_MAX_OBSERVATIONS`] each (see
/// [`with_max_observations`](Self::with_max_observations)): past that the
/// oldest is dropped for each new one, so a long run costs bounded memory.
/// Drops are counted ([`QueueRecord::dropped_observations`]) and the first
/// is logged.
///
/// ```
/// use std::sync::Arc;
/// use requeue::metrics::{HistogramMetric, InMemoryMetrics, MetricsProvider};
///
/// let metrics = InMemoryMetrics::new().with_max_observations(2);
/// let latency = metrics.new_latency_metric("pods");
/// for seconds in [0.1, 0.2, 0.3] {
///     latency.observe(seconds);
/// }
/// let pods = metrics.queue("pods").expect("registered");
/// assert_eq!(pods.latency(), [0.2, 0.3]);
/// assert_eq!(pods.dropped_observations(), 1);
/// ```
#[derive(Debug)]
pub struct InMemoryMetrics {
    /// One record per queue name built with this provider: the program's
    /// set of queues bounds it (records are never removed, like metric series).
    queues: Mutex<HashMap<String, Arc<QueueRecord>>>,
    max_observations: usize,
}

impl Default for InMemoryMetrics {
    fn default() -> Self {
        InMemoryMetrics {
            queues: Mutex::new(HashMap::new()),
            max_observations: DEFAULT_MAX_OBSERVATIONS,
        }
    }
}

impl InMemoryMetrics {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `max` observations (at least one) per histogram of
    /// the queues built from now on, instead of [`DEFAULT_MAX_OBSERVATIONS`].
    pub fn with_max_observations(mut self, max: usize) -> Self {
        self.max_observations = max.max(1);
        self
    }

    /// The record of queue `name`, if a queue of that name was built with this provider.
    pub fn queue(&self, name: &str) -> Option<Arc<QueueRecord>> {
        lock(&self.queues).get(name).cloned()
    }

    fn record(&self, name: &str) -> Arc<QueueRecord> {
        lock(&self.queues)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(QueueRecord::with_max_observations(self.max_observations)))
            .clone()
    }
}

/// One histogram's most recent observations.
#[derive(Debug, Default)]
struct Observations {
    /// At most the record's `max_observations`: the oldest goes first.
    kept: VecDeque<f64>,
}

/// The current values of one queue's metrics.
#[derive(Debug)]
pub struct QueueRecord {
    depth: AtomicI64,
    adds: AtomicU64,
    retries: AtomicU64,
    latency: Mutex<Observations>,
    work_duration: Mutex<Observations>,
    /// The most observations each histogram keeps.
    max_observations: usize,
    /// Observations dropped (the oldest) to stay within `max_observations`.
    dropped: AtomicU64,
    unfinished_work: Mutex<Option<f64>>,
    longest_running: Mutex<Option<f64>>,
    ticks: AtomicU64,
    lease_expired: AtomicU64,
    lease_lost: AtomicU64,
}

impl Default for QueueRecord {
    fn default() -> Self {
        Self::with_max_observations(DEFAULT_MAX_OBSERVATIONS)
    }
}

impl QueueRecord {
    fn with_max_observations(max_observations: usize) -> Self {
        QueueRecord {
            depth: AtomicI64::new(0),
            adds: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            latency: Mutex::new(Observations::default()),
            work_duration: Mutex::new(Observations::default()),
            max_observations: max_observations.max(1),
            dropped: AtomicU64::new(0),
            unfinished_work: Mutex::new(None),
            longest_running: Mutex::new(None),
            ticks: AtomicU64::new(0),
            lease_expired: AtomicU64::new(0),
            lease_lost: AtomicU64::new(0),
        }
    }

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
    /// The `workqueue_queue_duration_seconds` observations, in order: every
    /// one, or the most recent ones once more were made than are kept.
    pub fn latency(&self) -> Vec<f64> {
        lock(&self.latency).kept.iter().copied().collect()
    }
    /// The `workqueue_work_duration_seconds` observations, in order: every
    /// one, or the most recent ones once more were made than are kept.
    pub fn work_duration(&self) -> Vec<f64> {
        lock(&self.work_duration).kept.iter().copied().collect()
    }
    /// How many observations (of either histogram) were dropped, the
    /// oldest first, to keep at most the provider's maximum per histogram.
    pub fn dropped_observations(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
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
        let record = &self.0;
        let series = match self.1 {
            Field::Latency => &record.latency,
            _ => &record.work_duration,
        };
        let mut series = lock(series);
        if series.kept.len() >= record.max_observations {
            series.kept.pop_front();
            if record.dropped.fetch_add(1, Ordering::SeqCst) == 0 {
                tracing::warn!(
                    max = record.max_observations,
                    "in-memory metrics: histogram full; dropping the oldest observations"
                );
            }
        }
        series.kept.push_back(value);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram observed far past its cap keeps the cap's worth of the
    /// most recent values and counts the rest as dropped. Before the cap,
    /// every observation was kept for the life of the provider.
    #[test]
    fn histograms_keep_at_most_the_cap_and_count_what_they_drop() {
        let metrics = InMemoryMetrics::new();
        let work = metrics.new_work_duration_metric("q");
        let extra = 5_000;
        for i in 0..DEFAULT_MAX_OBSERVATIONS + extra {
            work.observe(i as f64);
        }
        let record = metrics.queue("q").expect("registered");
        let kept = record.work_duration();
        assert_eq!(kept.len(), DEFAULT_MAX_OBSERVATIONS);
        assert_eq!(kept.first().copied(), Some(extra as f64), "the oldest went");
        assert_eq!(record.dropped_observations(), extra as u64);
        assert!(
            record.latency().is_empty(),
            "each histogram has its own cap"
        );
    }
}
