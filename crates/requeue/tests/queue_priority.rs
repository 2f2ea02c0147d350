//! Priorities (controller-runtime's priority queue tests, docs/behaviour.md
//! §3.9 and §8.3) and
//! requeue's anti-starvation rule (deviation 9).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::clock::{Clock, FakeClock};
use requeue::queue::{AddOpts, Added, WorkQueue};
use std::time::Duration;

fn strict() -> (FakeClock, WorkQueue<&'static str>) {
    let clock = FakeClock::new();
    let q = WorkQueue::builder()
        .clock(clock.clone())
        .fairness(None)
        .build();
    (clock, q)
}

fn drain(q: &WorkQueue<&'static str>) -> Vec<&'static str> {
    std::iter::from_fn(|| q.try_get().ok().map(|item| *item)).collect()
}

fn prio(p: i32) -> AddOpts {
    AddOpts::new().priority(p)
}

#[test]
fn items_come_out_fifo_within_a_priority() {
    let (_c, q) = strict();
    for k in ["a", "b", "c"] {
        q.add_with(k, prio(1)).unwrap();
    }
    assert_eq!(drain(&q), ["a", "b", "c"]);
}

#[test]
fn higher_priority_first() {
    let (_c, q) = strict();
    q.add_with("low", prio(-100)).unwrap();
    q.add("normal").unwrap();
    q.add_with("high", prio(10)).unwrap();
    assert_eq!(drain(&q), ["high", "normal", "low"]);
}

#[test]
fn get_reports_the_priority() {
    let (_c, q) = strict();
    q.add_with("x", prio(7)).unwrap();
    assert_eq!(q.try_get().expect("x").priority(), 7);
}

#[test]
fn a_locked_item_is_returned_as_soon_as_done_is_called() {
    let (_c, q) = strict();
    q.add("foo").unwrap();
    let foo = q.try_get().expect("foo");
    assert_eq!(q.add("foo"), Ok(Added::AfterDone));
    assert!(q.try_get().is_err(), "not handed out while locked");
    foo.done();
    q.add("bar").unwrap();
    assert_eq!(drain(&q), ["foo", "bar"]);
}

#[test]
fn the_highest_priority_is_kept_and_never_lowered() {
    let (_c, q) = strict();
    q.add_with("foo", prio(5)).unwrap();
    assert_eq!(q.add_with("foo", prio(1)), Ok(Added::Merged));
    q.add_with("bar", prio(3)).unwrap();
    let first = q.try_get().expect("foo");
    assert_eq!((*first, first.priority()), ("foo", 5));
}

#[test]
fn a_raised_priority_jumps_ahead_and_joins_the_back_of_its_new_level() {
    let (_c, q) = strict();
    q.add("foo").unwrap();
    q.add_with("bar", prio(1)).unwrap();
    q.add("baz").unwrap();
    q.add_with("foo", prio(1)).unwrap();
    assert_eq!(drain(&q), ["bar", "foo", "baz"]);
    assert_eq!(q.len(), 0);
}

#[test]
fn a_ready_add_wins_over_a_long_delay() {
    let (clock, q) = strict();
    q.add("foo").unwrap();
    assert_eq!(
        q.add_after("foo", Duration::from_secs(3600)),
        Ok(Added::Merged)
    );
    assert_eq!(drain(&q), ["foo"]);
    assert_eq!(q.len(), 0);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(q.len(), 0, "the delayed add was ignored");
}

#[test]
fn waiting_items_are_not_counted_in_len() {
    let (clock, q) = strict();
    q.add_after("foo", Duration::from_secs(1)).unwrap();
    assert_eq!(q.len(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(q.len(), 1);
}

#[test]
fn after_shutdown_get_reports_it_immediately_and_repeatedly() {
    let (_c, q) = strict();
    q.shut_down();
    for _ in 0..3 {
        assert!(q.get().is_none());
    }
}

#[test]
fn a_delayed_high_priority_item_that_became_ready_goes_before_low_ones() {
    let (clock, q) = strict();
    q.add_with(
        "high",
        AddOpts::new().priority(1).after(Duration::from_secs(1)),
    )
    .unwrap();
    q.add("low").unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(drain(&q), ["high", "low"]);
}

#[test]
fn high_priority_items_before_low_ones_across_delays() {
    let (clock, q) = strict();
    let mut expected = Vec::new();
    let names: Vec<&'static str> = (0..50)
        .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
        .collect();
    for level in (0..5).rev() {
        for (i, name) in names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 == level as usize)
        {
            let opts = AddOpts::new().priority(level);
            let opts = if i % 2 == 0 {
                opts.after(Duration::from_secs(1))
            } else {
                opts
            };
            q.add_with(name, opts).unwrap();
            expected.push((level, *name));
        }
    }
    clock.advance(Duration::from_secs(1));
    let got: Vec<i32> = std::iter::from_fn(|| q.try_get().ok().map(|i| i.priority())).collect();
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, sorted, "all higher priorities first");
    assert_eq!(got.len(), expected.len());
}

#[test]
fn rate_limited_items_in_one_call_get_their_own_delays() {
    let clock = FakeClock::new();
    let q: WorkQueue<&str> = WorkQueue::builder()
        .clock(clock.clone())
        .rate_limiter(requeue::limiter::ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        ))
        .build();
    for _ in 0..7 {
        q.rate_limiter().when(&"slow");
    }
    let at = |r| match r {
        Ok(Added::Delayed { at }) => at - clock.now(),
        other => panic!("{other:?}"),
    };
    assert_eq!(at(q.add_rate_limited("fast")), Duration::from_millis(5));
    assert_eq!(at(q.add_rate_limited("slow")), Duration::from_millis(640));
}

#[test]
fn fairness_lets_low_priority_items_through_a_steady_high_stream() {
    let clock = FakeClock::new();
    let q: WorkQueue<u32> = WorkQueue::builder().clock(clock).fairness(Some(4)).build();
    q.add_with(0, prio(-100)).unwrap();
    let mut served_low_after = None;
    for round in 0..20 {
        // A steady stream: always another high-priority item waiting.
        q.add_with(round + 1, prio(0)).unwrap();
        let item = q.try_get().expect("item");
        if *item == 0 {
            served_low_after = Some(round);
            break;
        }
    }
    assert_eq!(
        served_low_after,
        Some(4),
        "the low item goes after 4 pass-overs"
    );
}

#[test]
fn strict_priority_starves_low_items_without_fairness() {
    let (_c, q) = strict();
    q.add_with("low", prio(-100)).unwrap();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for name in names {
        q.add(name).unwrap();
        assert_ne!(*q.try_get().expect("item"), "low");
    }
}
