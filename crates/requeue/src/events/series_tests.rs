//! client-go's `tools/events` tests (docs/behaviour.md §8.4): TestRecordEventToSink,
//! TestEventf, TestEventSeriesf, TestFinishSeries,
//! TestRefreshExistingEventSeries, TestEventSeriesWithEventSinkImplRace, on a
//! FakeClock.

use super::*;
use crate::clock::{Clock, FakeClock};
use crate::events::MemorySink;
use std::thread;

const POD: (&str, &str, &str, &str) = ("Pod", "shop", "web-0", "5f0f3c52");

fn recorder(sink: Arc<dyn EventSink>, clock: &FakeClock) -> SeriesRecorder {
    SeriesRecorder::new(
        sink,
        "shop-controller",
        "shop-controller-node-a",
        Arc::new(clock.clone()),
    )
}

fn backoff(recorder: &SeriesRecorder) {
    recorder.eventf(
        &POD,
        None,
        EventType::Warning,
        "BackOff",
        "Restarting",
        format_args!("back-off restarting {}", "app"),
    );
}

fn only_series_count(recorder: &SeriesRecorder) -> Option<i32> {
    let cached = recorder.cached_events();
    assert_eq!(cached.len(), 1, "one isomorphic event");
    cached[0].series.as_ref().map(|s| s.count)
}

/// Stores by name; a patch finds the object expired: it is removed and the
/// patch answered with 404. Creating an existing name is a 409.
#[derive(Debug, Default)]
struct ExpiringSink {
    stored: Mutex<Vec<Event>>,
    calls: Mutex<Vec<&'static str>>,
}

impl EventSink for ExpiringSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        lock(&self.calls).push("create");
        let mut stored = lock(&self.stored);
        if stored
            .iter()
            .any(|e| e.metadata.name == event.metadata.name)
        {
            return Err(SinkError::Status {
                code: 409,
                message: "already exists".into(),
            });
        }
        stored.push(event.clone());
        Ok(event.clone())
    }
    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        lock(&self.calls).push("update");
        Ok(event.clone())
    }
    fn patch(&self, event: &Event, _patch: &serde_json::Value) -> Result<Event, SinkError> {
        lock(&self.calls).push("patch");
        lock(&self.stored).retain(|e| e.metadata.name != event.metadata.name);
        Err(SinkError::Status {
            code: 404,
            message: "not found".into(),
        })
    }
}

/// Records every patch body; answers each call with the event plus a
/// server-side resource version and annotation, or with `error` if set.
#[derive(Debug, Default)]
struct ServerSink {
    patches: Mutex<Vec<serde_json::Value>>,
    creates: Mutex<Vec<Event>>,
    error: Mutex<Option<SinkError>>,
}

impl ServerSink {
    fn answer(&self, event: &Event) -> Result<Event, SinkError> {
        if let Some(error) = lock(&self.error).clone() {
            return Err(error);
        }
        let mut stored = event.clone();
        stored.metadata.resource_version = "42".into();
        stored
            .metadata
            .annotations
            .insert("server".into(), "copy".into());
        Ok(stored)
    }
}

impl EventSink for ServerSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        lock(&self.creates).push(event.clone());
        self.answer(event)
    }
    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.answer(event)
    }
    fn patch(&self, event: &Event, patch: &serde_json::Value) -> Result<Event, SinkError> {
        lock(&self.patches).push(patch.clone());
        self.answer(event)
    }
}

