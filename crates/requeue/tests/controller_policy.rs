//! The error policy: the user decides what a failed reconcile comes to,
//! and the Warning event's reason.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::controller::{Action, Controller, ErrorPolicy, Failure};
use requeue::events::{Broadcaster, EventSource, EventType, MemorySink, ObjectReference};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::wait_until;

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

/// The `failed`-th failure is settled: the key waits out its delay, and its
/// timer is set (a key promoted while its worker is still ending it would
/// blur the steps).
fn retry_waits(
    controller_failed: u64,
    failed: u64,
    queue: &WorkQueue<String>,
    clock: &FakeClock,
) -> bool {
    let s = queue.snapshot();
    controller_failed == failed
        && (s.delayed, s.processing) == (1, 0)
        && clock.next_deadline().is_some()
}

/// Nothing is queued, delayed or in flight.
fn idle(queue: &WorkQueue<String>) -> bool {
    let s = queue.snapshot();
    (s.ready, s.delayed, s.processing) == (0, 0, 0)
}

#[test]
fn a_policy_can_give_a_key_up_after_n_attempts() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("bad".to_string()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let controller = Controller::new(queue.clone(), 2).error_policy({
        let seen = seen.clone();
        move |_: &String, _: &&str, attempt: u32| {
            seen.lock().unwrap().push(attempt);
            if attempt >= 3 {
                Action::Done
            } else {
                Action::RequeueRateLimited
            }
        }
    });
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |_: &String| Err("always broken")));
        for (failed, delay) in [(1, 5), (2, 10)] {
            wait_until("a retry waits", || {
                retry_waits(controller.counts().failed, failed, &queue, &clock)
            });
            assert_eq!(
                clock.next_deadline(),
                Some(clock.now() + Duration::from_millis(delay)),
                "retried with the rate limiter's backoff"
            );
            clock.advance(Duration::from_millis(delay));
        }
        wait_until("the third failure", || controller.counts().failed == 3);
        wait_until("the key given up", || idle(&queue));
        assert_eq!(queue.num_requeues(&"bad".to_string()), 0, "forgotten");
        // A later add starts afresh.
        queue.add("bad".to_string()).unwrap();
        wait_until("the fourth failure", || controller.counts().failed == 4);
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 1]);
    assert_eq!((summary.failed, summary.succeeded), (4, 0));
    assert_eq!(
        summary.requeued, 3,
        "two retries before giving up, one after the new add"
    );
    assert_eq!(summary.withdrawn, 1, "the new add's retry was waiting");
}

#[test]
fn a_policy_can_requeue_after_a_fixed_delay() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("slow".to_string()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let controller = Controller::new(queue.clone(), 1).error_policy({
        let seen = seen.clone();
        move |_: &String, _: &String, attempt: u32| {
            seen.lock().unwrap().push(attempt);
            Action::RequeueAfter(Duration::from_secs(30))
        }
    });
    let tries = Mutex::new(0);
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |_: &String| {
                let mut tries = tries.lock().unwrap();
                *tries += 1;
                if *tries <= 2 {
                    Err(format!("try {tries} failed"))
                } else {
                    Ok(Action::Done)
                }
            })
        });
        for failures in [1, 2] {
            wait_until("the retry waits", || {
                retry_waits(controller.counts().failed, failures, &queue, &clock)
            });
            assert_eq!(
                clock.next_deadline(),
                Some(clock.now() + Duration::from_secs(30)),
                "the policy's delay, not the rate limiter's"
            );
            clock.advance(Duration::from_secs(29));
            assert_eq!(queue.snapshot().delayed, 1, "not due yet");
            assert_eq!(controller.counts().failed, failures);
            clock.advance(Duration::from_secs(1));
        }
        wait_until("the key succeeded", || controller.counts().succeeded == 1);
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [1, 1],
        "RequeueAfter forgets the backoff history, so each try is a first"
    );
    assert_eq!((summary.failed, summary.succeeded), (2, 1));
    assert_eq!(queue.num_requeues(&"slow".to_string()), 0);
}

#[derive(Debug)]
enum WidgetError {
    Conflict,
}

impl std::fmt::Display for WidgetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the API server said 409")
    }
}

/// Gives every failure up, panics included, with reasons of its own.
struct GiveUp;

impl ErrorPolicy<String, WidgetError> for GiveUp {
    fn on_failure(&self, _: &String, _: Failure<'_, WidgetError>, _: u32) -> Action {
        Action::Done
    }

    fn reason(&self, _: &String, failure: Failure<'_, WidgetError>) -> Cow<'static, str> {
        match failure {
            Failure::Error(WidgetError::Conflict) => "WidgetConflict".into(),
            Failure::Panicked(_) => "WidgetPanicked".into(),
        }
    }
}

#[test]
fn a_policy_decides_for_panics_too_and_names_the_event_reason() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    let broadcaster = Broadcaster::default();
    let sink = Arc::new(MemorySink::new());
    broadcaster.start_recording_to_sink(sink.clone()).unwrap();
    let controller = Controller::new(queue.clone(), 2)
        .record_errors(
            broadcaster.recorder(EventSource::new("test-controller", "")),
            |key: &String| ObjectReference::new("Widget", "default", key.clone()),
        )
        .error_policy(GiveUp);
    for key in ["conflict", "panic"] {
        queue.add(key.to_string()).unwrap();
    }
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            controller.run(&stop, |key: &String| match key.as_str() {
                "conflict" => Err(WidgetError::Conflict),
                _ => panic!("a bug"),
            })
        });
        wait_until("both keys handled", || controller.counts().processed() == 2);
        wait_until("both given up", || idle(&queue));
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(
        (summary.failed, summary.panicked, summary.requeued),
        (2, 1, 0)
    );
    broadcaster.shutdown();
    let mut reasons: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| e.event_type == EventType::Warning)
        .map(|e| (e.involved_object.name, e.reason, e.message))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "conflict".to_string(),
                "WidgetConflict".to_string(),
                "the API server said 409".to_string()
            ),
            (
                "panic".to_string(),
                "WidgetPanicked".to_string(),
                "the handler panicked: a bug".to_string()
            ),
        ]
    );
}

#[test]
fn a_panicking_policy_falls_back_to_a_rate_limited_retry() {
    let clock = FakeClock::new();
    let queue = fake_queue(&clock);
    queue.add("k".to_string()).unwrap();
    let controller = Controller::new(queue.clone(), 1)
        .error_policy(|_: &String, _: &&str, _: u32| -> Action { panic!("a bug in the policy") });
    let stop = Stop::new();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |_: &String| Err("broken")));
        wait_until("the retry waits", || queue.snapshot().delayed == 1);
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!((summary.failed, summary.requeued), (1, 1));
    assert_eq!(queue.num_requeues(&"k".to_string()), 1, "rate limited");
}
