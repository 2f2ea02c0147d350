//! client-go's workqueue metrics and controller-runtime's controller
//! metrics as OpenTelemetry instruments, with the same names, help texts
//! and buckets as the Prometheus providers.

use super::names::*;
use super::{
    ControllerMetrics, CounterMetric, GaugeMetric, HistogramMetric, MetricsProvider,
    ReconcileResult, SettableGaugeMetric,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A [`MetricsProvider`] that records client-go's workqueue metrics with an
/// OpenTelemetry [`Meter`]: `workqueue_depth`, `workqueue_adds_total`,
/// `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`
/// (client-go's buckets, 1e-8 s to 10 s), `workqueue_unfinished_work_seconds`,
/// `workqueue_longest_running_processor_seconds`, `workqueue_retries_total`
/// and, for engines with leases, `workqueue_lease_expired_total` and
/// `workqueue_lease_lost_total`; each with the attribute `name` = the queue.
///
/// ```
/// use opentelemetry::metrics::MeterProvider;
/// use requeue::metrics::OtelMetrics;
/// use requeue::queue::WorkQueue;
/// use std::sync::Arc;
///
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let metrics = OtelMetrics::new(&provider.meter("requeue"));
/// let queue = WorkQueue::builder().name("pods").metrics(Arc::new(metrics)).build();
/// queue.add("default/web".to_string()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OtelMetrics {
    depth: Gauge<i64>,
    adds: Counter<u64>,
    latency: Histogram<f64>,
    work_duration: Histogram<f64>,
    unfinished_work: Gauge<f64>,
    longest_running: Gauge<f64>,
    retries: Counter<u64>,
    lease_expired: Counter<u64>,
    lease_lost: Counter<u64>,
}

impl OtelMetrics {
    /// The workqueue instruments, made with `meter`.
    pub fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, help: &'static str| {
            meter
                .f64_histogram(name)
                .with_description(help)
                .with_unit("s")
                .with_boundaries(CLIENT_GO_SECONDS_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, help: &'static str| {
            meter
                .u64_counter(format!("{name}_total"))
                .with_description(help)
                .build()
        };
        let gauge = |name: &'static str, help: &'static str| {
            meter
                .f64_gauge(name)
                .with_description(help)
                .with_unit("s")
                .build()
        };
        OtelMetrics {
            depth: meter.i64_gauge(DEPTH).with_description(DEPTH_HELP).build(),
            adds: counter(ADDS, ADDS_HELP),
            latency: seconds(QUEUE_DURATION, QUEUE_DURATION_HELP),
            work_duration: seconds(WORK_DURATION, WORK_DURATION_HELP),
            unfinished_work: gauge(UNFINISHED_WORK, UNFINISHED_WORK_HELP),
            longest_running: gauge(LONGEST_RUNNING, LONGEST_RUNNING_HELP),
            retries: counter(RETRIES, RETRIES_HELP),
            lease_expired: counter(LEASE_EXPIRED, LEASE_EXPIRED_HELP),
            lease_lost: counter(LEASE_LOST, LEASE_LOST_HELP),
        }
    }
}

fn queue(name: &str) -> Arc<[KeyValue]> {
    Arc::new([KeyValue::new("name", name.to_string())])
}

/// The depth: OpenTelemetry gauges are recorded whole, so the count is kept
/// here and recorded after each change.
struct DepthHandle {
    gauge: Gauge<i64>,
    value: AtomicI64,
    attributes: Arc<[KeyValue]>,
}

impl GaugeMetric for DepthHandle {
    fn inc(&self) {
        let value = self.value.fetch_add(1, Ordering::SeqCst) + 1;
        self.gauge.record(value, &self.attributes);
    }
    fn dec(&self) {
        let value = self.value.fetch_sub(1, Ordering::SeqCst) - 1;
        self.gauge.record(value, &self.attributes);
    }
    fn set_value(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst);
        self.gauge.record(value, &self.attributes);
    }
}

struct CounterHandle(Counter<u64>, Arc<[KeyValue]>);

impl CounterMetric for CounterHandle {
    fn inc(&self) {
        self.0.add(1, &self.1);
    }
}

struct HistogramHandle(Histogram<f64>, Arc<[KeyValue]>);

impl HistogramMetric for HistogramHandle {
    fn observe(&self, value: f64) {
        self.0.record(value, &self.1);
    }
}

struct SecondsGaugeHandle(Gauge<f64>, Arc<[KeyValue]>);

impl SettableGaugeMetric for SecondsGaugeHandle {
    fn set(&self, value: f64) {
        self.0.record(value, &self.1);
    }
}

