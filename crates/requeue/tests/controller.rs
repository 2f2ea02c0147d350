//! The controller runner: handler outcomes map to the right queue calls, a
//! panicking handler loses no key and no worker, a stop finishes in-flight work.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::controller::{Action, Controller};
use requeue::events::{Broadcaster, EventSource, EventType, MemorySink, ObjectReference};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::wait_until;

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
fn handler_outcomes_map_to_the_right_queue_calls() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    let broadcaster = Broadcaster::default();
    let sink = Arc::new(MemorySink::new());
    broadcaster.start_recording_to_sink(sink.clone()).unwrap();
    let controller = Controller::new(queue.clone(), 2).record_errors(
        broadcaster.recorder(EventSource::new("test-controller", "")),
        |key: &String| ObjectReference::new("Widget", "default", key.clone()),
    );
    for key in ["done", "requeue", "after", "limited", "error", "panic"] {
        queue.rate_limiter().when(&key.to_string()); // a history to forget (or not)
        queue.add(key.to_string()).unwrap();
    }
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
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
                match key.as_str() {
                    "done" => Ok(Action::Done),
                    "requeue" if n == 1 => Ok(Action::Requeue),
                    "requeue" => Ok(Action::Done),
                    "after" => Ok(Action::RequeueAfter(Duration::from_secs(30))),
                    "limited" => Ok(Action::RequeueRateLimited),
                    "error" => Err("the widget is broken"),
                    _ => panic!("handler bug"),
                }
            })
        });
        wait_until("every key handled", || controller.counts().processed() == 7);
        stop.stop();
        run.join().unwrap()
    });
    let requeues = |k: &str| queue.num_requeues(&k.to_string());
    assert_eq!(requeues("done"), 0, "success forgets");
    assert_eq!(requeues("requeue"), 0);
    assert_eq!(requeues("after"), 0, "RequeueAfter forgets, then waits");
    assert_eq!(
        requeues("limited"),
        2,
        "rate limited: one more attempt counted"
    );
    assert_eq!(requeues("error"), 2, "an error is a rate-limited retry");
    assert_eq!(requeues("panic"), 2, "a panic is an error");
    assert_eq!(
        (summary.succeeded, summary.failed, summary.panicked),
        (5, 2, 1)
    );
    assert_eq!(
        summary.withdrawn, 4,
        "after, limited, error, panic were waiting at the stop"
    );
    assert_eq!(
        calls.lock().unwrap()["requeue"],
        2,
        "Requeue came straight back"
    );
    broadcaster.shutdown();
    let warnings: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.event_type == EventType::Warning)
        .collect();
    assert_eq!(warnings.len(), 2);
    assert!(
        warnings
            .iter()
            .any(|e| e.involved_object.name == "error" && e.message == "the widget is broken")
    );
    assert!(warnings.iter().all(|e| e.reason == "ReconcileError"));
}

#[test]
fn a_panicking_handler_under_load_loses_no_key_and_keeps_every_worker() {
    let queue: WorkQueue<u32> = WorkQueue::builder()
        .rate_limiter(ItemExponential::new(
            Duration::from_micros(100),
            Duration::from_millis(2),
        ))
        .build();
    for key in 0..600 {
        queue.add(key).unwrap();
    }
    let controller = Controller::new(queue.clone(), 4);
    let attempts: Arc<Vec<AtomicUsize>> = Arc::new((0..600).map(|_| AtomicUsize::new(0)).collect());
    let workers_seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &u32| -> Result<Action, String> {
                workers_seen
                    .lock()
                    .unwrap()
                    .insert(std::thread::current().id());
                if attempts[*key as usize].fetch_add(1, Ordering::SeqCst) == 0
                    && key.is_multiple_of(3)
                {
                    panic!("first attempt of {key} panics");
                }
                Ok(Action::Done)
            })
        });
        wait_until("every key succeeded", || {
            controller.counts().succeeded == 600
        });
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(summary.panicked, 200);
    assert_eq!(summary.succeeded, 600, "no key lost");
    assert!(attempts.iter().all(|a| a.load(Ordering::SeqCst) >= 1));
    assert_eq!(
        workers_seen.lock().unwrap().len(),
        4,
        "all four workers kept working"
    );
}

