//! The classic client-go worker loop on threads: get → handle → on error
//! `retry` (add_rate_limited), on success `forget` → done.
//!
//! Run with `cargo run -p requeue --example worker_blocking`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;

/// Pretend reconcile: every key fails twice before it succeeds.
fn reconcile(key: &str, attempts: &Mutex<HashMap<String, u32>>) -> Result<(), String> {
    let mut attempts = attempts.lock().map_err(|e| e.to_string())?;
    let n = attempts.entry(key.to_string()).or_default();
    *n += 1;
    if *n < 3 {
        Err(format!("{key}: not ready yet (attempt {n})"))
    } else {
        Ok(())
    }
}

fn main() {
    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("example")
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(1),
        ))
        .build();
    let attempts = Mutex::new(HashMap::new());

    for i in 0..10 {
        queue
            .add(format!("default/pod-{i}"))
            .expect("queue is running");
    }

    thread::scope(|s| {
        for worker in 0..3 {
            let queue = queue.clone();
            let attempts = &attempts;
            s.spawn(move || {
                // `get` returns None once the queue is shut down and drained.
                while let Some(item) = queue.get() {
                    match reconcile(&item, attempts) {
                        Ok(()) => {
                            println!("worker {worker}: {} reconciled", *item);
                            item.forget();
                        }
                        Err(err) => {
                            println!("worker {worker}: {err}; retrying with backoff");
                            // Refused only after shutdown; then the key is dropped.
                            let _ = item.retry();
                        }
                    }
                }
            });
        }
        // Wait until every key succeeded, then stop the workers.
        while attempts
            .lock()
            .map(|a| a.values().filter(|n| **n >= 3).count())
            .unwrap_or(0)
            < 10
        {
            thread::sleep(Duration::from_millis(5));
        }
        queue.shut_down_with_drain();
    });
    println!(
        "all keys reconciled; requeues left: {}",
        queue.rate_limiter().tracked_items()
    );
}
