//! client-go's `tools/events` (events.k8s.io/v1) series semantics over the
//! core/v1 [`Event`] (docs/behaviour.md §7.5): isomorphic events are folded into one
//! object whose `series` counts them, and two periodic jobs refresh and
//! finish those series.
//!
//! Sink calls are made directly (no retries) and never while the cache lock
//! is held, as on client-go master: the jobs snapshot the cache, call the
//! sink, and write back (or delete) only if the entry did not change
//! meanwhile.

use super::lru::Lru;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    Event, EventSeries, EventSink, EventSource, EventType, Involved, MicroTime, ObjectReference,
    SinkError, Time,
};
use crate::clock::SharedClock;
use crate::sync::{Mutex, lock};
use crate::wait::{Group, Periodic, Stop};

/// How long a series (or singleton) may go unobserved before
/// [`SeriesRecorder::finish_series`] finishes it, and how often client-go
/// runs that job (`finishTime`, 6 minutes).
pub const FINISH_TIME: Duration = Duration::from_secs(6 * 60);

/// How often client-go runs [`SeriesRecorder::refresh_existing_series`]
/// (`refreshTime`, 30 minutes).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(30 * 60);

/// How many isomorphism keys a [`SeriesRecorder`] caches by default (the
/// size of the correlator's caches, client-go's `maxLruCacheEntries`).
pub const DEFAULT_SERIES_CACHE_SIZE: usize = 4096;

/// What makes two events isomorphic (client-go's `getKey`): type, action,
/// reason, reporting controller and instance, regarding and related object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// The event's action.
    pub action: String,
    /// The event's reason.
    pub reason: String,
    /// The reporting controller.
    pub reporting_controller: String,
    /// The reporting instance.
    pub reporting_instance: String,
    /// The object the event is about (`regarding` / `involvedObject`).
    pub regarding: ObjectReference,
    /// The second object, if any.
    pub related: Option<ObjectReference>,
}

impl SeriesKey {
    /// The isomorphism key of `event`.
    pub fn of(event: &Event) -> Self {
        SeriesKey {
            event_type: event.event_type,
            action: event.action.clone(),
            reason: event.reason.clone(),
            reporting_controller: event.reporting_controller.clone(),
            reporting_instance: event.reporting_instance.clone(),
            regarding: event.involved_object.clone(),
            related: event.related.clone(),
        }
    }
}

/// An events.k8s.io-style recorder (client-go's `tools/events` recorder and
/// the series logic of its broadcaster) writing core/v1 [`Event`]s to an
/// [`EventSink`].
///
/// The first occurrence of an event is created; the second (isomorphic, see
/// [`SeriesKey`]) gets `series = {count: 2, lastObservedTime: now}` and is
/// sent as a merge patch (falling back to a create when the object is gone);
/// later ones only bump the cached series until
/// [`refresh_existing_series`](Self::refresh_existing_series) or
/// [`finish_series`](Self::finish_series) runs.
///
/// ```
/// use std::sync::Arc;
/// use requeue::clock::FakeClock;
/// use requeue::events::{EventType, MemorySink, SeriesRecorder};
///
/// let sink = Arc::new(MemorySink::new());
/// let recorder = SeriesRecorder::new(sink.clone(), "shop-controller", "shop-controller-node-a",
///     Arc::new(FakeClock::new()));
/// let pod = ("Pod", "shop", "web-0", "5f0f3c52");
/// for _ in 0..3 {
///     recorder.eventf(&pod, None, EventType::Warning, "BackOff", "Restarting", format_args!("back-off"));
/// }
/// assert_eq!(sink.calls(), ["create", "patch"]);
/// assert_eq!(recorder.cached_events()[0].series.as_ref().map(|s| s.count), Some(3));
/// ```
///
/// Clones share the cache (and the sink and clock).
///
/// # Memory
///
/// The cache holds one event per isomorphism key seen lately: the jobs
/// forget a key [`FINISH_TIME`] after its last occurrence. client-go's
/// cache has no other limit, so a burst of events about many objects (or
/// a recorder whose jobs never run) grows it without bound. This one holds
/// at most [`DEFAULT_SERIES_CACHE_SIZE`] keys (see
/// [`with_cache_capacity`](Self::with_cache_capacity)); a new key in a full
/// cache evicts the key observed least recently, finishing it first as
/// [`finish_series`](Self::finish_series) would (a series is sent once more
/// with its final count). Evictions are counted ([`evicted`](Self::evicted))
/// and logged; a later occurrence of an evicted key starts a new event.
#[derive(Clone)]
pub struct SeriesRecorder {
    sink: Arc<dyn EventSink>,
    reporting_controller: String,
    reporting_instance: String,
    clock: SharedClock,
    cache: Arc<Mutex<SeriesCache>>,
}

