//! An async controller: three tokio tasks reconcile 100 objects with an
//! async handler; failures and panics are retried with backoff.
//!
//! Run with `cargo run -p requeue --example controller_async`.

use std::time::Duration;

use requeue::controller::{Action, Controller};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let queue: WorkQueue<u32> = WorkQueue::builder()
        .name("jobs")
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(2),
            Duration::from_millis(200),
        ))
        .build();
    for job in 0..100 {
        queue.add(job).expect("queue is running");
    }
    std::panic::set_hook(Box::new(|info| eprintln!("handler panicked: {info}")));
    let controller = Controller::new(queue.clone(), 3);
    let stop = Stop::new();
    let run = {
        let (controller, stop, queue) = (controller.clone(), stop.clone(), queue.clone());
        tokio::spawn(async move {
            controller
                .run_async(&stop, move |job: u32| {
                    let attempt = queue.num_requeues(&job);
                    async move {
                        tokio::time::sleep(Duration::from_millis(1)).await; // "call an API"
                        match (job % 25, attempt) {
                            (0, 0) => Err(format!("job {job}: upstream timed out")),
                            (13, 0) => panic!("job {job}: unexpected state"),
                            _ => Ok(Action::Done),
                        }
                    }
                })
                .await
        })
    };
    while controller.counts().succeeded < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.stop();
    let summary = run.await.expect("the runner task");
    println!("{summary:#?}");
}
