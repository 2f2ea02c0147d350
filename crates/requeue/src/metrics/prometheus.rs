//! A [`MetricsProvider`] backed by `prometheus-client`, exposing client-go's
//! workqueue metric families (component-base's `metrics/prometheus/workqueue`).
//!
//! The seven families are registered into the caller's
//! [`Registry`] (no hidden global), each labelled by `name` (the queue name).
//! They are registered as one collector so that the help texts are exposed
//! verbatim: `Registry::register` would append a full stop to every help text.
//!
//! OpenMetrics names a counter family without its `_total` suffix, so the
//! `# HELP`/`# TYPE` lines of the two counters read `workqueue_adds` and
//! `workqueue_retries`, while their samples are exactly client-go's
//! `workqueue_adds_total` and `workqueue_retries_total`.

use super::{CounterMetric, GaugeMetric, HistogramMetric, MetricsProvider, SettableGaugeMetric};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::names::*;

/// The labels of a queue's series: `name` (the queue name) and, as
/// controller-runtime labels its queues, `controller` with the same value
/// when asked for ([`PrometheusMetrics::with_controller_label`]).
type QueueLabels = Vec<(&'static str, String)>;

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<QueueLabels, Histogram, fn() -> Histogram>;

/// Client-go's buckets: 1e-8 s, factor 10, 10 buckets (1e-8 … 10 s).
fn seconds_histogram() -> Histogram {
    Histogram::new(CLIENT_GO_SECONDS_BUCKETS)
}

/// The seven families; cloning shares them.
///
/// Each family holds one series per queue name a queue was built with
/// (never removed, as in client-go): the program's set of queue names
/// bounds them. Names are chosen by the program, not by its input.
#[derive(Clone, Debug)]
struct Families {
    depth: Family<QueueLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    latency: HistogramFamily,
    work_duration: HistogramFamily,
    unfinished_work: Family<QueueLabels, FloatGauge>,
    longest_running: Family<QueueLabels, FloatGauge>,
    retries: Family<QueueLabels, Counter>,
    lease_expired: Family<QueueLabels, Counter>,
    lease_lost: Family<QueueLabels, Counter>,
}

/// Writes one family with its exact help text; an empty family (no queue
/// or controller yet) is left out, as the Go clients do.
pub(super) fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    if metric.is_empty() {
        return Ok(());
    }
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        family(&mut encoder, DEPTH, DEPTH_HELP, &self.depth)?;
        family(&mut encoder, ADDS, ADDS_HELP, &self.adds)?;
        family(
            &mut encoder,
            QUEUE_DURATION,
            QUEUE_DURATION_HELP,
            &self.latency,
        )?;
        family(
            &mut encoder,
            WORK_DURATION,
            WORK_DURATION_HELP,
            &self.work_duration,
        )?;
        family(
            &mut encoder,
            UNFINISHED_WORK,
            UNFINISHED_WORK_HELP,
            &self.unfinished_work,
        )?;
        family(
            &mut encoder,
            LONGEST_RUNNING,
            LONGEST_RUNNING_HELP,
            &self.longest_running,
        )?;
        family(&mut encoder, RETRIES, RETRIES_HELP, &self.retries)?;
        family(
            &mut encoder,
            LEASE_EXPIRED,
            LEASE_EXPIRED_HELP,
            &self.lease_expired,
        )?;
        family(&mut encoder, LEASE_LOST, LEASE_LOST_HELP, &self.lease_lost)
    }
}

/// Exposes the queues' metrics in a `prometheus-client` [`Registry`] under
/// client-go's names: `workqueue_depth`, `workqueue_adds_total`,
/// `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`,
/// `workqueue_unfinished_work_seconds`,
/// `workqueue_longest_running_processor_seconds` and `workqueue_retries_total`,
/// each labelled `name="<queue name>"` — plus, for engines with leases
/// (Redis), `workqueue_lease_expired_total` and `workqueue_lease_lost_total`.
///
/// ```
/// use std::sync::Arc;
/// use prometheus_client::registry::Registry;
/// use requeue::metrics::{PrometheusMetrics, encode_text};
/// use requeue::queue::WorkQueue;
///
/// let mut registry = Registry::default();
/// let metrics = PrometheusMetrics::new(&mut registry);
/// let queue = WorkQueue::builder().name("pods").metrics(Arc::new(metrics)).build();
/// queue.add("default/web".to_string()).unwrap();
/// assert!(encode_text(&registry).contains("workqueue_adds_total{name=\"pods\"} 1\n"));
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusMetrics {
    families: Families,
    /// Also label every series `controller="<queue name>"`.
    controller_label: bool,
}