/// The recorder's cache and what it evicted.
struct SeriesCache {
    /// At most its capacity ([`DEFAULT_SERIES_CACHE_SIZE`] unless set):
    /// a new key in a full cache evicts the least recently observed one.
    events: Lru<SeriesKey, Event>,
    /// How many keys were evicted to stay within the capacity.
    evicted: u64,
}

impl fmt::Debug for SeriesRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesRecorder")
            .field("reporting_controller", &self.reporting_controller)
            .field("reporting_instance", &self.reporting_instance)
            .field("cached", &lock(&self.cache).events.len())
            .finish_non_exhaustive()
    }
}

impl SeriesRecorder {
    /// A recorder writing to `sink` as `reporting_controller` /
    /// `reporting_instance` (client-go uses `<controller>-<hostname>`),
    /// reading time from `clock`.
    pub fn new(
        sink: Arc<dyn EventSink>,
        reporting_controller: impl Into<String>,
        reporting_instance: impl Into<String>,
        clock: SharedClock,
    ) -> Self {
        SeriesRecorder {
            sink,
            reporting_controller: reporting_controller.into(),
            reporting_instance: reporting_instance.into(),
            clock,
            cache: Arc::new(Mutex::new(SeriesCache {
                events: Lru::new(DEFAULT_SERIES_CACHE_SIZE),
                evicted: 0,
            })),
        }
    }

    /// Caps the cache at `capacity` isomorphism keys (at least one) instead
    /// of [`DEFAULT_SERIES_CACHE_SIZE`]; clones share the cap. Keys beyond
    /// it are evicted (and finished) at once, least recently observed first.
    pub fn with_cache_capacity(self, capacity: usize) -> Self {
        let evicted = {
            let mut cache = lock(&self.cache);
            let evicted = cache.events.set_capacity(capacity);
            cache.evicted += evicted.len() as u64;
            evicted
        };
        for (_, event) in evicted {
            self.finish_evicted(&event);
        }
        self
    }

    /// How many isomorphism keys were evicted from the full cache so far
    /// (see the type's docs on memory).
    pub fn evicted(&self) -> u64 {
        lock(&self.cache).evicted
    }

    /// An evicted entry's last write: a series is sent with its final
    /// count, as [`finish_series`](Self::finish_series) does; a singleton
    /// was written when it was created and needs nothing.
    fn finish_evicted(&self, event: &Event) {
        if event.series.is_some() {
            let _ = self.send(event);
        }
    }

    /// Records an event (client-go's `Eventf`): `event_time` now (µs), the
    /// reporting controller and instance, `action`, `reason`, `related`,
    /// `note` as the message, named per [`event_name`](super::event_name),
    /// `series` unset; the deprecated core/v1 fields (`source`, `count`,
    /// `firstTimestamp`, `lastTimestamp`) are left empty as the API server
    /// shows them for events.k8s.io events. Then applies the series rules
    /// and writes to the sink on the caller's thread.
    pub fn eventf(
        &self,
        regarding: &dyn Involved,
        related: Option<&dyn Involved>,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: fmt::Arguments<'_>,
    ) {
        let now = self.clock.wall_now();
        let mut event = Event::new(
            regarding.object_reference(),
            event_type,
            reason,
            note.to_string(),
            EventSource::default(),
            now,
        );
        event.first_timestamp = Time::ZERO;
        event.last_timestamp = Time::ZERO;
        event.count = 0;
        event.event_time = Some(MicroTime::from(now));
        event.action = action.to_owned();
        event.related = related.map(Involved::object_reference);
        event.reporting_controller = self.reporting_controller.clone();
        event.reporting_instance = self.reporting_instance.clone();
        self.record(event, now);
    }

    /// The series rules for one occurrence of `event` seen at `now`.
    fn record(&self, event: Event, now: SystemTime) {
        let key = SeriesKey::of(&event);
        let mut evicted = None;
        let to_send = {
            let mut cache = lock(&self.cache);
            match cache.events.get(&key) {
                Some(cached) => match cached.series.as_mut() {
                    Some(series) => {
                        series.count = series.count.saturating_add(1);
                        series.last_observed_time = MicroTime::from(now);
                        None
                    }
                    None => {
                        cached.series = Some(EventSeries {
                            count: 2,
                            last_observed_time: MicroTime::from(now),
                        });
                        Some(cached.clone())
                    }
                },
                None => {
                    evicted = cache.events.add(key.clone(), event.clone());
                    if evicted.is_some() {
                        cache.evicted += 1;
                        if cache.evicted.is_power_of_two() {
                            tracing::warn!(
                                evicted = cache.evicted,
                                capacity = cache.events.len(),
                                "event series cache full; finishing the series observed least recently"
                            );
                        }
                    }
                    Some(event)
                }
            }
        };
        if let Some((_, old)) = evicted {
            self.finish_evicted(&old);
        }
        if let Some(sent) = to_send
            && let Ok(stored) = self.send(&sent)
        {
            self.replace_if_unchanged(&key, &sent, stored);
        }
    }