#[test]
fn record_event_to_sink_series_patch_falls_back_to_create_one_object_stored() {
    let clock = FakeClock::new();
    let sink = Arc::new(ExpiringSink::default());
    let recorder = recorder(sink.clone(), &clock);
    backoff(&recorder);
    clock.advance(Duration::from_secs(1));
    backoff(&recorder);

    assert_eq!(*lock(&sink.calls), ["create", "patch", "create"]);
    let stored = lock(&sink.stored).clone();
    assert_eq!(stored.len(), 1, "exactly one object stored");
    assert_eq!(stored[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(only_series_count(&recorder), Some(2));
}

#[test]
fn eventf_creates_with_event_time_and_reporting_fields() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = recorder(sink.clone(), &clock);
    let node = ("Node", "", "node-a", "");
    recorder.eventf(
        &POD,
        Some(&node),
        EventType::Normal,
        "Scheduled",
        "Binding",
        format_args!("assigned {} to {}", "shop/web-0", "node-a"),
    );

    assert_eq!(sink.calls(), ["create"]);
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    let now = clock.wall_now();
    assert_eq!(event.event_time, Some(MicroTime::from(now)));
    assert_eq!(event.reporting_controller, "shop-controller");
    assert_eq!(event.reporting_instance, "shop-controller-node-a");
    assert_eq!(event.action, "Binding");
    assert_eq!(event.reason, "Scheduled");
    assert_eq!(event.event_type, EventType::Normal);
    assert_eq!(event.message, "assigned shop/web-0 to node-a");
    assert_eq!(event.involved_object, POD.object_reference());
    assert_eq!(event.related, Some(node.object_reference()));
    assert_eq!(event.metadata.name, super::super::event_name("web-0", now));
    assert_eq!(event.metadata.namespace, "shop");
    assert_eq!(event.series, None);
    assert_eq!(event.count, 0);
    assert!(event.first_timestamp.is_zero());
}

#[test]
fn event_seriesf_two_identical_make_series_count_2() {
    let clock = FakeClock::new();
    let sink = Arc::new(ServerSink::default());
    let recorder = recorder(sink.clone(), &clock);
    backoff(&recorder);
    clock.advance(Duration::from_secs(2));
    backoff(&recorder);

    let second = MicroTime::from(clock.wall_now());
    let patches = lock(&sink.patches).clone();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["series"]["count"], 2);
    assert_eq!(
        patches[0]["series"]["lastObservedTime"],
        second.to_string().as_str()
    );
    let cached = recorder.cached_events();
    assert_eq!(cached[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        cached[0].metadata.resource_version, "42",
        "the server's copy is cached"
    );

    // A different reason is not isomorphic: a new create.
    recorder.eventf(
        &POD,
        None,
        EventType::Warning,
        "Failed",
        "Restarting",
        format_args!("back-off restarting app"),
    );
    assert_eq!(lock(&sink.creates).len(), 2);
    assert_eq!(recorder.cached_events().len(), 2);
}

#[test]
fn series_third_occurrence_sends_nothing_until_a_job_runs() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = recorder(sink.clone(), &clock);
    for _ in 0..5 {
        backoff(&recorder);
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(sink.calls(), ["create", "patch"]);
    assert_eq!(only_series_count(&recorder), Some(5));
    assert_eq!(
        sink.events()[0].series.as_ref().map(|s| s.count),
        Some(2),
        "the server still has the second occurrence"
    );

    recorder.refresh_existing_series();
    assert_eq!(sink.calls(), ["create", "patch", "patch"]);
    assert_eq!(sink.events()[0].series.as_ref().map(|s| s.count), Some(5));
}

#[test]
fn finish_series_sends_a_final_count_and_forgets_stale_series() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = recorder(sink.clone(), &clock);
    for _ in 0..4 {
        backoff(&recorder);
    }
    let last_seen = MicroTime::from(clock.wall_now());

    clock.advance(FINISH_TIME);
    recorder.finish_series();
    assert_eq!(sink.calls(), ["create", "patch"], "not stale yet");
    assert_eq!(only_series_count(&recorder), Some(4));

    clock.advance(Duration::from_secs(1));
    recorder.finish_series();
    assert_eq!(sink.calls(), ["create", "patch", "patch"]);
    let stored = sink.events();
    assert_eq!(
        stored[0].series,
        Some(EventSeries {
            count: 4,
            last_observed_time: last_seen
        }),
        "the final count"
    );
    assert!(recorder.cached_events().is_empty(), "forgotten");

    recorder.finish_series();
    assert_eq!(sink.calls().len(), 3, "nothing left to finish");
}

#[test]
fn finish_series_drops_stale_singletons_without_sending() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = recorder(sink.clone(), &clock);
    backoff(&recorder);
    clock.advance(FINISH_TIME + Duration::from_secs(1));
    // A fresh series next to the stale singleton stays.
    recorder.eventf(
        &POD,
        None,
        EventType::Normal,
        "Pulled",
        "Pulling",
        format_args!("pulled"),
    );
    recorder.eventf(
        &POD,
        None,
        EventType::Normal,
        "Pulled",
        "Pulling",
        format_args!("pulled"),
    );
    let calls = sink.calls();
    assert_eq!(calls, ["create", "create", "patch"]);

    recorder.finish_series();
    assert_eq!(sink.calls(), calls, "nothing sent");
    let cached = recorder.cached_events();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].reason, "Pulled");
}

