//! Delays and rate-limited re-adds (client-go's delaying and rate-limiting
//! queue tests, docs/behaviour.md §3.7, §3.8, §8.2), on a FakeClock:
//! `advance` promotes due items before it returns, so no test waits on
//! real time.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::limiter::ItemExponential;
use requeue::queue::{Added, WorkQueue};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fake() -> (FakeClock, WorkQueue<&'static str>) {
    let clock = FakeClock::new();
    let q = WorkQueue::builder().clock(clock.clone()).build();
    (clock, q)
}

fn take(q: &WorkQueue<&'static str>) -> Option<&'static str> {
    q.try_get().ok().map(|item| *item)
}

#[test]
fn simple_delay_is_invisible_until_due() {
    let (clock, q) = fake();
    q.add_after("foo", ms(50)).unwrap();
    assert_eq!(q.len(), 0);
    clock.advance(ms(49));
    assert_eq!(q.len(), 0);
    clock.advance(ms(11));
    assert_eq!(q.len(), 1);
    assert_eq!(take(&q), Some("foo"));
    clock.advance(Duration::from_secs(10));
    assert_eq!(q.len(), 0, "nothing further after the old heartbeat period");
}

#[test]
fn dedup_of_delays_keeps_the_earliest() {
    let (clock, q) = fake();
    q.add_after("foo", ms(50)).unwrap();
    assert_eq!(q.add_after("foo", ms(70)), Ok(Added::Merged));
    clock.advance(ms(60));
    assert_eq!(take(&q), Some("foo"));
    clock.advance(ms(20));
    assert_eq!(q.len(), 0, "nothing at 70 ms");

    q.add_after("foo", ms(50)).unwrap();
    assert!(matches!(
        q.add_after("foo", ms(30)),
        Ok(Added::Delayed { .. })
    ));
    clock.advance(ms(40));
    assert_eq!(take(&q), Some("foo"), "the earlier delay wins");
    clock.advance(ms(20));
    assert_eq!(q.len(), 0, "nothing at 50 ms");
}

#[test]
fn earlier_due_fires_first_and_later_adds_follow() {
    let (clock, q) = fake();
    q.add_after("foo", Duration::from_secs(1)).unwrap();
    q.add_after("bar", ms(50)).unwrap();
    clock.advance(ms(60));
    assert_eq!(take(&q), Some("bar"));
    q.add_after("foo", Duration::from_secs(2)).unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(take(&q), Some("foo"));
    clock.advance(Duration::from_secs(2));
    assert_eq!(q.len(), 0, "the later delay collapsed into the earlier one");
}

#[test]
fn items_due_together_are_queued_in_due_order() {
    let (clock, q) = fake();
    q.add_after("foo", Duration::from_secs(1)).unwrap();
    q.add_after("bar", ms(500)).unwrap();
    q.add_after("baz", ms(250)).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(q.len(), 3);
    assert_eq!(
        [take(&q), take(&q), take(&q)],
        [Some("baz"), Some("bar"), Some("foo")]
    );
}

#[test]
fn rate_limited_adds_follow_the_limiter_and_forget_resets() {
    let clock = FakeClock::new();
    let q: WorkQueue<&str> = WorkQueue::builder()
        .clock(clock.clone())
        .rate_limiter(ItemExponential::new(ms(1), Duration::from_secs(1)))
        .build();
    let due = |added| match added {
        Ok(Added::Delayed { at }) => at - clock.now(),
        other => panic!("expected a delay, got {other:?}"),
    };
    assert_eq!(due(q.add_rate_limited("one")), ms(1));
    // The limiter says 2 ms now, but "one" already waits for 1 ms: the earlier time stays.
    assert_eq!(q.add_rate_limited("one"), Ok(Added::Merged));
    assert_eq!(q.num_requeues(&"one"), 2);
    assert_eq!(due(q.add_rate_limited("two")), ms(1));
    assert_eq!(q.add_rate_limited("two"), Ok(Added::Merged));
    assert_eq!(q.num_requeues(&"two"), 2);
    q.forget(&"one");
    assert_eq!(q.num_requeues(&"one"), 0);
    clock.advance(ms(1));
    assert_eq!(q.len(), 2);
    take(&q);
    assert_eq!(
        due(q.add_rate_limited("one")),
        ms(1),
        "forgotten: back to the base delay"
    );
}

#[test]
fn rate_limiter_delays_grow_per_failure() {
    let clock = FakeClock::new();
    let q: WorkQueue<&str> = WorkQueue::builder()
        .clock(clock.clone())
        .rate_limiter(ItemExponential::new(ms(1), Duration::from_secs(1)))
        .build();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let Ok(Added::Delayed { at }) = q.add_rate_limited("one") else {
            panic!("expected a delay");
        };
        delays.push(at - clock.now());
        clock.advance(at - clock.now());
        q.try_get().expect("due").done();
    }
    assert_eq!(delays, [ms(1), ms(2), ms(4), ms(8)]);
}

#[test]
fn delayed_add_of_an_item_being_processed_waits_for_both() {
    let (clock, q) = fake();
    q.add("foo").unwrap();
    let item = q.try_get().expect("foo");
    q.add_after("foo", ms(10)).unwrap();
    clock.advance(ms(10));
    assert_eq!(q.len(), 0, "due, but still being processed");
    assert_eq!(q.snapshot().added_while_processing, 1);
    item.done();
    assert_eq!(take(&q), Some("foo"));
}

#[test]
fn a_huge_delay_saturates_instead_of_panicking() {
    let (clock, q) = fake();
    assert!(matches!(
        q.add_after("far", Duration::MAX),
        Ok(Added::Delayed { .. })
    ));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(q.len(), 0);
    assert_eq!(q.snapshot().delayed, 1);
}

#[test]
fn zero_delay_adds_at_once() {
    let (_clock, q) = fake();
    assert_eq!(q.add_after("now", Duration::ZERO), Ok(Added::Queued));
    assert_eq!(q.len(), 1);
}

#[test]
fn delays_on_the_real_clock_fire_without_any_thread_of_the_queue() {
    let q: WorkQueue<u32> = WorkQueue::new();
    let start = std::time::Instant::now();
    q.add_after(7, ms(20)).unwrap();
    let item = q.get_timeout(support::BOUND).expect("due item");
    assert_eq!(*item, 7);
    assert!(start.elapsed() >= ms(20));
}

#[test]
fn delays_before_the_queue_was_built_come_due_on_time() {
    // Found by the fuzzer: a fake clock set back a week before the queue's
    // creation, then a delayed add and a step past its time.
    let clock = FakeClock::new();
    let q: WorkQueue<u8> = WorkQueue::builder().clock(clock.clone()).build();
    let week = Duration::from_secs(7 * 24 * 3600);
    clock.set(clock.now() - week);
    assert!(matches!(
        q.add_after(1, Duration::from_millis(5)),
        Ok(Added::Delayed { .. })
    ));
    assert!(matches!(
        q.add_after(2, Duration::from_millis(3)),
        Ok(Added::Delayed { .. })
    ));
    clock.advance(Duration::from_millis(4));
    assert_eq!(q.snapshot().delayed, 1, "only the 3 ms item is due");
    clock.advance(Duration::from_millis(200));
    assert_eq!(q.snapshot().delayed, 0, "both are due, in due order");
    assert_eq!(*q.try_get().expect("due"), 2);
    assert_eq!(*q.try_get().expect("due"), 1);
}
