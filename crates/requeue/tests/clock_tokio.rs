//! `TokioClock` under tokio's paused time: requeue's delays, backoff and
//! wait loops run on tokio's virtual clock, so tests of hour-long waits
//! finish at once, with no `FakeClock` to advance by hand.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::clock::{Clock, TokioClock};
use requeue::controller::{Action, Controller};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(start_paused = true)]
async fn an_hour_long_delay_takes_an_hour_of_paused_time_and_no_real_time() {
    let real = Instant::now();
    let queue: WorkQueue<&str> = WorkQueue::builder().clock(TokioClock::new()).build();
    let start = tokio::time::Instant::now();
    queue.add_after("later", Duration::from_secs(3600)).unwrap();
    queue.add_after("sooner", Duration::from_secs(60)).unwrap();
    let first = queue.get_async().await.unwrap();
    assert_eq!(*first, "sooner");
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert!(start.elapsed() < Duration::from_secs(3600));
    drop(first);
    let second = queue.get_async().await.unwrap();
    assert_eq!(*second, "later");
    assert!(start.elapsed() >= Duration::from_secs(3600));
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "paused time, not real time"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limited_retries_back_off_on_tokio_time() {
    let queue: WorkQueue<&str> = WorkQueue::builder()
        .clock(TokioClock::new())
        .rate_limiter(ItemExponential::new(
            Duration::from_secs(1),
            Duration::from_secs(1000),
        ))
        .build();
    let start = tokio::time::Instant::now();
    queue.add("k").unwrap();
    // Four failures: 1 + 2 + 4 + 8 s of backoff before the fifth try.
    for _ in 0..4 {
        let item = queue.get_async().await.unwrap();
        item.retry().unwrap();
    }
    let fifth = queue.get_async().await.unwrap();
    assert_eq!(queue.num_requeues(&"k"), 4);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "{waited:?}"
    );
    fifth.forget();
}

#[tokio::test(start_paused = true)]
async fn a_controller_requeue_after_runs_on_paused_time() {
    let clock = Arc::new(TokioClock::new());
    let queue: WorkQueue<String> = WorkQueue::builder().clock(clock.clone()).build();
    queue.add("k".to_string()).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let stop = Stop::new();
    let start = tokio::time::Instant::now();
    let controller = Controller::new(queue.clone(), 1);
    let (c, s) = (calls.clone(), stop.clone());
    let summary = controller
        .run_async(&stop, move |_key: String| {
            let (c, s) = (c.clone(), s.clone());
            async move {
                // Three reconciles, each asking to come back in 10 minutes.
                if c.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                    s.stop();
                    return Ok::<_, std::io::Error>(Action::Done);
                }
                Ok(Action::RequeueAfter(Duration::from_secs(600)))
            }
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(summary.succeeded, 3);
    assert!(start.elapsed() >= Duration::from_secs(1200));
    assert!(clock.now() >= start.into_std() + Duration::from_secs(1200));
}
