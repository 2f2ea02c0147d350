//! The reconcile span says why each key was queued, in both runners.
//!
//! The spans are captured by a subscriber of this file, installed as the
//! global default (worker threads and tokio tasks do not see a thread's
//! scoped subscriber); each test names its queue and reads only its own.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::FakeClock;
use requeue::controller::{Action, Controller};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use support::wait_until;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The fields of one `reconcile` span.
#[derive(Debug, Default, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reconcile {
    queue: String,
    key: String,
    attempt: Option<u64>,
    cause: String,
}

impl Visit for Reconcile {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "queue" => self.queue = value.to_string(),
            "cause" => self.cause = value.to_string(),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "attempt" {
            self.attempt = Some(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "key" {
            self.key = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

/// Records every `reconcile` span; ignores everything else.
struct Capture {
    spans: Mutex<Vec<Reconcile>>,
    next_id: AtomicU64,
}

static CAPTURE: Capture = Capture {
    spans: Mutex::new(Vec::new()),
    next_id: AtomicU64::new(1),
};

// On the reference: the global default must be owned, and the tests read
// the static.
impl Subscriber for &'static Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        if span.metadata().name() == "reconcile" {
            let mut fields = Reconcile::default();
            span.record(&mut fields);
            self.spans.lock().unwrap().push(fields);
        }
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The capture, installed as the global default on first use.
fn captured() -> &'static Capture {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| tracing::subscriber::set_global_default(&CAPTURE).unwrap());
    &CAPTURE
}

/// The spans of queue `name`, sorted.
fn spans_of(name: &str) -> Vec<(String, Option<u64>, String)> {
    let mut spans: Vec<_> = captured()
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.queue == name)
        .map(|s| (s.key.clone(), s.attempt, s.cause.clone()))
        .collect();
    spans.sort();
    spans
}

/// A queue named `name` on `clock` whose retries come back at once.
fn queue(name: &str, clock: &FakeClock) -> WorkQueue<String> {
    WorkQueue::builder()
        .name(name)
        .clock(clock.clone())
        .rate_limiter(ItemExponential::new(Duration::ZERO, Duration::ZERO))
        .build()
}

/// The handler of both tests: `flaky` fails once, `again` asks to come
/// back at once, `later` in 10 s; everything else is done.
fn handle(calls: &Mutex<HashMap<String, u32>>, key: &str) -> Result<Action, &'static str> {
    let mut calls = calls.lock().unwrap();
    let n = calls.entry(key.to_string()).or_default();
    *n += 1;
    match (key, *n) {
        ("flaky", 1) => Err("not yet"),
        ("again", 1) => Ok(Action::Requeue),
        ("later", 1) => Ok(Action::RequeueAfter(Duration::from_secs(10))),
        _ => Ok(Action::Done),
    }
}

const KEYS: [&str; 4] = ["plain", "flaky", "again", "later"];
/// Every handler call of the scenario: the four keys, three of them twice,
/// and the resynced key.
const CALLS: u64 = 8;

fn expected() -> Vec<(String, Option<u64>, String)> {
    let mut spans: Vec<_> = [
        ("plain", 1, "add"),
        ("flaky", 1, "add"),
        ("flaky", 2, "retry"),
        ("again", 1, "add"),
        ("again", 1, "requeue"),
        ("later", 1, "add"),
        ("later", 1, "requeue-after"),
        ("listed", 1, "resync"),
    ]
    .into_iter()
    .map(|(key, attempt, cause)| (key.to_string(), Some(attempt), cause.to_string()))
    .collect();
    spans.sort();
    spans
}

/// Waits for `later` to wait out its delay, lets it out, and waits for
/// every call.
fn drive(clock: &FakeClock, queue: &WorkQueue<String>, processed: impl Fn() -> u64) {
    wait_until("all but the delayed call", || processed() == CALLS - 1);
    wait_until("the delayed key waits", || queue.snapshot().delayed == 1);
    clock.advance(Duration::from_secs(10));
    wait_until("every call", || processed() == CALLS);
}

#[test]
fn the_blocking_runner_names_the_cause_of_each_reconcile() {
    let name = "span-blocking";
    let _ = captured();
    let clock = FakeClock::new();
    let queue = queue(name, &clock);
    for key in KEYS {
        queue.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue.clone(), 2)
        .resync(Duration::from_secs(3600), || vec!["listed".to_string()]);
    let calls = Mutex::default();
    let stop = Stop::new();
    std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |key: &String| handle(&calls, key)));
        drive(&clock, &queue, || controller.counts().processed());
        stop.stop();
        run.join().unwrap()
    });
    assert_eq!(spans_of(name), expected());
}

#[test]
fn the_async_runner_names_the_cause_of_each_reconcile() {
    let name = "span-async";
    let _ = captured();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let clock = FakeClock::new();
    let queue = queue(name, &clock);
    for key in KEYS {
        queue.add(key.to_string()).unwrap();
    }
    let controller = Controller::new(queue.clone(), 2)
        .resync(Duration::from_secs(3600), || vec!["listed".to_string()]);
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let stop = Stop::new();
    let run = {
        let (controller, stop) = (controller.clone(), stop.clone());
        runtime.spawn(async move {
            controller
                .run_async(&stop, move |key: String| {
                    let calls = calls.clone();
                    async move { handle(&calls, &key) }
                })
                .await
        })
    };
    drive(&clock, &queue, || controller.counts().processed());
    stop.stop();
    runtime.block_on(run).unwrap();
    assert_eq!(spans_of(name), expected());
}
