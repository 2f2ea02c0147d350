//! Fetching ahead (`RedisQueueBuilder::prefetch`) in one process, on a
//! fake clock: the next item arrives with the end of the last, costs its
//! getter no round trip, is given back on shutdown and when nobody claims
//! it, and shows the one documented difference from client-go. The crash
//! test (a process killed while it holds items fetched ahead) is in
//! `processes.rs`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::FakeClock;
use requeue::engine::Then;
use requeue::queue::Added;
use requeue_redis::RedisQueue;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(40);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..))
}

async fn pair(prefetch: usize) -> (RedisQueue<String>, RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let name = unique("ahead");
    let build = |prefetch| {
        RedisQueue::builder(support::server().url(), name.clone())
            .fake_time(clock.clone())
            .lease(LEASE)
            .prefetch(prefetch)
            .build()
    };
    let here = build(prefetch).await.unwrap();
    let other = build(0).await.unwrap();
    (here, other, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_item_comes_with_the_end_of_the_last_and_costs_no_round_trip() {
    let (queue, _other, _clock) = pair(4).await;
    for key in ["a", "b", "c"] {
        queue.add(key.into()).await.unwrap();
    }
    let a = queue.get().await.unwrap();
    assert_eq!(*a, "a");
    a.end_async(Then::Forget).await.unwrap();
    assert_eq!(queue.held(), 1, "b arrived with the end of a");
    let before = queue.round_trips();
    let b = queue.get().await.unwrap();
    assert_eq!(*b, "b");
    assert_eq!(queue.round_trips(), before, "taken without a call");
    assert!(b.is_valid());
    b.end_async(Then::Done).await.unwrap();
    let c = queue.get().await.unwrap();
    assert_eq!(*c, "c");
    c.end_async(Then::Done).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 0);
    assert_eq!(queue.held(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_nothing_is_fetched_ahead() {
    let (queue, _other, _clock) = pair(requeue_redis::queue::DEFAULT_PREFETCH).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    queue
        .get()
        .await
        .unwrap()
        .end_async(Then::Done)
        .await
        .unwrap();
    assert_eq!(queue.held(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_gives_back_what_no_worker_took_at_once() {
    let (queue, other, _clock) = pair(4).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    queue
        .get()
        .await
        .unwrap()
        .end_async(Then::Done)
        .await
        .unwrap();
    assert_eq!(queue.held(), 1);
    queue.shut_down_with_drain().await;
    assert_eq!(queue.held(), 0);
    // Back at the head of the queue, for another process, without a
    // failure counted.
    let b = other.get().await.unwrap();
    assert_eq!(*b, "b");
    assert_eq!(other.num_requeues(&"b".to_string()).await.unwrap(), 0);
    b.end_async(Then::Done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_nobody_claims_goes_back_after_a_quarter_of_a_lease() {
    let (queue, other, clock) = pair(4).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    queue
        .get()
        .await
        .unwrap()
        .end_async(Then::Done)
        .await
        .unwrap();
    assert_eq!(queue.held(), 1, "b fetched ahead");
    clock.advance(LEASE / 4 + Duration::from_secs(1));
    // The next call of this process gives it back (in the background).
    queue.add("c".into()).await.unwrap();
    assert_eq!(queue.held(), 0);
    let mut got = Vec::new();
    for _ in 0..2 {
        let item = tokio::time::timeout(Duration::from_secs(10), other.get())
            .await
            .unwrap()
            .unwrap();
        got.push((*item).clone());
        item.end_async(Then::Done).await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["b", "c"], "b is back, for anyone");
    assert_eq!(
        other.num_requeues(&"b".to_string()).await.unwrap(),
        0,
        "given back, not reaped: no failure counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_difference_an_add_parks_an_item_fetched_ahead() {
    let (queue, _other, _clock) = pair(4).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    queue
        .get()
        .await
        .unwrap()
        .end_async(Then::Done)
        .await
        .unwrap();
    // client-go would merge this add into the queued b; here b is leased.
    assert_eq!(queue.add("b".into()).await.unwrap(), Added::AfterDone);
    let b = queue.get().await.unwrap();
    b.end_async(Then::Done).await.unwrap();
    let again = queue.get().await.unwrap();
    assert_eq!(*again, "b", "processed once more, never twice at once");
    again.end_async(Then::Done).await.unwrap();
}
