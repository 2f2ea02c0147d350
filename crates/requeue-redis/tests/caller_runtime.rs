//! A queue built on the caller's tokio runtime (`RedisQueueBuilder::runtime`)
//! and on the caller's client (`builder_with_client`): no runtime or
//! thread of the queue's own, leases renewed on the caller's runtime.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::engine::Then;
use requeue_redis::RedisQueue;
use std::time::Duration;

/// Threads this process runs whose name starts with `prefix` (Linux).
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_callers_runtime_and_client_leases_are_renewed_and_no_thread_is_started() {
    let client = redis::Client::open(support::server().url()).unwrap();
    let queue: RedisQueue<String> = RedisQueue::builder_with_client(client, "caller-rt")
        .runtime(tokio::runtime::Handle::current())
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert_eq!(threads_named("requeue-redis"), 0, "no runtime of its own");
    assert!(format!("{queue:?}").contains("127.0.0.1"), "{queue:?}");

    queue.add("held".to_string()).await.unwrap();
    let item = queue.get().await.unwrap();
    // Held for more than three leases: only renewals keep it.
    tokio::time::sleep(Duration::from_millis(1_000)).await; // holding, not waiting for a condition
    assert!(item.is_valid(), "renewed on the caller's runtime");
    assert!(item.end_async(Then::Forget).await.unwrap().released);
    assert_eq!(queue.leases_lost(), 0);
    assert_eq!(queue.leases_reaped(), 0);
    assert_eq!(queue.len().await.unwrap(), 0);
}
