//! The engine conformance checks (`requeue::engine::conformance`) on the
//! in-memory `WorkQueue`; `requeue-redis` runs the same bodies on Redis.

use requeue::clock::FakeClock;
use requeue::engine::conformance;
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use std::time::Duration;

async fn fresh() -> (WorkQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = WorkQueue::builder().clock(clock.clone()).build();
    (queue, clock)
}

requeue::conformance_tests!(fresh);

#[tokio::test]
async fn rate_limited_backoff() {
    let clock = FakeClock::new();
    let queue: WorkQueue<String> = WorkQueue::builder()
        .clock(clock.clone())
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(1),
            Duration::from_secs(1),
        ))
        .build();
    conformance::rate_limited_backoff(queue, clock).await;
}
