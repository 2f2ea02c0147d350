//! A metrics provider as cheap as a real one can be: every metric is one or
//! two relaxed atomics, and a histogram keeps only its count and sum. It
//! measures what the queue's metrics hooks cost (reading the clock,
//! calling through `dyn`), not what a particular exporter costs.

use requeue::metrics::{
    CounterMetric, GaugeMetric, HistogramMetric, MetricsProvider, SettableGaugeMetric,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The seven metrics of one queue, readable while the queue runs.
#[derive(Debug, Default)]
pub struct QueueCounters {
    depth: AtomicI64,
    adds: AtomicU64,
    latency: Histogram,
    work_duration: Histogram,
    unfinished_work: Settable,
    longest_running: Settable,
    retries: AtomicU64,
}

impl QueueCounters {
    /// `workqueue_depth`.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }
    /// `workqueue_adds_total`.
    pub fn adds(&self) -> u64 {
        self.adds.load(Ordering::Relaxed)
    }
    /// `workqueue_retries_total`.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Count and sum (seconds) of `workqueue_queue_duration_seconds`.
    pub fn latency(&self) -> (u64, f64) {
        self.latency.read()
    }
    /// Count and sum (seconds) of `workqueue_work_duration_seconds`.
    pub fn work_duration(&self) -> (u64, f64) {
        self.work_duration.read()
    }
    /// Last `workqueue_unfinished_work_seconds`.
    pub fn unfinished_work(&self) -> f64 {
        self.unfinished_work.get()
    }
    /// Last `workqueue_longest_running_processor_seconds`.
    pub fn longest_running(&self) -> f64 {
        self.longest_running.get()
    }
}

#[derive(Debug, Default)]
struct Histogram {
    count: AtomicU64,
    /// Sum in nanoseconds, so that adding is one `fetch_add`.
    sum_ns: AtomicU64,
}

impl Histogram {
    fn read(&self) -> (u64, f64) {
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (self.count.load(Ordering::Relaxed), sum)
    }
}

#[derive(Debug, Default)]
struct Settable(AtomicU64);

impl Settable {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A [`MetricsProvider`] of plain atomic counters, one [`QueueCounters`] per queue name.
#[derive(Debug, Default)]
pub struct CounterMetrics {
    queues: Mutex<HashMap<String, Arc<QueueCounters>>>,
}

impl CounterMetrics {
    /// A provider with no queue yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of the queue named `name`, once it was built.
    pub fn queue(&self, name: &str) -> Option<Arc<QueueCounters>> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn counters(&self, name: &str) -> Arc<QueueCounters> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.entry(name.to_string()).or_default().clone()
    }
}

/// One metric of a queue: which field of [`QueueCounters`] it moves.
struct Cell<const FIELD: u8>(Arc<QueueCounters>);

const DEPTH: u8 = 0;
const ADDS: u8 = 1;
const LATENCY: u8 = 2;
const WORK: u8 = 3;
const UNFINISHED: u8 = 4;
const LONGEST: u8 = 5;
const RETRIES: u8 = 6;

impl GaugeMetric for Cell<DEPTH> {
    fn inc(&self) {
        self.0.depth.fetch_add(1, Ordering::Relaxed);
    }
    fn dec(&self) {
        self.0.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CounterMetric for Cell<ADDS> {
    fn inc(&self) {
        self.0.adds.fetch_add(1, Ordering::Relaxed);
    }
}

impl CounterMetric for Cell<RETRIES> {
    fn inc(&self) {
        self.0.retries.fetch_add(1, Ordering::Relaxed);
    }
}

fn observe(h: &Histogram, seconds: f64) {
    h.count.fetch_add(1, Ordering::Relaxed);
    h.sum_ns
        .fetch_add((seconds.max(0.0) * 1e9) as u64, Ordering::Relaxed);
}

impl HistogramMetric for Cell<LATENCY> {
    fn observe(&self, value: f64) {
        observe(&self.0.latency, value);
    }
}

impl HistogramMetric for Cell<WORK> {
    fn observe(&self, value: f64) {
        observe(&self.0.work_duration, value);
    }
}

impl SettableGaugeMetric for Cell<UNFINISHED> {
    fn set(&self, value: f64) {
        self.0
            .unfinished_work
            .0
            .store(value.to_bits(), Ordering::Relaxed);
    }
}

impl SettableGaugeMetric for Cell<LONGEST> {
    fn set(&self, value: f64) {
        self.0
            .longest_running
            .0
            .store(value.to_bits(), Ordering::Relaxed);
    }
}

impl MetricsProvider for CounterMetrics {
    fn new_depth_metric(&self, name: &str) -> Box<dyn GaugeMetric> {
        Box::new(Cell::<DEPTH>(self.counters(name)))
    }
    fn new_adds_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(Cell::<ADDS>(self.counters(name)))
    }
    fn new_latency_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        Box::new(Cell::<LATENCY>(self.counters(name)))
    }
    fn new_work_duration_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        Box::new(Cell::<WORK>(self.counters(name)))
    }
    fn new_unfinished_work_seconds_metric(&self, name: &str) -> Box<dyn SettableGaugeMetric> {
        Box::new(Cell::<UNFINISHED>(self.counters(name)))
    }
    fn new_longest_running_processor_seconds_metric(
        &self,
        name: &str,
    ) -> Box<dyn SettableGaugeMetric> {
        Box::new(Cell::<LONGEST>(self.counters(name)))
    }
    fn new_retries_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(Cell::<RETRIES>(self.counters(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use requeue::queue::WorkQueue;

    #[test]
    fn counters_follow_the_queue() {
        let metrics = Arc::new(CounterMetrics::new());
        let queue = WorkQueue::builder()
            .name("bench")
            .metrics(metrics.clone())
            .build();
        queue.add("a".to_string()).expect("running");
        queue.add("b".to_string()).expect("running");
        queue.add("a".to_string()).expect("running");
        let counters = metrics.queue("bench").expect("registered at build");
        assert_eq!((counters.adds(), counters.depth()), (2, 2));
        queue.get().expect("queued").done();
        assert_eq!(counters.depth(), 1);
        assert_eq!(counters.latency().0, 1);
        assert_eq!(counters.work_duration().0, 1);
        queue
            .add_after("c".to_string(), std::time::Duration::ZERO)
            .expect("running");
        assert_eq!(counters.retries(), 1);
        assert!(counters.unfinished_work() >= 0.0 && counters.longest_running() >= 0.0);
        queue.shut_down();
    }
}
