//! The classic worker loop in async code: tasks take items from the queue
//! as a stream, failures go back with backoff, successes are forgotten.
//!
//! Run with `cargo run -p requeue --example worker_async`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("example-async")
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(1),
        ))
        .build();
    for i in 0..10 {
        queue
            .add(format!("default/job-{i}"))
            .expect("queue is running");
    }

    let reconciled = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let queue = queue.clone();
        let reconciled = reconciled.clone();
        workers.push(tokio::spawn(async move {
            let mut items = queue.stream();
            while let Some(item) = items.next().await {
                // Pretend work: the first attempt of every key fails.
                tokio::task::yield_now().await;
                if queue.num_requeues(&item) == 0 {
                    println!("task {worker}: {} failed, retrying", *item);
                    let _ = item.retry();
                } else {
                    println!("task {worker}: {} reconciled", *item);
                    item.forget();
                    reconciled.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }

    while reconciled.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    queue.shut_down_with_drain_async().await;
    for worker in workers {
        worker.await.expect("worker task");
    }
    println!(
        "done; limiter still tracks {} keys",
        queue.rate_limiter().tracked_items()
    );
}