#[test]
fn a_stop_finishes_the_work_in_flight_and_leaves_the_rest_queued() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("slow".to_string()).unwrap();
    let controller = Controller::new(queue.clone(), 1);
    let started = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |_: &String| -> Result<Action, String> {
                started.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                Ok(Action::Done)
            })
        });
        wait_until("the slow key is in flight", || {
            started.load(Ordering::SeqCst)
        });
        queue.add("later".to_string()).unwrap();
        stop.stop();
        assert!(!run.is_finished(), "waits for the key in hand");
        release.store(true, Ordering::SeqCst);
        run.join().unwrap()
    });
    assert_eq!(summary.succeeded, 1, "the in-flight key finished");
    assert_eq!(
        summary.left_queued, 1,
        "the queued key stays for the next run"
    );
    assert!(queue.is_shutting_down());
    let _ = clock.now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_runner_applies_the_same_rules() {
    let queue: WorkQueue<u32> = WorkQueue::builder()
        .rate_limiter(ItemExponential::new(
            Duration::from_micros(100),
            Duration::from_millis(2),
        ))
        .build();
    for key in 0..100 {
        queue.add(key).unwrap();
    }
    let controller = Controller::new(queue.clone(), 3);
    let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..100).map(|_| AtomicUsize::new(0)).collect());
    let stop = Stop::new();
    let run = {
        let (controller, stop, seen) = (controller.clone(), stop.clone(), seen.clone());
        tokio::spawn(async move {
            controller
                .run_async(&stop, move |key: u32| {
                    let seen = seen.clone();
                    async move {
                        tokio::task::yield_now().await;
                        match seen[key as usize].fetch_add(1, Ordering::SeqCst) {
                            0 if key.is_multiple_of(10) => panic!("async panic"),
                            0 if key % 10 == 1 => Err("try again"),
                            _ => Ok(Action::Done),
                        }
                    }
                })
                .await
        })
    };
    let give_up = std::time::Instant::now() + support::BOUND;
    while controller.counts().succeeded < 100 {
        assert!(std::time::Instant::now() < give_up, "keys were lost");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.stop();
    let summary = run.await.unwrap();
    assert_eq!(
        (summary.succeeded, summary.failed, summary.panicked),
        (100, 20, 10)
    );
}

#[test]
fn a_periodic_resync_re_adds_every_listed_key_at_low_priority() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    let controller = Controller::new(queue.clone(), 1).resync(Duration::from_secs(10), || {
        vec!["a".to_string(), "b".to_string()]
    });
    let handled = AtomicUsize::new(0);
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |_: &String| -> Result<Action, String> {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(Action::Done)
            })
        });
        wait_until("the first resync is handled", || {
            handled.load(Ordering::SeqCst) == 2
        });
        // The resync loop now waits out its period on the fake clock.
        assert!(clock.wait_for_waiters(1, support::BOUND));
        clock.advance(Duration::from_secs(10));
        wait_until("the second resync is handled", || {
            handled.load(Ordering::SeqCst) == 4
        });
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(summary.succeeded, 4, "two keys, two resync rounds");
}

#[test]
fn resync_adds_wait_behind_keys_with_real_changes() {
    let clock = FakeClock::new();
    let queue: WorkQueue<String> = WorkQueue::builder()
        .clock(clock.clone())
        .fairness(None)
        .build();
    queue
        .add_with(
            "resynced".to_string(),
            requeue::queue::AddOpts::new().priority(requeue::controller::RESYNC_PRIORITY),
        )
        .unwrap();
    queue.add("changed".to_string()).unwrap();
    assert_eq!(*queue.try_get().unwrap(), "changed");
}

#[test]
fn a_panicking_resync_lister_skips_its_round_and_the_next_rounds_go_on() {
    // The lister is user code: a panic in it used to end the resync loop
    // for the rest of the run.
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    let rounds = Arc::new(AtomicUsize::new(0));
    let counted = rounds.clone();
    let controller = Controller::new(queue.clone(), 1).resync(Duration::from_secs(10), move || {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the lister's cache is not ready");
        }
        vec!["a".to_string()]
    });
    let handled = AtomicUsize::new(0);
    let stop = Stop::new();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |_: &String| -> Result<Action, String> {
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(Action::Done)
            })
        });
        wait_until("the first round ran (and panicked)", || {
            rounds.load(Ordering::SeqCst) == 1
        });
        assert!(clock.wait_for_waiters(1, support::BOUND));
        clock.advance(Duration::from_secs(10));
        wait_until("the second round is handled", || {
            handled.load(Ordering::SeqCst) == 1
        });
        stop.stop();
        run.join().unwrap()
    });
}

#[test]
fn a_panicking_object_of_costs_its_event_not_the_worker() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    let broadcaster = Broadcaster::default();
    let sink = Arc::new(MemorySink::new());
    broadcaster.start_recording_to_sink(sink.clone()).unwrap();
    let controller = Controller::new(queue.clone(), 1).record_errors(
        broadcaster.recorder(EventSource::new("test-controller", "")),
        |key: &String| {
            if key == "bad" {
                panic!("no object for {key}");
            }
            ObjectReference::new("Widget", "default", key.clone())
        },
    );
    for key in ["bad", "good"] {
        queue.add(key.to_string()).unwrap();
    }
    let failed = Mutex::new(HashMap::<String, usize>::new());
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| -> Result<Action, String> {
                let mut failed = failed.lock().unwrap();
                let n = failed.entry(key.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    Err(format!("{key} failed once"))
                } else {
                    Ok(Action::Done)
                }
            })
        });
        // Each look moves the fake clock on, so both retries come due
        // whenever their backoff was registered.
        wait_until("both keys succeeded", || {
            clock.advance(Duration::from_millis(100));
            let failed = failed.lock().unwrap();
            failed.len() == 2 && failed.values().all(|&n| n == 2)
        });
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(summary.succeeded, 2);
    broadcaster.shutdown();
    let reasons: Vec<String> = sink
        .events()
        .iter()
        .map(|e| e.involved_object.name.clone())
        .collect();
    assert_eq!(reasons, ["good"], "the good key's event was recorded");
}
