//! Async tasks and blocked threads on the same queue.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use futures_util::StreamExt;
use requeue::clock::FakeClock;
use requeue::queue::WorkQueue;
use std::collections::HashSet;
use std::time::Duration;
use support::{BOUND, Driver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_threads_share_one_queue() {
    let q: WorkQueue<u32> = WorkQueue::new();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(item) = q.get() {
                    got.push(*item);
                }
                got
            })
        })
        .collect();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(item) = q.get_async().await {
                    got.push(*item);
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    for i in 0..2000 {
        q.add(i).unwrap();
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    q.shut_down_with_drain_async().await;
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("thread"));
    }
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    assert_eq!(all.len(), 2000, "nothing lost, nothing twice");
    assert_eq!(all.into_iter().collect::<HashSet<_>>().len(), 2000);
}

#[tokio::test(flavor = "current_thread")]
async fn the_stream_ends_once_shut_down_and_empty() {
    let q: WorkQueue<&str> = WorkQueue::new();
    q.add("a").unwrap();
    q.add("b").unwrap();
    q.shut_down();
    let got: Vec<&str> = q.stream().map(|item| *item).collect().await;
    assert_eq!(got, ["a", "b"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_get_future_cancelled_by_a_timeout_loses_nothing() {
    let q: WorkQueue<&str> = WorkQueue::new();
    let timed_out = tokio::time::timeout(Duration::from_millis(5), q.get_async()).await;
    assert!(timed_out.is_err());
    assert_eq!(
        q.snapshot().waiting_gets,
        0,
        "the cancelled waiter left the line"
    );
    q.add("x").unwrap();
    let item = tokio::time::timeout(BOUND, q.get_async())
        .await
        .expect("in time");
    assert_eq!(item.map(|i| *i), Some("x"));
}

#[test]
fn delayed_items_wake_an_async_waiter_when_the_fake_clock_moves() {
    let clock = FakeClock::new();
    let q: WorkQueue<&str> = WorkQueue::builder().clock(clock.clone()).build();
    let mut get = Driver::new(q.get_async());
    assert!(get.step().is_pending());
    q.add_after("later", Duration::from_secs(3)).unwrap();
    assert!(!get.woken());
    clock.advance(Duration::from_secs(3));
    assert!(get.woken());
    assert_eq!(get.finish().map(|i| *i), Some("later"));
}

#[test]
fn shutdown_wakes_every_waiter() {
    let q: WorkQueue<&str> = WorkQueue::builder().clock(FakeClock::new()).build();
    let mut waiters: Vec<_> = (0..4).map(|_| Driver::new(q.get_async())).collect();
    for w in &mut waiters {
        assert!(w.step().is_pending());
    }
    q.shut_down();
    for w in &mut waiters {
        assert!(w.woken());
        assert!(w.finish().is_none());
    }
}
