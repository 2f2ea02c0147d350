//! One test per deliberate deviation from client-go, numbered as in
//! docs/behaviour.md ("Deliberate deviations from client-go"):
//! `deviation_N_…` tests deviation N.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::FakeClock;
use requeue::limiter::RateLimiter;
use requeue::queue::{Added, GetError, ShutDown, WorkQueue};
use requeue::wait::Stop;
use std::thread;
use std::time::Duration;
use support::{Driver, wait_until};

fn fake() -> (FakeClock, WorkQueue<&'static str>) {
    let clock = FakeClock::new();
    (clock.clone(), WorkQueue::builder().clock(clock).build())
}

/// Deviation 1 (docs/behaviour.md): drain means drained.
#[test]
fn deviation_1_drain_waits_for_queued_items_and_wakes_every_drain_waiter() {
    let (_c, q) = fake();
    q.add("a").unwrap();
    q.add("b").unwrap();
    let drainers: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.shut_down_with_drain())
        })
        .collect();
    wait_until("shutdown begins", || q.is_shutting_down());
    assert!(
        drainers.iter().all(|d| !d.is_finished()),
        "nothing in flight, but items are queued"
    );
    q.get().expect("a").done();
    assert!(drainers.iter().all(|d| !d.is_finished()));
    q.get().expect("b").done();
    for d in drainers {
        d.join().expect("every drain waiter returns");
    }
}

/// Deviation 2 (docs/behaviour.md): a stray `done` is harmless.
#[test]
fn deviation_2_a_stray_done_is_harmless() {
    let (_c, q) = fake();
    q.add("queued").unwrap();
    assert!(!q.done(&"queued"), "not being processed");
    assert!(!q.done(&"unknown"));
    assert_eq!(q.len(), 1, "no duplicate was queued");
    let first = q.get().expect("queued");
    assert!(q.try_get().is_err());
    // An explicit done, then the item is handed out again...
    assert!(q.done(&"queued"));
    q.add("queued").unwrap();
    let second = q.get().expect("again");
    // ...and the stale guard's drop must not end the second hand-out.
    assert!(!first.done());
    assert_eq!(q.snapshot().processing, 1);
    assert!(second.done());
}

/// Deviation 3 (docs/behaviour.md): an immediate add wins over a pending delay.
#[test]
fn deviation_3_an_immediate_add_wins_over_a_pending_delay() {
    let (clock, q) = fake();
    assert!(matches!(
        q.add_after("x", Duration::from_secs(5 * 3600)),
        Ok(Added::Delayed { .. })
    ));
    assert_eq!(q.add("x"), Ok(Added::Queued));
    q.get().expect("x now").done();
    clock.advance(Duration::from_secs(5 * 3600));
    assert_eq!(q.len(), 0, "processed once, not again after 5 h");
    assert_eq!(q.snapshot().delayed, 0);
    q.add("y").unwrap();
    assert_eq!(
        q.add_after("y", Duration::from_secs(1)),
        Ok(Added::Merged),
        "already queued"
    );
}

/// Deviation 4 (docs/behaviour.md): shutdown stops everything at once and
/// hands back delayed items.
#[test]
fn deviation_4_shutdown_stops_the_timer_and_hands_back_delayed_items() {
    let (clock, q) = fake();
    q.add_after("later", Duration::from_secs(10)).unwrap();
    q.add_after("much-later", Duration::from_secs(20)).unwrap();
    q.add("now").unwrap();
    assert!(clock.has_waiters(), "the promotion timer is armed");
    let mut withdrawn = q.shut_down();
    withdrawn.sort();
    assert_eq!(withdrawn, ["later", "much-later"]);
    assert!(!clock.has_waiters(), "no timer left behind");
    clock.advance(Duration::from_secs(30));
    assert_eq!(q.get().map(|i| *i), Some("now"));
    assert!(q.get().is_none());
    assert!(
        q.shut_down().is_empty(),
        "a second shutdown reports nothing new"
    );
}

/// Deviation 5 (docs/behaviour.md): nothing blocks a producer.
#[test]
fn deviation_5_producers_never_block_and_refused_adds_hand_the_item_back() {
    let (_c, q) = fake();
    for i in 0..10_000u32 {
        let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
        q.add_after(key, Duration::from_secs(60)).unwrap();
    }
    assert_eq!(q.snapshot().delayed, 10_000);
    q.shut_down();
    assert_eq!(q.add("late"), Err(ShutDown("late")));
    assert_eq!(
        q.add_after("late", Duration::from_secs(1)),
        Err(ShutDown("late"))
    );
    assert_eq!(
        q.add_rate_limited("late").map_err(ShutDown::into_inner),
        Err("late")
    );
}