#[test]
fn refresh_existing_series_resends_and_keeps_the_server_copy() {
    let clock = FakeClock::new();
    let sink = Arc::new(ServerSink::default());
    let recorder = recorder(sink.clone(), &clock);
    backoff(&recorder);
    backoff(&recorder);
    backoff(&recorder);
    // A singleton is not refreshed.
    recorder.eventf(
        &POD,
        None,
        EventType::Normal,
        "Pulled",
        "Pulling",
        format_args!("pulled"),
    );
    *lock(&sink.error) = Some(SinkError::Transport("down".into()));
    let before = recorder.cached_events();

    recorder.refresh_existing_series();
    assert_eq!(lock(&sink.patches).len(), 2, "one write per series");
    let mut after = recorder.cached_events();
    let mut before = before;
    before.sort_by(|a, b| a.reason.cmp(&b.reason));
    after.sort_by(|a, b| a.reason.cmp(&b.reason));
    assert_eq!(after, before, "cache kept on error");

    *lock(&sink.error) = None;
    let key = SeriesKey::of(&before[0]);
    let mut local = recorder.cached(&key).expect("cached");
    local.metadata.annotations.clear();
    lock(&recorder.cache).events.add(key.clone(), local.clone());
    recorder.refresh_existing_series();
    let patches = lock(&sink.patches).clone();
    assert_eq!(patches.len(), 3);
    assert_eq!(patches[2]["series"]["count"], 3);
    let refreshed = recorder.cached(&key).expect("cached");
    assert_eq!(
        refreshed
            .metadata
            .annotations
            .get("server")
            .map(String::as_str),
        Some("copy"),
        "the server's copy is stored"
    );
    assert_eq!(refreshed.series.as_ref().map(|s| s.count), Some(3));
}

#[test]
fn concurrent_series_recording_is_race_free() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = Arc::new(recorder(sink.clone(), &clock));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let recorder = Arc::clone(&recorder);
            thread::spawn(move || {
                for _ in 0..100 {
                    backoff(&recorder);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    assert_eq!(only_series_count(&recorder), Some(800));
    assert_eq!(sink.events().len(), 1, "one object stored");

    clock.advance(FINISH_TIME + Duration::from_secs(1));
    recorder.finish_series();
    assert!(recorder.cached_events().is_empty());
    assert_eq!(sink.events()[0].series.as_ref().map(|s| s.count), Some(800));
}

#[test]
fn spawn_jobs_finishes_series_on_the_clock_and_stops() {
    let clock = FakeClock::new();
    let sink = Arc::new(MemorySink::new());
    let recorder = recorder(sink.clone(), &clock);
    backoff(&recorder);
    backoff(&recorder);
    let stop = Stop::new();
    let group = recorder.spawn_jobs(&stop).expect("threads");
    // Both jobs ran once at once (the refresh re-sent the series) and wait.
    assert!(clock.wait_for_waiters(2, Duration::from_secs(10)));
    clock.advance(FINISH_TIME + Duration::from_secs(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !recorder.cached_events().is_empty() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert!(recorder.cached_events().is_empty(), "finished on the clock");
    stop.stop();
    group.wait();
    assert_eq!(sink.events()[0].series.as_ref().map(|s| s.count), Some(2));
}

/// Events about more objects than the cache holds keep it at its
/// capacity: the key observed least recently is evicted, counted, and, if
/// it is a series, sent once more with its final count. Before the cap,
/// the cache kept all 1,000 keys until the finish job ran.
#[test]
fn the_cache_stays_within_its_capacity_and_finishes_what_it_evicts() {
    let clock = FakeClock::new();
    let sink = Arc::new(ServerSink::default());
    let recorder = recorder(sink.clone(), &clock).with_cache_capacity(8);
    for _ in 0..3 {
        backoff(&recorder); // a series of 3, observed first of all
    }
    let series_calls = lock(&sink.patches).len();
    for i in 1..1000 {
        let pod = ("Pod", "shop", format!("web-{i}"), format!("uid-{i}"));
        recorder.eventf(
            &pod,
            None,
            EventType::Normal,
            "Scheduled",
            "Binding",
            format_args!("assigned"),
        );
        assert!(recorder.cached_events().len() <= 8);
    }
    assert_eq!(recorder.cached_events().len(), 8);
    assert_eq!(recorder.evicted(), 1000 - 8);
    let patches = lock(&sink.patches);
    assert_eq!(
        patches.len(),
        series_calls + 1,
        "the evicted series was finished with one more write"
    );
    assert_eq!(
        patches.last().map(|p| p["series"]["count"].clone()),
        Some(3.into())
    );
}
