//! The broadcaster and recorder (docs/behaviour.md §8.4: TestBroadcasterShutdown,
//! TestNonRacyShutdown, TestEventf's create-then-patch, TestLotsOfEvents) and
//! the bounded hand-off under a burst.

use super::*;
use crate::clock::FakeClock;
use crate::events::{MemorySink, SinkError};
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn broadcaster(clock: &FakeClock) -> Broadcaster {
    let shared: SharedClock = Arc::new(clock.clone());
    Broadcaster::new(BroadcasterOptions {
        clock: shared.clone(),
        correlator: CorrelatorOptions {
            clock: shared,
            ..CorrelatorOptions::default()
        },
        ..BroadcasterOptions::default()
    })
}

const POD: (&str, &str, &str, &str) = ("Pod", "shop", "web-0", "uid-1");

#[test]
fn recorded_events_reach_the_sink_created_then_patched() {
    let b = broadcaster(&FakeClock::new());
    let sink = Arc::new(MemorySink::new());
    b.start_recording_to_sink(sink.clone()).expect("thread");
    let recorder = b.recorder(EventSource::new("shop-controller", "node-a"));
    recorder.event(&POD, EventType::Normal, "Started", "started");
    recorder.eventf(
        &POD,
        EventType::Normal,
        "Started",
        format_args!("{}", "started"),
    );
    b.shutdown();
    assert_eq!(sink.calls(), ["create", "patch"]);
    let stored = sink.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].count, 2);
    assert_eq!(stored[0].reporting_controller, "shop-controller");
    assert_eq!(stored[0].involved_object.uid, "uid-1");
}

#[test]
fn shutdown_delivers_what_is_queued_then_ends_every_watcher_thread() {
    let b = broadcaster(&FakeClock::new());
    let seen = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let seen = seen.clone();
        b.start_event_watcher(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .expect("thread");
    }
    let recorder = b.recorder(EventSource::new("c", ""));
    for i in 0..10 {
        recorder.eventf(&POD, EventType::Normal, "Tick", format_args!("{i}"));
    }
    b.shutdown(); // joins the threads: none is left behind
    assert_eq!(seen.load(Ordering::SeqCst), 30);
    recorder.event(&POD, EventType::Normal, "Late", "after shutdown");
    assert_eq!(
        b.dropped(),
        1,
        "an event after shutdown is dropped and counted"
    );
}

#[test]
fn concurrent_recording_and_shutdown_do_not_race() {
    let b = broadcaster(&FakeClock::new());
    b.start_event_watcher(|_| {}).expect("thread");
    let recorder = b.recorder(EventSource::new("c", ""));
    std::thread::scope(|s| {
        for i in 0..100 {
            let recorder = recorder.clone();
            s.spawn(move || recorder.eventf(&POD, EventType::Warning, "Racy", format_args!("{i}")));
        }
        s.spawn(|| b.shutdown());
    });
}

#[test]
fn a_burst_from_8_threads_is_bounded_and_the_drop_count_is_exact() {
    let b = broadcaster(&FakeClock::new());
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicUsize::new(0));
    {
        let (release, entered, handled) = (release.clone(), entered.clone(), handled.clone());
        b.start_event_watcher(move |_| {
            entered.store(true, Ordering::SeqCst);
            while !release.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            handled.fetch_add(1, Ordering::SeqCst);
        })
        .expect("thread");
    }
    let recorder = b.recorder(EventSource::new("c", ""));
    recorder.event(&POD, EventType::Normal, "First", "holds the watcher");
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !entered.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < give_up,
            "the watcher never started"
        );
        std::thread::yield_now();
    }
    const PER_THREAD: usize = 12_500;
    std::thread::scope(|s| {
        for t in 0..8 {
            let recorder = recorder.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    recorder.eventf(&POD, EventType::Normal, "Burst", format_args!("{t}-{i}"));
                }
            });
        }
    });
    // The watcher holds one event; its queue holds exactly the capacity.
    let burst = 8 * PER_THREAD as u64;
    assert_eq!(b.dropped(), burst - DEFAULT_QUEUE_CAPACITY as u64);
    release.store(true, Ordering::SeqCst);
    b.shutdown();
    assert_eq!(handled.load(Ordering::SeqCst), 1 + DEFAULT_QUEUE_CAPACITY);
}

