//! client-go's workqueue tests (docs/behaviour.md §8.2), re-stated for requeue.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::FakeClock;
use requeue::queue::{Added, GetError, WorkQueue};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use support::{BOUND, wait_until};

fn queue<T: requeue::queue::Key>() -> WorkQueue<T> {
    WorkQueue::builder().clock(FakeClock::new()).build()
}

fn basic(drain: bool) {
    let q: WorkQueue<u32> = queue();
    let consumed = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..50)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    q.add(p * 100 + i).expect("running");
                    thread::yield_now();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..10)
        .map(|_| {
            let q = q.clone();
            let consumed = consumed.clone();
            thread::spawn(move || {
                while let Some(item) = q.get() {
                    consumed.lock().expect("lock").push(*item);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    if drain {
        q.shut_down_with_drain();
    } else {
        q.shut_down();
    }
    assert!(q.add(99_999).is_err(), "an add after shutdown is refused");
    for c in consumers {
        c.join().expect("consumer");
    }
    assert_eq!(q.len(), 0);
    let consumed = consumed.lock().expect("lock");
    assert!(!consumed.contains(&99_999));
    assert_eq!(
        consumed.iter().collect::<HashSet<_>>().len(),
        2500,
        "every distinct add is delivered"
    );
}

#[test]
fn basic_many_producers_and_consumers_then_shut_down() {
    basic(false);
}

#[test]
fn basic_many_producers_and_consumers_then_shut_down_with_drain() {
    basic(true);
}

fn add_while_processing(drain: bool) {
    let q: WorkQueue<u32> = queue();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let deliveries = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..10)
        .map(|_| {
            let (q, seen, deliveries) = (q.clone(), seen.clone(), deliveries.clone());
            thread::spawn(move || {
                while let Some(item) = q.get() {
                    deliveries.fetch_add(1, Ordering::SeqCst);
                    if seen.lock().expect("lock").insert(*item) {
                        // First time: re-add while processing.
                        assert_eq!(q.add(*item), Ok(Added::AfterDone));
                    }
                }
            })
        })
        .collect();
    for i in 0..500 {
        q.add(i).expect("running");
    }
    wait_until("every item re-delivered", || {
        deliveries.load(Ordering::SeqCst) == 1000
    });
    if drain {
        q.shut_down_with_drain();
    } else {
        q.shut_down();
    }
    for c in consumers {
        c.join().expect("consumer");
    }
    assert_eq!(q.len(), 0);
    assert_eq!(deliveries.load(Ordering::SeqCst), 1000);
}

#[test]
fn add_while_processing_is_delivered_again_with_shut_down() {
    add_while_processing(false);
}

#[test]
fn add_while_processing_is_delivered_again_with_drain() {
    add_while_processing(true);
}

#[test]
fn len_counts_distinct_queued_items() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    q.add("bar").unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.add("foo"), Ok(Added::Merged));
    assert_eq!(q.len(), 2);
}

#[test]
fn reinsert_while_processing_is_queued_at_done() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    let item = q.get().expect("item");
    assert_eq!(q.add("foo"), Ok(Added::AfterDone));
    assert_eq!(q.len(), 0, "not queued while processing");
    assert!(item.done());
    assert_eq!(q.len(), 1);
    let again = q.get().expect("item again");
    assert_eq!(*again, "foo");
    assert!(again.done());
    assert_eq!(q.len(), 0);
}

#[test]
fn collapse_two_adds_deliver_once() {
    let q: WorkQueue<&str> = queue();
    assert_eq!(q.add("bar"), Ok(Added::Queued));
    assert_eq!(q.add("bar"), Ok(Added::Merged));
    let item = q.get().expect("item");
    assert_eq!(*item, "bar");
    drop(item);
    assert_eq!(q.len(), 0);
    assert!(q.try_get().is_err());
}