    /// client-go's `finishSeries`: a cached series last observed more than
    /// [`FINISH_TIME`] ago is sent one last time (its final count) and
    /// forgotten; a singleton whose `event_time` is that old is forgotten
    /// without sending. An entry that changed while its final write was in
    /// flight is kept.
    pub fn finish_series(&self) {
        // Compared at the microsecond precision the cached times carry.
        let now = SystemTime::from(MicroTime::from(self.clock.wall_now()));
        let stale = |at: MicroTime| {
            SystemTime::from(at)
                .checked_add(FINISH_TIME)
                .is_some_and(|deadline| deadline < now)
        };
        let finished: Vec<(SeriesKey, Event)> = {
            let mut cache = lock(&self.cache);
            cache
                .events
                .retain(|_, event| event.series.is_some() || !event.event_time.is_some_and(stale));
            cache
                .events
                .iter()
                .filter(|(_, event)| {
                    event
                        .series
                        .as_ref()
                        .is_some_and(|series| stale(series.last_observed_time))
                })
                .map(|(key, event)| (key.clone(), event.clone()))
                .collect()
        };
        for (key, event) in finished {
            let _ = self.send(&event);
            let mut cache = lock(&self.cache);
            if cache.events.peek(&key) == Some(&event) {
                cache.events.remove(&key);
            }
        }
    }

    /// client-go's `refreshExistingEventSeries`: every cached series is sent
    /// again (refreshing its TTL on the server); the server's copy replaces
    /// the cache entry if that did not change meanwhile. On error the cache
    /// entry is kept as it is.
    pub fn refresh_existing_series(&self) {
        let series: Vec<(SeriesKey, Event)> = lock(&self.cache)
            .events
            .iter()
            .filter(|(_, event)| event.series.is_some())
            .map(|(key, event)| (key.clone(), event.clone()))
            .collect();
        for (key, event) in series {
            if let Ok(stored) = self.send(&event) {
                self.replace_if_unchanged(&key, &event, stored);
            }
        }
    }

    /// Runs the two periodic jobs on threads of their own, as client-go's
    /// `StartRecordingToSink` does with `wait.Until`:
    /// [`refresh_existing_series`](Self::refresh_existing_series) every
    /// [`REFRESH_PERIOD`] and [`finish_series`](Self::finish_series) every
    /// [`FINISH_TIME`], each first run at once, on this recorder's clock,
    /// until `stop` fires. [`Group::wait`] on the result waits for both
    /// threads to end. Fails only if the OS cannot create a thread.
    pub fn spawn_jobs(&self, stop: &Stop) -> std::io::Result<Group> {
        let group = Group::new();
        let refresher = self.clone();
        group.start_with_stop(stop, move |stop| {
            Periodic::new(REFRESH_PERIOD)
                .clock(Arc::clone(&refresher.clock))
                .run(&stop, || refresher.refresh_existing_series());
        })?;
        let finisher = self.clone();
        group.start_with_stop(stop, move |stop| {
            Periodic::new(FINISH_TIME)
                .clock(Arc::clone(&finisher.clock))
                .run(&stop, || finisher.finish_series());
        })?;
        Ok(group)
    }

    /// The cached events (one per isomorphism key), in no particular order.
    pub fn cached_events(&self) -> Vec<Event> {
        lock(&self.cache)
            .events
            .iter()
            .map(|(_, event)| event.clone())
            .collect()
    }

    /// The cached event for `key`, if any.
    pub fn cached(&self, key: &SeriesKey) -> Option<Event> {
        lock(&self.cache).events.peek(key).cloned()
    }

    /// Stores the server's copy of `sent` unless the entry moved on.
    fn replace_if_unchanged(&self, key: &SeriesKey, sent: &Event, stored: Event) {
        let mut cache = lock(&self.cache);
        if let Some(entry) = cache.events.peek_mut(key).filter(|entry| **entry == *sent) {
            *entry = stored;
        }
    }

    /// One write: a create for a singleton; for a series a merge patch
    /// `{"series": …}`, falling back to a create (resource version cleared)
    /// when the server answers 404. Failures are logged.
    fn send(&self, event: &Event) -> Result<Event, SinkError> {
        let result = match &event.series {
            None => self.sink.create(event),
            Some(series) => {
                let patch = serde_json::json!({ "series": series });
                match self.sink.patch(event, &patch) {
                    Err(error) if error.is_not_found() => {
                        let mut fresh = event.clone();
                        fresh.metadata.resource_version.clear();
                        self.sink.create(&fresh)
                    }
                    other => other,
                }
            }
        };
        if let Err(error) = &result {
            tracing::warn!(%error, reason = %event.reason, name = %event.metadata.name,
                "could not write event series");
        }
        result
    }
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;
