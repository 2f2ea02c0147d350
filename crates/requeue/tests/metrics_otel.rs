//! The OpenTelemetry providers, read back through the SDK's in-memory
//! exporter: the same names, attributes, values and buckets as the
//! Prometheus providers.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use requeue::clock::FakeClock;
use requeue::controller::{Action, Controller};
use requeue::metrics::{OtelControllerMetrics, OtelMetrics};
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::sync::Arc;
use std::time::Duration;
use support::wait_until;

fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// The last export's metric called `name`.
fn metric<'a>(exported: &'a [ResourceMetrics], name: &str) -> &'a Metric {
    exported
        .iter()
        .rev()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn attribute(attributes: impl Iterator<Item = opentelemetry::KeyValue>, key: &str) -> String {
    attributes
        .into_iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
        .unwrap_or_default()
}

fn u64_sum(metric: &Metric, key: &str, value: &str) -> u64 {
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
            .data_points()
            .filter(|p| attribute(p.attributes().cloned(), key) == value)
            .map(|p| p.value())
            .sum(),
        other => panic!("{} is not a u64 sum: {other:?}", metric.name()),
    }
}

#[test]
fn the_workqueue_instruments_carry_client_go_names_values_and_buckets() {
    let (provider, exporter) = provider();
    let metrics = OtelMetrics::new(&provider.meter("requeue"));
    let clock = FakeClock::new();
    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("pods")
        .clock(clock.clone())
        .metrics(Arc::new(metrics))
        .build();
    queue.add("a".to_string()).unwrap();
    queue.add("b".to_string()).unwrap();
    queue.add("a".to_string()).unwrap(); // collapsed: not counted
    let item = queue.get().unwrap();
    clock.advance(Duration::from_millis(5));
    drop(item);
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();

    assert_eq!(
        u64_sum(metric(&exported, "workqueue_adds_total"), "name", "pods"),
        2
    );
    match metric(&exported, "workqueue_depth").data() {
        AggregatedMetrics::I64(MetricData::Gauge(gauge)) => {
            let point = gauge.data_points().next().unwrap();
            assert_eq!(point.value(), 1);
            assert_eq!(attribute(point.attributes().cloned(), "name"), "pods");
        }
        other => panic!("depth is not an i64 gauge: {other:?}"),
    }
    let work = metric(&exported, "workqueue_work_duration_seconds");
    assert_eq!(work.unit(), "s");
    match work.data() {
        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
            let point = histogram.data_points().next().unwrap();
            assert_eq!(point.count(), 1);
            assert!((point.sum() - 0.005).abs() < 1e-9, "{}", point.sum());
            let bounds: Vec<f64> = point.bounds().collect();
            assert_eq!(bounds.len(), 10);
            assert_eq!((bounds[0], bounds[9]), (1e-8, 10.0));
        }
        other => panic!("work duration is not an f64 histogram: {other:?}"),
    }
    assert!(
        work.description()
            .starts_with("How long in seconds processing an item"),
        "{}",
        work.description()
    );
}

#[test]
fn the_controller_instruments_follow_controller_runtime() {
    let (provider, exporter) = provider();
    let metrics = OtelControllerMetrics::new(&provider.meter("requeue"), "widgets");
    let clock = FakeClock::new();
    let queue: WorkQueue<String> = WorkQueue::builder().clock(clock.clone()).build();
    for key in ["ok", "slow", "give-up"] {
        queue.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue, 1)
        .metrics(Arc::new(metrics))
        .error_policy(|_key: &String, _error: &&str, _attempt: u32| Action::Done);
    let stop = Stop::new();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| match key.as_str() {
                "slow" => {
                    clock.advance(Duration::from_secs(2));
                    Ok(Action::Done)
                }
                "give-up" => Err("permanent"),
                _ => Ok(Action::Done),
            })
        });
        wait_until("three reconciles", || controller.counts().processed() == 3);
        stop.stop();
        run.join().unwrap();
    });
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let total = metric(&exported, "controller_runtime_reconcile_total");
    assert_eq!(u64_sum(total, "result", "success"), 2);
    assert_eq!(u64_sum(total, "result", "error"), 1);
    assert_eq!(
        u64_sum(
            metric(
                &exported,
                "controller_runtime_terminal_reconcile_errors_total"
            ),
            "controller",
            "widgets"
        ),
        1
    );
    match metric(&exported, "controller_runtime_reconcile_time_seconds").data() {
        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
            let point = histogram.data_points().next().unwrap();
            assert_eq!(point.count(), 3);
            assert!((point.sum() - 2.0).abs() < 1e-9);
            assert_eq!(point.bounds().count(), 40);
        }
        other => panic!("reconcile time is not an f64 histogram: {other:?}"),
    }
}
