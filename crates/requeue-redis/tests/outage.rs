//! A Redis outage longer than the lease. Leases keep ticking on the server
//! while it is down; when it is back, this process renews its leases
//! *before* taking new work, so the items it holds stay its own (nobody
//! else could have taken them: an expired lease is renewable until some
//! `get` reaps it), and nothing added before the crash is lost.
#![allow(clippy::unwrap_used)]

use requeue::engine::Then;
use requeue_redis::RedisQueue;
use requeue_redis::local_server::LocalServer;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_lease_keeps_held_leases_and_loses_nothing() {
    let mut server = LocalServer::start().unwrap(); // AOF, fsync always
    let lease = Duration::from_millis(600);
    let queue: RedisQueue<String> = RedisQueue::builder(server.url(), "outage")
        .lease(lease)
        .build()
        .await
        .unwrap();
    for n in 0..100 {
        queue.add(format!("key-{n}")).await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(queue.get().await.unwrap());
    }
    server.kill9().unwrap();
    // The outage itself: longer than the lease, in real time (the server's
    // clock is the lease clock). Not a wait for a condition.
    std::thread::sleep(lease * 2);
    server.restart(false).unwrap();

    // New work waits for the renewal; then everything is served once.
    let mut seen = HashSet::new();
    for item in &held {
        seen.insert((**item).clone());
    }
    while seen.len() < 100 {
        let item = tokio::time::timeout(Duration::from_secs(20), queue.get())
            .await
            .expect("served within 20 s of the restart")
            .unwrap();
        assert!(seen.insert((*item).clone()), "{} served twice", *item);
        item.end_async(Then::Done).await.unwrap();
    }
    // The leases held across the outage were renewed first: still ours.
    for item in held {
        let key = (*item).clone();
        let ended = item.end_async(Then::Done).await;
        assert!(ended.is_ok(), "{key}: {ended:?}");
    }
    assert_eq!(
        queue.leases_reaped(),
        0,
        "no lease was taken from its holder"
    );
    assert_eq!(queue.len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_end_its_lease_stops_renewing_it_after_a_bounded_number_of_tries() {
    // Found in use: a holder retried a failing end for as long as its lease
    // was valid, and the renewer kept the lease valid, so the key was held
    // forever. Now it tries a bounded number of times, then lets the lease
    // run out; reaping brings the item back.
    let mut server = LocalServer::start().unwrap();
    let clock = requeue::clock::FakeClock::new();
    let queue: RedisQueue<String> = RedisQueue::builder(server.url(), "bounded-end")
        .fake_time(clock.clone())
        .lease(Duration::from_secs(10))
        .response_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    queue.add("k".to_string()).await.unwrap();
    let item = queue.get().await.unwrap();
    server.kill9().unwrap();
    // Fake time stands still, so the lease stays valid locally the whole
    // time: only the bound on tries ends the attempts.
    let ended = tokio::time::timeout(Duration::from_secs(60), item.end_async(Then::Retry))
        .await
        .expect("the end gives up within 60 s");
    assert!(ended.is_err(), "{ended:?}");
    assert_eq!(queue.held(), 0, "the lease is no longer held (nor renewed)");
    server.restart(false).unwrap();
    // The lease runs out on the queue's (fake) clock; a get reaps it and,
    // after the reap backoff, hands the item out again.
    clock.advance(Duration::from_secs(11));
    let first = tokio::time::timeout(Duration::from_secs(20), queue.try_get())
        .await
        .expect("answered")
        .unwrap();
    assert!(first.is_none(), "backing off after the reap");
    clock.advance(Duration::from_secs(1));
    let again = tokio::time::timeout(Duration::from_secs(20), queue.get())
        .await
        .expect("served again")
        .unwrap();
    assert_eq!(*again, "k");
    assert_eq!(queue.leases_reaped(), 1);
    again.end_async(Then::Done).await.unwrap();
}
