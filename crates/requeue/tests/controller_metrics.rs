//! The metrics text after a scripted controller run: client-go's queue
//! series and controller-runtime's controller series with exact values.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use prometheus_client::registry::Registry;
use requeue::clock::FakeClock;
use requeue::controller::{Action, Controller};
use requeue::metrics::{PrometheusControllerMetrics, PrometheusMetrics, encode_text};
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::collections::HashMap;
use std::sync::Arc;
use support::wait_until;

/// Parses the exposition: `series value` lines, comments skipped.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_scripted_run_exposes_exact_queue_and_controller_series() {
    let mut registry = Registry::default();
    let queue_metrics = PrometheusMetrics::new(&mut registry);
    let controller_metrics = PrometheusControllerMetrics::new(&mut registry, "widgets");
    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("widgets")
        .clock(FakeClock::new())
        .metrics(Arc::new(queue_metrics))
        .build();
    for key in ["ok-1", "ok-2", "fail", "panic", "later"] {
        queue.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue.clone(), 2).metrics(Arc::new(controller_metrics));
    let stop = Stop::new();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| match key.as_str() {
                "fail" => Err("nope"),
                "panic" => panic!("handler bug"),
                "later" => Ok(Action::RequeueAfter(std::time::Duration::from_secs(60))),
                _ => Ok(Action::Done),
            })
        });
        wait_until("five reconciles", || controller.counts().processed() == 5);
        stop.stop();
        run.join().unwrap();
    });
    let text = encode_text(&registry);
    let values = samples(&text);
    let get = |series: &str| {
        values
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("missing {series} in\n{text}"))
    };
    assert_eq!(
        get(r#"controller_runtime_reconcile_total{controller="widgets",result="success"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_total{controller="widgets",result="error"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_total{controller="widgets",result="requeue_after"}"#),
        1.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_total{controller="widgets",result="requeue"}"#),
        0.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_errors_total{controller="widgets"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_panics_total{controller="widgets"}"#),
        1.0
    );
    assert_eq!(
        get(r#"controller_runtime_active_workers{controller="widgets"}"#),
        0.0
    );
    assert_eq!(
        get(r#"controller_runtime_max_concurrent_reconciles{controller="widgets"}"#),
        2.0
    );
    assert_eq!(get(r#"workqueue_adds_total{name="widgets"}"#), 5.0);
    assert_eq!(get(r#"workqueue_depth{name="widgets"}"#), 0.0);
    assert_eq!(
        get(r#"workqueue_retries_total{name="widgets"}"#),
        3.0,
        "two retries and one requeue-after"
    );
    assert_eq!(
        get(r#"workqueue_queue_duration_seconds_count{name="widgets"}"#),
        5.0
    );
    assert_eq!(
        get(r#"workqueue_work_duration_seconds_count{name="widgets"}"#),
        5.0
    );
    assert!(text.contains(
        "# HELP controller_runtime_reconcile Total number of reconciliations per controller"
    ));
}

/// controller-runtime's reconcile-time histogram (its buckets, on the
/// queue's clock) and terminal errors (failures the error policy gives up on).
#[test]
fn reconcile_time_and_terminal_errors_follow_controller_runtime() {
    let mut registry = Registry::default();
    let controller_metrics = PrometheusControllerMetrics::new(&mut registry, "w");
    let clock = FakeClock::new();
    let queue: WorkQueue<String> = WorkQueue::builder().clock(clock.clone()).build();
    for key in ["ok", "slow", "give-up"] {
        queue.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue.clone(), 1)
        .metrics(Arc::new(controller_metrics))
        .error_policy(|_key: &String, _error: &&str, _attempt: u32| Action::Done);
    let stop = Stop::new();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| match key.as_str() {
                "slow" => {
                    // The handler takes 2 s of the queue's clock.
                    clock.advance(std::time::Duration::from_secs(2));
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
    let text = encode_text(&registry);
    let values = samples(&text);
    let get = |series: &str| {
        values
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("missing {series} in\n{text}"))
    };
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_count{controller="w"}"#),
        3.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_sum{controller="w"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="w"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_bucket{le="1.75",controller="w"}"#),
        2.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_bucket{le="2.0",controller="w"}"#),
        3.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_time_seconds_bucket{le="60.0",controller="w"}"#),
        3.0
    );
    assert_eq!(
        get(r#"controller_runtime_terminal_reconcile_errors_total{controller="w"}"#),
        1.0
    );
    assert_eq!(
        get(r#"controller_runtime_reconcile_errors_total{controller="w"}"#),
        1.0
    );
    assert_eq!(queue.len(), 0, "given up: not retried");
}
