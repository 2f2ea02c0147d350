//! Kubernetes events (client-go's `tools/record`): tell users what happened
//! to an object the way `kubectl describe` and `kubectl get events` show it.
//!
//! # Usage
//!
//! An [`Event`] is the core/v1 `Event` object. It serialises (with `serde`)
//! to exactly the JSON the Kubernetes API server reads and writes, so it can
//! be posted to a cluster, written to a file, or read back from either.
//! [`Event::new`] fills it in the way client-go's recorder does; the object
//! it is about is anything [`Involved`] — an [`ObjectReference`] or a
//! `(kind, namespace, name, uid)` tuple.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use requeue::events::{Event, EventSource, EventType, Involved, ObjectReference};
//!
//! let pod = ObjectReference::new("Pod", "shop", "web-0")
//!     .with_uid("5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10")
//!     .with_api_version("v1")
//!     .with_field_path("spec.containers{app}");
//! let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_445_880);
//! let event = Event::new(
//!     pod.object_reference(),
//!     EventType::Warning,
//!     "BackOff",
//!     "Back-off restarting failed container app",
//!     EventSource::new("my-controller", "node-a"),
//!     at,
//! );
//!
//! let json = serde_json::to_string_pretty(&event).unwrap();
//! println!("{json}");
//! assert!(json.contains(r#""name": "web-0.18eab483e2d6b000""#));
//! assert!(json.contains(r#""firstTimestamp": "2026-11-23T14:58:00Z""#));
//! assert!(json.contains(r#""type": "Warning""#));
//! assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
//! ```
//!
//! | Go (`k8s.io/api/core/v1`, `apimachinery`) | requeue |
//! |---|---|
//! | `v1.Event` | [`Event`] |
//! | `metav1.ObjectMeta` (name, namespace, resourceVersion, annotations) | [`ObjectMeta`] |
//! | `v1.ObjectReference`, `ref.GetReference` | [`ObjectReference`], [`Involved`] |
//! | `v1.EventSource`, `v1.EventSeries` | [`EventSource`], [`EventSeries`] |
//! | `v1.EventTypeNormal`, `v1.EventTypeWarning` | [`EventType::Normal`], [`EventType::Warning`] |
//! | `metav1.Time`, `metav1.MicroTime` | [`Time`], [`MicroTime`] |
//! | `generateEventName`, `validation.IsDNS1123Subdomain` | [`event_name`], [`is_dns1123_subdomain`] |
//! | `record.EventCorrelator`, `CorrelatorOptions`, `EventCorrelate`, `UpdateState` | [`Correlator`], [`CorrelatorOptions`], [`Correlator::correlate`], [`Correlator::update_state`] |
//! | `EventAggregatorByReasonFunc`, `EventAggregatorByReasonMessageFunc`, `getSpamKey`, `getEventKey` | [`aggregate_by_reason`], [`combined_message`], [`spam_key`], [`event_key`] |
//! | `record.EventSink` (`Create`, `Update`, `Patch`) | [`EventSink`], errors as [`SinkError`] |
//! | `recordToSink` (12 tries, randomised first wait, 404 patch → create) | [`record_to_sink`] → [`Delivery`] |
//! | `tools/events.GetFieldSelector` | [`field_selector`] |
//! | `record.NewBroadcaster`, `StartEventWatcher`, `StartRecordingToSink`, `StartStructuredLogging`, `Shutdown` | [`Broadcaster`], [`Broadcaster::start_event_watcher`], [`Broadcaster::start_recording_to_sink`], [`Broadcaster::start_logging`], [`Broadcaster::shutdown`] |
//! | `EventRecorder.Event`, `Eventf`, `AnnotatedEventf` | [`Recorder::event`], [`Recorder::eventf`], [`Recorder::annotated_event`] |
//! | `watch.Interface` of a broadcaster | [`Broadcaster::watch`] (a channel) |
//! | `tools/events` recorder with `EventSeries`, `finishSeries`, `refreshExistingEventSeries` | [`SeriesRecorder`], [`SeriesRecorder::finish_series`], [`SeriesRecorder::refresh_existing_series`] |
//!
//! The whole pipeline: a [`Broadcaster`] hands every recorded event to its
//! watchers; each sink gets a correlator of its own.
//!
//! ```
//! use std::sync::Arc;
//! use requeue::events::{Broadcaster, EventSource, EventType, MemorySink};
//!
//! let broadcaster = Broadcaster::default();
//! let sink = Arc::new(MemorySink::new());
//! broadcaster.start_recording_to_sink(sink.clone()).expect("a thread");
//! let recorder = broadcaster.recorder(EventSource::new("shop-controller", ""));
//! let pod = ("Pod", "shop", "web-0", "5f0f3c52");
//! for attempt in 1..=3 {
//!     recorder.eventf(&pod, EventType::Warning, "BackOff", format_args!("restarting ({attempt})"));
//! }
//! broadcaster.shutdown(); // delivers what is queued, then stops
//! assert_eq!(sink.events().len(), 3, "three different messages, three events");
//! ```
//!
//! A [`Correlator`] decides what to write for each event: create it, patch
//! an identical earlier one with a higher count, fold similar events into
//! one aggregate, or skip it as spam.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use requeue::clock::FakeClock;
//! use requeue::events::{Correlator, CorrelatorOptions, Event, EventSource, EventType, ObjectReference};
//!
//! let correlator = Correlator::new(CorrelatorOptions {
//!     clock: Arc::new(FakeClock::new()),
//!     ..CorrelatorOptions::default()
//! });
//! let pod = ObjectReference::new("Pod", "shop", "web-0");
//! let source = EventSource::new("my-controller", "");
//! let event = Event::new(pod, EventType::Warning, "BackOff", "restarting", source, SystemTime::now());
//!
//! let first = correlator.correlate(&event);
//! assert_eq!((first.event.count, first.patch.is_none()), (1, true)); // create
//! correlator.update_state(&first.event); // what the sink stored
//! let again = correlator.correlate(&event);
//! assert_eq!(again.event.count, 2); // patch the same object
//! assert_eq!(again.patch.unwrap()["count"], 2);
//! ```
//!
//! # Implementation
//!
//! This module currently holds the event model. Timestamps are
//! [`jiff::Timestamp`]s (as in `k8s-openapi`) truncated to the wire
//! precision on construction — whole seconds for [`Time`], microseconds for
//! [`MicroTime`] — so a JSON round trip gives back an equal value. Go's zero
//! time is [`Time::ZERO`] and is written as `null`, like the API server does.
//!
//! The correlator keeps three LRU caches (4,096 keys each by default) under
//! separate locks and reads time only from its injected clock, so windows
//! and spam buckets are tested on a [`FakeClock`](crate::clock::FakeClock).
//! [`record_to_sink`] applies client-go's retry rules to any [`EventSink`];
//! [`MemorySink`] keeps events in memory for tests (with
//! [`MemorySink::with_capacity`], only the last N). Recording never blocks:
//! each watcher has a bounded queue ([`DEFAULT_QUEUE_CAPACITY`]) and a
//! thread (a [`Broadcaster::watch`] channel is that queue itself); a full
//! queue drops the event, counted in [`Broadcaster::dropped`] and logged.
//! A [`SeriesRecorder`] caches at most [`DEFAULT_SERIES_CACHE_SIZE`]
//! series, evicting (and finishing) the least recently observed. [`JsonLinesSink`] appends events to a
//! file (see [`Fsync`] for durability), [`TracingSink`] logs them.