impl PrometheusMetrics {
    /// Registers the seven workqueue families into `registry` and returns the
    /// provider feeding them. Call it once per registry: registering twice
    /// exposes every family twice.
    pub fn new(registry: &mut Registry) -> Self {
        let families = Families {
            depth: Family::default(),
            adds: Family::default(),
            latency: Family::new_with_constructor(seconds_histogram),
            work_duration: Family::new_with_constructor(seconds_histogram),
            unfinished_work: Family::default(),
            longest_running: Family::default(),
            retries: Family::default(),
            lease_expired: Family::default(),
            lease_lost: Family::default(),
        };
        registry.register_collector(Box::new(families.clone()));
        PrometheusMetrics {
            families,
            controller_label: false,
        }
    }

    /// As [`new`](PrometheusMetrics::new), with every series also labelled
    /// `controller="<queue name>"`, as controller-runtime labels the queue
    /// of each controller (`workqueue_depth{controller="pods",name="pods"}`),
    /// so that dashboards written for controller-runtime work unchanged.
    pub fn with_controller_label(registry: &mut Registry) -> Self {
        PrometheusMetrics {
            controller_label: true,
            ..PrometheusMetrics::new(registry)
        }
    }

    fn labels(&self, name: &str) -> QueueLabels {
        if self.controller_label {
            vec![("controller", name.to_string()), ("name", name.to_string())]
        } else {
            vec![("name", name.to_string())]
        }
    }
}

struct DepthHandle(Gauge);
struct CounterHandle(Counter);
struct HistogramHandle(Histogram);
struct FloatGaugeHandle(FloatGauge);

impl GaugeMetric for DepthHandle {
    fn inc(&self) {
        self.0.inc();
    }
    fn dec(&self) {
        self.0.dec();
    }
    fn set_value(&self, value: i64) {
        self.0.set(value);
    }
}

impl CounterMetric for CounterHandle {
    fn inc(&self) {
        self.0.inc();
    }
}

impl HistogramMetric for HistogramHandle {
    fn observe(&self, value: f64) {
        self.0.observe(value);
    }
}

impl SettableGaugeMetric for FloatGaugeHandle {
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl MetricsProvider for PrometheusMetrics {
    fn new_depth_metric(&self, name: &str) -> Box<dyn GaugeMetric> {
        let metric = self
            .families
            .depth
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(DepthHandle(metric))
    }

    fn new_adds_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let metric = self.families.adds.get_or_create(&self.labels(name)).clone();
        Box::new(CounterHandle(metric))
    }

    fn new_latency_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        let metric = self
            .families
            .latency
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(HistogramHandle(metric))
    }

    fn new_work_duration_metric(&self, name: &str) -> Box<dyn HistogramMetric> {
        let metric = self
            .families
            .work_duration
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(HistogramHandle(metric))
    }

    fn new_unfinished_work_seconds_metric(&self, name: &str) -> Box<dyn SettableGaugeMetric> {
        let metric = self
            .families
            .unfinished_work
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(FloatGaugeHandle(metric))
    }

    fn new_longest_running_processor_seconds_metric(
        &self,
        name: &str,
    ) -> Box<dyn SettableGaugeMetric> {
        let metric = self
            .families
            .longest_running
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(FloatGaugeHandle(metric))
    }

    fn new_retries_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let metric = self
            .families
            .retries
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(CounterHandle(metric))
    }

    fn new_lease_expired_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let metric = self
            .families
            .lease_expired
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(CounterHandle(metric))
    }

    fn new_lease_lost_metric(&self, name: &str) -> Box<dyn CounterMetric> {
        let metric = self
            .families
            .lease_lost
            .get_or_create(&self.labels(name))
            .clone();
        Box::new(CounterHandle(metric))
    }
}

/// Renders `registry` in the OpenMetrics text format (ending with `# EOF`).
pub fn encode_text(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would leave a
    // truncated exposition, which is still the best available answer.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