#[test]
fn lots_of_failing_events_are_all_eventually_written() {
    let clock = FakeClock::new();
    let b = Broadcaster::new(BroadcasterOptions {
        retry_sleep: Duration::ZERO,
        clock: Arc::new(clock.clone()),
        correlator: CorrelatorOptions {
            clock: Arc::new(clock.clone()),
            spam_filter: false,
            ..CorrelatorOptions::default()
        },
        ..BroadcasterOptions::default()
    });
    /// Fails each event's first three writes.
    struct FailThrice {
        tries: Mutex<std::collections::HashMap<String, u32>>,
        inner: MemorySink,
    }
    impl EventSink for FailThrice {
        fn create(&self, e: &Event) -> Result<Event, SinkError> {
            let mut tries = lock(&self.tries);
            let n = tries.entry(e.message.clone()).or_default();
            *n += 1;
            if *n <= 3 {
                return Err(SinkError::Transport("flaky".into()));
            }
            drop(tries);
            self.inner.create(e)
        }
        fn update(&self, e: &Event) -> Result<Event, SinkError> {
            self.inner.update(e)
        }
        fn patch(&self, e: &Event, p: &serde_json::Value) -> Result<Event, SinkError> {
            self.inner.patch(e, p)
        }
    }
    let sink = Arc::new(FailThrice {
        tries: Mutex::new(Default::default()),
        inner: MemorySink::new(),
    });
    b.start_recording_to_sink(sink.clone()).expect("thread");
    let recorder = b.recorder(EventSource::new("c", ""));
    for i in 0..200 {
        let object = ObjectReferenceFor(i);
        recorder.eventf(
            &object,
            EventType::Normal,
            "Many",
            format_args!("event {i}"),
        );
    }
    // Retries happen while the broadcaster runs; a shutdown would cut them short.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while sink.inner.events().len() < 200 {
        assert!(std::time::Instant::now() < give_up, "events were lost");
        std::thread::yield_now();
    }
    b.shutdown();
    assert_eq!(sink.inner.events().len(), 200, "none dropped");
    assert_eq!(b.dropped(), 0);
}

/// A distinct object per index.
struct ObjectReferenceFor(usize);
impl Involved for ObjectReferenceFor {
    fn object_reference(&self) -> super::super::ObjectReference {
        super::super::ObjectReference::new("Pod", "default", format!("pod-{}", self.0))
    }
}

#[test]
fn firing_the_stop_signal_shuts_down_and_ends_the_watchers() {
    let stop = Stop::new();
    let b = Broadcaster::new(BroadcasterOptions {
        stop: Some(stop.clone()),
        clock: Arc::new(FakeClock::new()),
        ..BroadcasterOptions::default()
    });
    /// Sets its flag when the watcher's handler (and so its thread) is gone.
    struct Gone(Arc<AtomicBool>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let gone = Arc::new(AtomicBool::new(false));
    let guard = Gone(gone.clone());
    b.start_event_watcher(move |_| {
        let _keep = &guard;
    })
    .expect("thread");
    b.start_logging().expect("thread");
    stop.stop();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !gone.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < give_up,
            "the watcher outlived the stop"
        );
        std::thread::yield_now();
    }
    b.recorder(EventSource::new("c", ""))
        .event(&POD, EventType::Normal, "Late", "x");
    assert_eq!(b.dropped(), 1, "shut down: refused");
}