#[test]
fn collapse_while_processing_blocks_a_second_worker_until_done() {
    let q: WorkQueue<&str> = queue();
    q.add("bar").unwrap();
    let first = q.get().expect("item");
    assert_eq!(q.add("bar"), Ok(Added::AfterDone));
    assert_eq!(q.add("bar"), Ok(Added::Merged));
    let second = {
        let q = q.clone();
        thread::spawn(move || q.get().map(|item| *item))
    };
    wait_until("the second worker waits", || q.snapshot().waiting_gets == 1);
    assert!(first.done());
    assert_eq!(second.join().expect("second"), Some("bar"));
    assert!(q.try_get().is_err(), "delivered exactly once more");
}

#[test]
fn shut_down_with_drain_waits_for_in_flight_items() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    q.add("bar").unwrap();
    let foo = q.get().expect("foo");
    let bar = q.get().expect("bar");
    let drainer = {
        let q = q.clone();
        thread::spawn(move || q.shut_down_with_drain())
    };
    wait_until("shutdown begins", || q.is_shutting_down());
    assert!(q.get().is_none(), "get reports shutdown");
    assert!(!drainer.is_finished());
    foo.done();
    assert!(!drainer.is_finished());
    bar.done();
    drainer.join().expect("drain returns");
}

#[test]
fn shut_down_does_not_wait_for_in_flight_items() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    q.add("bar").unwrap();
    let _foo = q.get().expect("foo");
    let _bar = q.get().expect("bar");
    q.shut_down();
    assert!(q.get().is_none());
}

#[test]
fn a_later_shut_down_releases_a_blocked_drain() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    let foo = q.get().expect("foo");
    let drainer = {
        let q = q.clone();
        thread::spawn(move || q.shut_down_with_drain())
    };
    wait_until("shutdown begins", || q.is_shutting_down());
    q.shut_down();
    drainer.join().expect("released without done");
    drop(foo);
}

#[test]
fn drain_hands_out_an_item_re_added_while_processing() {
    let q: WorkQueue<&str> = queue();
    q.add("foo").unwrap();
    let foo = q.get().expect("foo");
    q.add("foo").unwrap();
    let drainer = {
        let q = q.clone();
        thread::spawn(move || q.shut_down_with_drain())
    };
    wait_until("shutdown begins", || q.is_shutting_down());
    assert!(q.try_get().is_err(), "nothing ready while foo is processed");
    foo.done();
    let again = q.get().expect("the re-added item is still handed out");
    assert_eq!(*again, "foo");
    assert!(!drainer.is_finished());
    again.done();
    assert!(q.get().is_none());
    drainer.join().expect("drained");
}

#[test]
fn done_items_are_not_retained() {
    let q: WorkQueue<Arc<str>> = queue();
    let key: Arc<str> = Arc::from("pod");
    q.add(key.clone()).unwrap();
    q.add(key.clone()).unwrap();
    q.get().expect("item").done();
    assert_eq!(
        Arc::strong_count(&key),
        1,
        "the queue keeps no reference after done"
    );
}

#[test]
fn get_timeout_on_an_empty_queue_times_out_on_the_queue_clock() {
    let clock = FakeClock::new();
    let q: WorkQueue<u8> = WorkQueue::builder().clock(clock.clone()).build();
    let waiter = {
        let q = q.clone();
        thread::spawn(move || q.get_timeout(Duration::from_secs(5)).map(|i| *i))
    };
    assert!(clock.wait_for_waiters(1, BOUND));
    clock.advance(Duration::from_secs(5));
    assert_eq!(waiter.join().expect("waiter"), Err(GetError::TimedOut));
    assert_eq!(q.snapshot().waiting_gets, 0);
}

#[test]
fn add_ref_clones_only_items_the_queue_must_store() {
    let q: WorkQueue<Arc<str>> = queue();
    let key: Arc<str> = Arc::from("pod");
    assert_eq!(q.add_ref(&key), Ok(Added::Queued));
    assert_eq!(Arc::strong_count(&key), 2, "stored once");
    assert_eq!(q.add_ref(&key), Ok(Added::Merged));
    assert_eq!(Arc::strong_count(&key), 2, "a collapsed add clones nothing");
    q.get().expect("pod").done();
    assert_eq!(Arc::strong_count(&key), 1);
    q.shut_down();
    assert_eq!(
        q.add_ref(&key).map_err(|e| e.into_inner()),
        Err(key.clone())
    );
}
