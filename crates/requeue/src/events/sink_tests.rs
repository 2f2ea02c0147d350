//! client-go's sink tests (docs/behaviour.md §8.4: TestWriteEventError,
//! TestUpdateExpiredEvent, TestCancelEvent, TestMultiSinkCache, TestEventf's
//! create-then-patch) with the retry waits on a FakeClock.

use super::*;
use crate::clock::FakeClock;
use crate::events::{CorrelatorOptions, EventSource, EventType, ObjectReference};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

fn event(message: &str) -> Event {
    Event::new(
        ObjectReference::new("Pod", "default", "web-0"),
        EventType::Normal,
        "Started",
        message,
        EventSource::new("ctrl", ""),
        SystemTime::now(),
    )
}

fn correlator(clock: &FakeClock) -> Correlator {
    Correlator::new(CorrelatorOptions {
        clock: Arc::new(clock.clone()),
        ..CorrelatorOptions::default()
    })
}

/// Fails the first `failures` calls with `error`, then stores in memory.
struct Flaky {
    failures: u32,
    error: SinkError,
    calls: AtomicU32,
    inner: MemorySink,
}

impl Flaky {
    fn new(failures: u32, error: SinkError) -> Self {
        Flaky {
            failures,
            error,
            calls: AtomicU32::new(0),
            inner: MemorySink::new(),
        }
    }
    fn fail(&self) -> Option<SinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (n < self.failures).then(|| self.error.clone())
    }
}

impl EventSink for Flaky {
    fn create(&self, e: &Event) -> Result<Event, SinkError> {
        self.fail().map_or_else(|| self.inner.create(e), Err)
    }
    fn update(&self, e: &Event) -> Result<Event, SinkError> {
        self.fail().map_or_else(|| self.inner.update(e), Err)
    }
    fn patch(&self, e: &Event, p: &serde_json::Value) -> Result<Event, SinkError> {
        self.fail().map_or_else(|| self.inner.patch(e, p), Err)
    }
}

/// Records on another thread while this one advances the fake clock
/// through every retry wait.
fn deliver(sink: &Flaky, clock: &FakeClock, stop: &Stop) -> Delivery {
    let shared: SharedClock = Arc::new(clock.clone());
    let c = correlator(clock);
    std::thread::scope(|s| {
        let worker =
            s.spawn(|| record_to_sink(sink, &c, &event("x"), DEFAULT_RETRY_SLEEP, &shared, stop));
        while !worker.is_finished() {
            if clock.wait_for_waiters(1, Duration::from_millis(10)) {
                clock.advance(DEFAULT_RETRY_SLEEP);
            }
        }
        worker.join().unwrap_or_else(|_| panic!("worker panicked"))
    })
}

#[test]
fn write_errors_are_retried_or_not_as_client_go_does() {
    let clock = FakeClock::new();
    let stop = Stop::never();
    let cases = [
        (SinkError::RequestConstruction("bad".into()), 1),
        (
            SinkError::Status {
                code: 500,
                message: "no".into(),
            },
            1,
        ),
        (SinkError::UnexpectedObject("pod".into()), 12),
        (SinkError::Transport("reset".into()), 12),
    ];
    for (error, expected) in cases {
        let sink = Flaky::new(u32::MAX, error.clone());
        let delivery = deliver(&sink, &clock, &stop);
        assert_eq!(
            delivery,
            Delivery::Failed {
                attempts: expected,
                error
            },
            "{expected} attempts"
        );
    }
}

#[test]
fn one_failure_then_success_takes_two_attempts() {
    let clock = FakeClock::new();
    let sink = Flaky::new(1, SinkError::Transport("reset".into()));
    assert_eq!(
        deliver(&sink, &clock, &Stop::never()),
        Delivery::Written { attempts: 2 }
    );
    assert_eq!(sink.inner.events().len(), 1);
}

#[test]
fn a_cancelled_delivery_makes_exactly_one_attempt() {
    let clock = FakeClock::new();
    let sink = Flaky::new(u32::MAX, SinkError::Transport("reset".into()));
    let shared: SharedClock = Arc::new(clock.clone());
    let stop = Stop::stopped_already();
    let c = correlator(&clock);
    let delivery = record_to_sink(&sink, &c, &event("x"), DEFAULT_RETRY_SLEEP, &shared, &stop);
    assert_eq!(delivery, Delivery::Stopped { attempts: 1 });
}

