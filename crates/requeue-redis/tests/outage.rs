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