mod broadcaster;
mod correlator;
mod file_sink;
mod lru;
mod model;
mod reference;
mod selector;
mod series;
mod sink;
mod spam;
mod time;

pub use broadcaster::{Broadcaster, BroadcasterOptions, DEFAULT_QUEUE_CAPACITY, Recorder};
pub use correlator::{
    AGGREGATE_PREFIX, Correlation, Correlator, CorrelatorOptions, DEFAULT_AGGREGATE_INTERVAL,
    DEFAULT_AGGREGATE_MAX_EVENTS, DEFAULT_LRU_CACHE_SIZE, KeyFn, MessageFn, SpamKeyFn,
    aggregate_by_reason, combined_message, event_key, spam_key,
};
pub use file_sink::{Fsync, JsonLinesSink, TracingSink};
pub use model::{
    DEFAULT_NAMESPACE, Event, EventSeries, EventSource, EventType, ObjectMeta, ObjectReference,
    UnknownEventType,
};
pub use reference::{DNS1123_SUBDOMAIN_MAX_LENGTH, Involved, event_name, is_dns1123_subdomain};
pub use selector::{UnknownEventsApi, field_selector};
pub use series::{
    DEFAULT_SERIES_CACHE_SIZE, FINISH_TIME, REFRESH_PERIOD, SeriesKey, SeriesRecorder,
};
pub use sink::{
    DEFAULT_RETRY_SLEEP, Delivery, EventSink, MAX_TRIES_PER_EVENT, MemorySink, SinkCalls,
    SinkError, record_to_sink,
};
pub use spam::{DEFAULT_SPAM_BURST, DEFAULT_SPAM_QPS};
pub use time::{MicroTime, Time};