#[test]
fn a_repeat_is_a_patch_and_a_vanished_object_is_created_again() {
    let clock = FakeClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let sink = MemorySink::new();
    let c = correlator(&clock);
    let stop = Stop::never();
    let send = |e: &Event| record_to_sink(&sink, &c, e, DEFAULT_RETRY_SLEEP, &shared, &stop);
    assert_eq!(send(&event("x")), Delivery::Written { attempts: 1 });
    assert_eq!(send(&event("x")), Delivery::Written { attempts: 1 });
    assert_eq!(sink.calls(), ["create", "patch"]);
    assert_eq!(sink.events()[0].count, 2);

    // The stored event expired: the patch is answered 404, so it is created again.
    let expired = MemorySink::new();
    let c2 = correlator(&clock);
    c2.update_state(&c.correlate(&event("y")).event);
    let again = c2.correlate(&event("y"));
    assert!(again.patch.is_some());
    let stored = write_once(&expired, &again.event, again.patch.as_ref()).expect("created");
    assert_eq!(expired.calls(), ["patch", "create"]);
    assert_eq!(stored.count, again.event.count);
}

#[test]
fn two_sinks_keep_independent_counts() {
    let clock = FakeClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let (a, b) = (MemorySink::new(), MemorySink::new());
    let (ca, cb) = (correlator(&clock), correlator(&clock));
    let stop = Stop::never();
    for _ in 0..3 {
        record_to_sink(&a, &ca, &event("x"), DEFAULT_RETRY_SLEEP, &shared, &stop);
    }
    record_to_sink(&b, &cb, &event("x"), DEFAULT_RETRY_SLEEP, &shared, &stop);
    assert_eq!((a.events()[0].count, b.events()[0].count), (3, 1));
}

#[test]
fn a_bounded_sink_keeps_the_last_events_and_counts_every_call() {
    let clock = FakeClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let sink = MemorySink::with_capacity(3);
    let c = correlator(&clock);
    let stop = Stop::never();
    let on = |name: &str| {
        Event::new(
            ObjectReference::new("Pod", "default", name),
            EventType::Warning,
            "Failed",
            format!("{name} failed"),
            EventSource::new("ctrl", ""),
            SystemTime::now(),
        )
    };
    for i in 0..10 {
        let e = on(&format!("web-{i}"));
        assert_eq!(
            record_to_sink(&sink, &c, &e, DEFAULT_RETRY_SLEEP, &shared, &stop),
            Delivery::Written { attempts: 1 }
        );
    }
    let kept: Vec<String> = sink
        .events()
        .into_iter()
        .map(|e| e.involved_object.name)
        .collect();
    assert_eq!(kept, ["web-7", "web-8", "web-9"], "the oldest made room");
    // A kept event's repeat patches it in place.
    record_to_sink(&sink, &c, &on("web-8"), DEFAULT_RETRY_SLEEP, &shared, &stop);
    assert_eq!(sink.events()[1].count, 2);
    // A dropped event's repeat is answered 404 and created again.
    record_to_sink(&sink, &c, &on("web-0"), DEFAULT_RETRY_SLEEP, &shared, &stop);
    let kept: Vec<(String, i32)> = sink
        .events()
        .into_iter()
        .map(|e| (e.involved_object.name, e.count))
        .collect();
    assert_eq!(
        kept,
        [
            ("web-8".into(), 2),
            ("web-9".into(), 1),
            ("web-0".into(), 2)
        ]
    );
    assert_eq!(
        sink.call_counts(),
        SinkCalls {
            created: 11,
            updated: 0,
            patched: 2
        }
    );
    assert_eq!(sink.calls(), ["patch", "patch", "create"], "the last 3");
}

#[test]
fn an_unbounded_sink_keeps_everything() {
    let sink = MemorySink::new();
    for i in 0..100 {
        let mut e = event("x");
        e.metadata.name = format!("e-{i}");
        sink.create(&e).expect("new name");
    }
    assert_eq!((sink.events().len(), sink.calls().len()), (100, 100));
    assert_eq!(sink.call_counts().created, 100);
    assert!(sink.create(&sink.events()[0]).is_err(), "409 on a repeat");
}