/// Deviation 6 (docs/behaviour.md): time never overflows.
#[test]
fn deviation_6_time_never_overflows() {
    let (clock, q) = fake();
    assert!(q.add_after("max", Duration::MAX).is_ok());
    assert!(
        q.add_after("max", Duration::MAX - Duration::from_nanos(1))
            .is_ok()
    );
    clock.advance(Duration::MAX);
    assert_eq!(q.get_timeout(Duration::MAX).map(|i| *i), Ok("max"));
}

/// Deviation 7 (docs/behaviour.md): waiting can end without shutting down.
#[test]
fn deviation_7_waits_end_by_deadline_or_stop_without_shutting_down() {
    let (clock, q) = fake();
    let stop = Stop::new();
    let waiter = {
        let (q, stop) = (q.clone(), stop.clone());
        thread::spawn(move || q.get_until(&stop).map(|i| *i))
    };
    wait_until("the waiter is in line", || q.snapshot().waiting_gets == 1);
    stop.stop();
    assert_eq!(waiter.join().expect("waiter"), Err(GetError::Stopped));
    let mut timed = Driver::new(q.get_timeout_async(Duration::from_secs(1)));
    assert!(timed.step().is_pending());
    clock.advance(Duration::from_secs(1));
    assert!(matches!(timed.finish(), Err(GetError::TimedOut)));
    assert!(!q.is_shutting_down());
}

/// Deviation 7 (docs/behaviour.md): waiting can end without shutting down.
#[test]
fn deviation_7_a_dropped_get_future_passes_its_wake_up_on() {
    let (_c, q) = fake();
    let mut first = Driver::new(q.get_async());
    let mut second = Driver::new(q.get_async());
    assert!(first.step().is_pending());
    assert!(second.step().is_pending());
    q.add("only").unwrap();
    assert!(first.woken(), "one item wakes the first waiter");
    assert!(!second.woken(), "and only it");
    drop(first);
    assert!(second.woken(), "the dropped waiter passed its wake-up on");
    assert_eq!(second.finish().map(|i| *i), Some("only"));
}

/// Deviation 8 (docs/behaviour.md): done cannot be forgotten.
#[test]
fn deviation_8_dropping_the_guard_marks_done() {
    let (_c, q) = fake();
    q.add("x").unwrap();
    let item = q.get().expect("x");
    q.add("x").unwrap();
    assert_eq!(q.snapshot().processing, 1);
    drop(item);
    assert_eq!(q.snapshot().processing, 0);
    assert_eq!(q.len(), 1, "re-added during processing: queued at drop");
}

/// Deviation 9 (docs/behaviour.md): priorities without starvation.
#[test]
fn deviation_9_fairness_bounds_how_long_a_low_priority_item_waits() {
    let q: WorkQueue<u32> = WorkQueue::builder()
        .clock(FakeClock::new())
        .fairness(Some(2))
        .build();
    q.add_with(0, requeue::queue::AddOpts::new().priority(-100))
        .unwrap();
    for i in 1..=10 {
        q.add(i).unwrap();
    }
    let order: Vec<u32> = std::iter::from_fn(|| q.try_get().ok().map(|i| *i)).collect();
    assert_eq!(order.iter().position(|&k| k == 0), Some(2));
}

struct Exploding;
impl RateLimiter<&'static str> for Exploding {
    fn when(&self, _: &&'static str) -> Duration {
        panic!("limiter bug")
    }
    fn forget(&self, _: &&'static str) {}
    fn num_requeues(&self, _: &&'static str) -> u32 {
        0
    }
}

/// Deviation 10 (docs/behaviour.md): panics are contained.
#[test]
fn deviation_10_a_panicking_rate_limiter_leaves_the_queue_usable() {
    let q: WorkQueue<&str> = WorkQueue::builder()
        .clock(FakeClock::new())
        .rate_limiter(Exploding)
        .build();
    let panicked = std::panic::catch_unwind(|| q.add_rate_limited("x"));
    assert!(panicked.is_err());
    q.add("y").unwrap();
    assert_eq!(q.get().map(|i| *i), Some("y"));
    assert!(q.try_get().is_err());
}