impl MetricsProvider for OtelMetrics {
    fn new_depth_metric(&self, name: &str) -> Box<dyn GaugeMetric> {
        let handle = DepthHandle {
            gauge: self.depth.clone(),
            value: AtomicI64::new(0),
            attributes: queue(name),
        };
        handle.set_value(0);
        Box::new(handle)
    }
    fn new_adds_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(CounterHandle(self.adds.clone(), queue(name)))
    }
    fn new_latency_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        Box::new(HistogramHandle(self.latency.clone(), queue(name)))
    }
    fn new_work_duration_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        Box::new(HistogramHandle(self.work_duration.clone(), queue(name)))
    }
    fn new_unfinished_work_seconds_metric(&self, name: &str) -> Box<dyn SettableGaugeMetric> {
        Box::new(SecondsGaugeHandle(
            self.unfinished_work.clone(),
            queue(name),
        ))
    }
    fn new_longest_running_processor_seconds_metric(
        &self,
        name: &str,
    ) -> Box<dyn SettableGaugeMetric> {
        Box::new(SecondsGaugeHandle(
            self.longest_running.clone(),
            queue(name),
        ))
    }
    fn new_retries_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(CounterHandle(self.retries.clone(), queue(name)))
    }
    fn new_lease_expired_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(CounterHandle(self.lease_expired.clone(), queue(name)))
    }
    fn new_lease_lost_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        Box::new(CounterHandle(self.lease_lost.clone(), queue(name)))
    }
}

/// controller-runtime's controller metrics as OpenTelemetry instruments,
/// for one controller (attribute `controller`):
/// `controller_runtime_reconcile_total` (with `result`),
/// `controller_runtime_reconcile_errors_total`,
/// `controller_runtime_terminal_reconcile_errors_total`,
/// `controller_runtime_reconcile_panics_total`,
/// `controller_runtime_reconcile_time_seconds` (controller-runtime's
/// buckets), `controller_runtime_active_workers` and
/// `controller_runtime_max_concurrent_reconciles`.
#[derive(Debug, Clone)]
pub struct OtelControllerMetrics {
    total: Counter<u64>,
    errors: Counter<u64>,
    terminal: Counter<u64>,
    panics: Counter<u64>,
    time: Histogram<f64>,
    active: UpDownCounter<i64>,
    max_concurrent: Gauge<i64>,
    controller: Arc<[KeyValue]>,
    name: String,
}

impl OtelControllerMetrics {
    /// The instruments of controller `name`, made with `meter`.
    pub fn new(meter: &Meter, name: &str) -> Self {
        let counter = |metric: &'static str, help: &'static str| {
            meter
                .u64_counter(format!("{metric}_total"))
                .with_description(help)
                .build()
        };
        OtelControllerMetrics {
            total: counter(RECONCILE, RECONCILE_HELP),
            errors: counter(RECONCILE_ERRORS, RECONCILE_ERRORS_HELP),
            terminal: counter(TERMINAL_ERRORS, TERMINAL_ERRORS_HELP),
            panics: counter(RECONCILE_PANICS, RECONCILE_PANICS_HELP),
            time: meter
                .f64_histogram(RECONCILE_TIME)
                .with_description(RECONCILE_TIME_HELP)
                .with_unit("s")
                .with_boundaries(RECONCILE_TIME_BUCKETS.to_vec())
                .build(),
            active: meter
                .i64_up_down_counter(ACTIVE_WORKERS)
                .with_description(ACTIVE_WORKERS_HELP)
                .build(),
            max_concurrent: meter
                .i64_gauge(MAX_CONCURRENT)
                .with_description(MAX_CONCURRENT_HELP)
                .build(),
            controller: Arc::new([KeyValue::new("controller", name.to_string())]),
            name: name.to_string(),
        }
    }
}

impl ControllerMetrics for OtelControllerMetrics {
    fn reconciled(&self, result: ReconcileResult) {
        self.total.add(
            1,
            &[
                KeyValue::new("controller", self.name.clone()),
                KeyValue::new("result", result.as_str()),
            ],
        );
        if result == ReconcileResult::Error {
            self.errors.add(1, &self.controller);
        }
    }
    fn panicked(&self) {
        self.panics.add(1, &self.controller);
    }
    fn active_workers(&self, delta: i64) {
        self.active.add(delta, &self.controller);
    }
    fn max_concurrent_reconciles(&self, workers: usize) {
        let workers = i64::try_from(workers).unwrap_or(i64::MAX);
        self.max_concurrent.record(workers, &self.controller);
    }
    fn reconcile_time(&self, seconds: f64) {
        self.time.record(seconds, &self.controller);
    }
    fn terminal_error(&self) {
        self.terminal.add(1, &self.controller);
    }
}
