//! A blocking controller: four worker threads reconcile 200 objects; some
//! reconciles fail (retried with per-key backoff), one panics (contained),
//! some ask to come back later. Stops once everything has settled.
//!
//! Run with `cargo run -p requeue --example controller_blocking`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use requeue::controller::{Action, Controller};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;

/// `attempt` counts failed tries (the rate limiter's history); `first_visit`
/// is false when the key comes back after asking to.
fn reconcile(key: &str, attempt: u32, first_visit: bool) -> Result<Action, String> {
    let n: u32 = key
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    match (n % 10, attempt) {
        (0, 0) => Err(format!("{key}: the API server said 409, retrying")),
        (7, 0) => panic!("{key}: a bug in the handler"),
        (5, _) if first_visit => Ok(Action::RequeueAfter(Duration::from_millis(20))),
        _ => Ok(Action::Done),
    }
}

fn main() {
    let queue: WorkQueue<String> = WorkQueue::builder()
        .name("widgets")
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(1),
        ))
        .build();
    for i in 0..200 {
        queue
            .add(format!("shop/widget-{i}"))
            .expect("queue is running");
    }
    // Keep the panics' default report short for the demo.
    std::panic::set_hook(Box::new(|info| eprintln!("handler panicked: {info}")));

    let controller = Controller::new(queue.clone(), 4);
    let stop = Stop::new();
    let visited = Mutex::new(HashSet::new());
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| {
                let first_visit = visited
                    .lock()
                    .map(|mut v| v.insert(key.clone()))
                    .unwrap_or(false);
                reconcile(key, queue.num_requeues(key), first_visit)
            })
        });
        // 200 keys, 20 of them asked to come back once (and counted again).
        while controller.counts().succeeded < 220 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.stop();
        run.join().expect("the runner returns")
    });
    println!("{summary:#?}");
}
