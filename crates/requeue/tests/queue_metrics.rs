//! The metric update points of docs/behaviour.md §5.1 (client-go's TestMetrics and
//! TestMetricShutdown), on a FakeClock with the in-memory provider.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::clock::FakeClock;
use requeue::metrics::{InMemoryMetrics, QueueRecord};
use requeue::queue::WorkQueue;
use std::sync::Arc;
use std::time::Duration;

fn metered(name: &str) -> (FakeClock, WorkQueue<&'static str>, Arc<QueueRecord>) {
    let clock = FakeClock::new();
    let metrics = Arc::new(InMemoryMetrics::new());
    let q = WorkQueue::builder()
        .name(name)
        .clock(clock.clone())
        .metrics(metrics.clone())
        .build();
    let record = metrics.queue(name).expect("registered");
    (clock, q, record)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn metrics_move_at_client_gos_points() {
    let (clock, q, m) = metered("test");
    // Line the second hand-out up 1 ms before the first 500 ms tick.
    clock.advance(Duration::from_micros(500_000 - 1_000 - 75));
    q.add("foo").unwrap();
    assert_eq!((m.adds(), m.depth()), (1, 1));
    clock.advance(Duration::from_micros(50));
    let item = q.get().expect("foo");
    assert_eq!(m.latency().len(), 1);
    assert!(close(m.latency()[0], 5e-5));
    for _ in 0..5 {
        q.add("foo").unwrap();
    }
    assert_eq!(
        (m.adds(), m.depth()),
        (2, 1),
        "re-adds while processing count once"
    );
    clock.advance(Duration::from_micros(25));
    item.done();
    assert!(close(m.work_duration()[0], 2.5e-5));
    assert_eq!(m.depth(), 1, "the re-added item is still pending");
    let item = q.get().expect("foo again");
    assert_eq!(m.latency().len(), 2);
    assert!(close(m.latency()[1], 2.5e-5));
    assert_eq!(m.ticks(), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(m.ticks(), 1, "the 500 ms tick fired");
    assert!(close(m.unfinished_work().expect("set"), 0.001));
    assert!(close(m.longest_running().expect("set"), 0.001));
    item.done();
    assert_eq!(m.work_duration().len(), 2);
    assert!(close(m.work_duration()[1], 0.001));
    assert_eq!(m.depth(), 0);
}

#[test]
fn the_unfinished_work_tick_stops_at_shutdown() {
    let (clock, q, m) = metered("shutdown");
    clock.advance(Duration::from_millis(500));
    clock.advance(Duration::from_millis(500));
    assert_eq!(m.ticks(), 2);
    q.shut_down();
    assert!(!clock.has_waiters(), "no timer left behind");
    clock.advance(Duration::from_secs(5));
    assert_eq!(m.ticks(), 2);
}

#[test]
fn retries_count_every_delayed_or_rate_limited_add_on_a_running_queue() {
    let (_clock, q, m) = metered("retries");
    q.add_after("a", Duration::from_secs(1)).unwrap();
    q.add_after("b", Duration::ZERO).unwrap();
    q.add_rate_limited("c").unwrap();
    q.add("d").unwrap();
    assert_eq!(m.retries(), 3);
    q.shut_down();
    let _ = q.add_after("e", Duration::from_secs(1));
    assert_eq!(m.retries(), 3, "refused adds are not counted");
}

#[test]
fn delayed_items_are_counted_in_depth_only_once_due() {
    let (clock, q, m) = metered("delayed");
    q.add_after("a", Duration::from_secs(1)).unwrap();
    assert_eq!((m.adds(), m.depth()), (0, 0));
    clock.advance(Duration::from_secs(1));
    assert_eq!((m.adds(), m.depth()), (1, 1));
    q.add("a").unwrap();
    assert_eq!(m.adds(), 1, "collapsed");
}

#[test]
fn unnamed_queues_record_nothing() {
    let metrics = Arc::new(InMemoryMetrics::new());
    let clock = FakeClock::new();
    let q: WorkQueue<u8> = WorkQueue::builder()
        .clock(clock.clone())
        .metrics(metrics.clone())
        .build();
    q.add(1).unwrap();
    assert!(metrics.queue("").is_none());
    assert!(!clock.has_waiters(), "no ticker without metrics");
}

#[test]
fn unfinished_work_sums_every_in_flight_item_and_forgets_finished_ones() {
    let (clock, q, m) = metered("in-flight");
    q.add("a").unwrap();
    q.add("b").unwrap();
    q.add("c").unwrap();
    let a = q.get().expect("a");
    clock.advance(Duration::from_millis(100));
    let b = q.get().expect("b");
    let c = q.get().expect("c");
    clock.advance(Duration::from_millis(400)); // the first tick, at 500 ms
    assert_eq!(m.ticks(), 1);
    assert!(close(m.unfinished_work().expect("set"), 0.5 + 0.4 + 0.4));
    assert!(close(m.longest_running().expect("set"), 0.5));
    a.done();
    drop(c);
    clock.advance(Duration::from_millis(500));
    assert!(
        close(m.unfinished_work().expect("set"), 0.9),
        "only b is left"
    );
    assert!(close(m.longest_running().expect("set"), 0.9));
    b.done();
    clock.advance(Duration::from_millis(500));
    assert!(close(m.unfinished_work().expect("set"), 0.0));
    assert!(close(m.longest_running().expect("set"), 0.0));
}