#[test]
fn eventf_repeats_patch_one_object_and_other_uid_field_path_or_reason_are_separate() {
    use crate::events::ObjectReference;
    let b = broadcaster(&FakeClock::new());
    let sink = Arc::new(MemorySink::new());
    b.start_recording_to_sink(sink.clone()).expect("thread");
    let recorder = b.recorder(EventSource::new("eventTest", "node-a"));
    let pod = ObjectReference::new("Pod", "baz", "foo")
        .with_uid("bar")
        .with_api_version("v1");
    let container = pod.clone().with_field_path("spec.containers[2]");
    let other_uid = pod.clone().with_uid("differentUid");
    for _ in 0..3 {
        recorder.event(
            &pod,
            EventType::Normal,
            "Started",
            "some verbose message: 1",
        );
    }
    recorder.event(
        &container,
        EventType::Normal,
        "Started",
        "some verbose message: 1",
    );
    recorder.event(
        &other_uid,
        EventType::Normal,
        "Started",
        "some verbose message: 1",
    );
    recorder.event(
        &pod,
        EventType::Normal,
        "Stopped",
        "some verbose message: 1",
    );
    b.shutdown();
    assert_eq!(
        sink.calls(),
        ["create", "patch", "patch", "create", "create", "create"]
    );
    let stored = sink.events();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].count, 3);
    assert_eq!(
        (
            stored[0].source.component.as_str(),
            stored[0].reporting_controller.as_str()
        ),
        ("eventTest", "eventTest")
    );
    assert!(stored[1..].iter().all(|e| e.count == 1));
}

#[test]
fn a_channel_watcher_receives_every_event_and_ends_at_shutdown() {
    let b = broadcaster(&FakeClock::new());
    let events = b.watch().expect("thread");
    let recorder = b.recorder(EventSource::new("c", ""));
    for i in 0..5 {
        recorder.eventf(&POD, EventType::Normal, "Tick", format_args!("{i}"));
    }
    b.shutdown();
    let messages: Vec<String> = events.iter().map(|e| e.message).collect();
    assert_eq!(messages, ["0", "1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_record_without_blocking_the_runtime() {
    let b = broadcaster(&FakeClock::new());
    let sink = Arc::new(MemorySink::new());
    b.start_recording_to_sink(sink.clone()).expect("thread");
    let recorder = b.recorder(EventSource::new("async-controller", ""));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let recorder = recorder.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let object = ("Pod", "shop", format!("pod-{t}"), format!("uid-{t}"));
                    recorder.eventf(
                        &object,
                        EventType::Normal,
                        "Synced",
                        format_args!("round {i}"),
                    );
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let b2 = b.clone();
    tokio::task::spawn_blocking(move || b2.shutdown())
        .await
        .expect("shutdown");
    // Ten different messages per object: nine events, then one aggregate.
    assert_eq!(sink.events().len(), 8 * 10);
    assert_eq!(b.dropped(), 0);
}

/// A `watch` channel nobody reads holds at most the queue's capacity; the
/// rest is dropped and counted (and logged). Before, a thread forwarded
/// the watcher's queue into an unbounded channel that kept every event:
/// nothing was dropped and memory grew with every event recorded.
#[test]
fn an_unread_watch_channel_holds_at_most_the_queue_capacity() {
    let shared: SharedClock = Arc::new(FakeClock::new());
    let b = Broadcaster::new(BroadcasterOptions {
        queue_capacity: 10,
        clock: shared.clone(),
        correlator: CorrelatorOptions {
            clock: shared,
            ..CorrelatorOptions::default()
        },
        ..BroadcasterOptions::default()
    });
    let events = b.watch().expect("a channel");
    let recorder = b.recorder(EventSource::new("c", ""));
    const RECORDED: u64 = 10_000;
    for i in 0..RECORDED {
        recorder.eventf(&POD, EventType::Normal, "Tick", format_args!("{i}"));
    }
    assert_eq!(b.dropped(), RECORDED - 10);
    b.shutdown();
    let kept: Vec<String> = events.iter().map(|e| e.message).collect();
    assert_eq!(kept, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// A `watch` receiver dropped early takes its watcher with it: its events
/// are not counted as dropped, and the broadcaster keeps no dead watcher.
#[test]
fn a_dropped_watch_receiver_is_forgotten() {
    let b = broadcaster(&FakeClock::new());
    let recorder = b.recorder(EventSource::new("c", ""));
    for i in 0..100 {
        drop(b.watch().expect("a channel"));
        recorder.eventf(&POD, EventType::Normal, "Tick", format_args!("{i}"));
    }
    assert_eq!(b.dropped(), 0);
    assert_eq!(lock(&b.inner.watchers).len(), 0);
    b.shutdown();
}
