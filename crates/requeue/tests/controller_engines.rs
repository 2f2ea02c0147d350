//! One worker loop for both runners: the blocking runner works on any
//! `AsyncQueue` engine, and both runners number attempts the same way.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::{FakeClock, SharedClock};
use requeue::controller::{Action, Controller, Counts, Summary};
use requeue::engine::{AddError, AsyncQueue, QueueError};
use requeue::limiter::ItemExponential;
use requeue::queue::{AddOpts, Added, Item, WorkQueue};
use requeue::wait::Stop;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::wait_until;

/// An engine that is not a `WorkQueue`: every call delegates to one, and
/// the gets are counted (so a test can tell that this engine served them).
#[derive(Clone)]
struct Delegating {
    inner: WorkQueue<String>,
    gets: Arc<AtomicUsize>,
}

impl AsyncQueue<String> for Delegating {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn clock(&self) -> &SharedClock {
        self.inner.clock()
    }

    async fn add_with(&self, item: String, opts: AddOpts) -> Result<Added, AddError<String>> {
        AsyncQueue::add_with(&self.inner, item, opts).await
    }

    async fn get(&self) -> Result<Item<String>, QueueError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        AsyncQueue::get(&self.inner).await
    }

    async fn get_until(&self, stop: &Stop) -> Result<Item<String>, QueueError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        AsyncQueue::get_until(&self.inner, stop).await
    }

    async fn done(&self, item: &String) -> Result<bool, QueueError> {
        AsyncQueue::done(&self.inner, item).await
    }

    async fn forget(&self, item: &String) -> Result<(), QueueError> {
        AsyncQueue::forget(&self.inner, item).await
    }

    async fn num_requeues(&self, item: &String) -> Result<u32, QueueError> {
        AsyncQueue::num_requeues(&self.inner, item).await
    }

    async fn len(&self) -> Result<usize, QueueError> {
        AsyncQueue::len(&self.inner).await
    }

    fn shut_down(&self) -> Vec<String> {
        AsyncQueue::shut_down(&self.inner)
    }

    async fn shut_down_with_drain(&self) -> Vec<String> {
        AsyncQueue::shut_down_with_drain(&self.inner).await
    }

    fn is_shutting_down(&self) -> bool {
        AsyncQueue::is_shutting_down(&self.inner)
    }
}

/// A queue on `clock` whose retries wait 5 ms, 10 ms, 20 ms …
fn fake_queue(clock: &FakeClock) -> WorkQueue<String> {
    WorkQueue::builder()
        .clock(clock.clone())
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(60),
        ))
        .build()
}

#[test]
fn the_blocking_runner_works_on_any_engine() {
    let clock = FakeClock::new();
    let inner = fake_queue(&clock);
    let queue = Delegating {
        inner: inner.clone(),
        gets: Arc::default(),
    };
    for key in ["done", "flaky", "later"] {
        inner.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue.clone(), 2);
    let calls: Mutex<HashMap<String, usize>> = Mutex::default();
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| {
                let n = {
                    let mut calls = calls.lock().unwrap();
                    let n = calls.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                match (key.as_str(), n) {
                    ("flaky", 1) => Err("not yet"),
                    ("later", 1) => Ok(Action::RequeueAfter(Duration::from_secs(10))),
                    _ => Ok(Action::Done),
                }
            })
        });
        // Both delayed keys wait on the fake clock; the engine's own get,
        // driven by `block_on`, must wake for them when it moves.
        wait_until("the retry and the requeue-after wait", || {
            inner.snapshot().delayed == 2
        });
        clock.advance(Duration::from_secs(10));
        wait_until("every key done", || controller.counts().succeeded == 4);
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(
        (summary.succeeded, summary.failed, summary.requeued),
        (4, 1, 2)
    );
    assert_eq!(calls.lock().unwrap()["flaky"], 2, "retried once");
    assert_eq!(calls.lock().unwrap()["later"], 2, "came back once");
    assert!(
        queue.gets.load(Ordering::SeqCst) >= 5,
        "every key came through the engine's own get"
    );
    assert!(inner.is_shutting_down(), "the run shut the engine down");
}

/// A handler that fails `key`'s first three tries, and the attempts the
/// error policy saw, per key.
type Attempts = Arc<Mutex<Vec<(String, u32)>>>;

fn fails_three_times(tries: &Mutex<HashMap<String, u32>>, key: &str) -> Result<Action, String> {
    let mut tries = tries.lock().unwrap();
    let n = tries.entry(key.to_string()).or_default();
    *n += 1;
    if *n <= 3 {
        Err(format!("try {n} of {key} failed"))
    } else {
        Ok(Action::Done)
    }
}

/// Lets the key's three retries out, on the fake clock, until it
/// succeeds. Each advance waits until the failure is fully settled (a key
/// promoted while its worker is still ending it would blur the steps).
fn drive_retries(clock: &FakeClock, queue: &WorkQueue<String>, counts: impl Fn() -> Counts) {
    for failed in 1..=3 {
        wait_until("a retry waits", || {
            let s = queue.snapshot();
            counts().failed == failed && (s.delayed, s.processing) == (1, 0)
        });
        clock.advance(Duration::from_secs(1));
    }
    wait_until("the key succeeded", || counts().succeeded == 1);
}

fn blocking_attempts() -> (Vec<(String, u32)>, Summary) {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("k".to_string()).unwrap();
    let seen: Attempts = Arc::default();
    let controller = Controller::new(queue.clone(), 2).error_policy({
        let seen = seen.clone();
        move |key: &String, _: &String, attempt: u32| {
            seen.lock().unwrap().push((key.clone(), attempt));
            Action::RequeueRateLimited
        }
    });
    let tries = Mutex::default();
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |key: &String| fails_three_times(&tries, key)));
        drive_retries(&clock, &queue, || controller.counts());
        stop.stop();
        run.join().unwrap()
    });
    let seen = seen.lock().unwrap().clone();
    (seen, summary)
}

fn async_attempts() -> (Vec<(String, u32)>, Summary) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("k".to_string()).unwrap();
    let seen: Attempts = Arc::default();
    let controller = Controller::new(queue.clone(), 2).error_policy({
        let seen = seen.clone();
        move |key: &String, _: &String, attempt: u32| {
            seen.lock().unwrap().push((key.clone(), attempt));
            Action::RequeueRateLimited
        }
    });
    let tries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let stop = Stop::new();
    let run = {
        let (controller, stop) = (controller.clone(), stop.clone());
        runtime.spawn(async move {
            controller
                .run_async(&stop, move |key: String| {
                    let tries = tries.clone();
                    async move { fails_three_times(&tries, &key) }
                })
                .await
        })
    };
    drive_retries(&clock, &queue, || controller.counts());
    stop.stop();
    let summary = runtime.block_on(run).unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, summary)
}

#[test]
fn both_runners_number_attempts_alike() {
    let expected: Vec<_> = (1..=3).map(|n| ("k".to_string(), n)).collect();
    let (blocking, blocking_summary) = blocking_attempts();
    assert_eq!(
        blocking, expected,
        "1 on the first try, then one more per retry"
    );
    let (tasks, async_summary) = async_attempts();
    assert_eq!(tasks, expected, "the async runner numbers them alike");
    assert_eq!(blocking_summary, async_summary);
    assert_eq!(
        (blocking_summary.succeeded, blocking_summary.failed),
        (1, 3)
    );
}
