//! Where events go: the [`EventSink`] trait, the retry rules of client-go's
//! `recordToSink` (docs/behaviour.md §7.3), and an in-memory sink for tests.

use super::{Correlator, Event};
use crate::clock::SharedClock;
use crate::sync::{Mutex, lock};
use crate::wait::Stop;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Why a sink could not write an event. The variant decides what happens
/// next, as in client-go: some errors are final, others are retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The request could not even be built: never retried.
    #[error("could not build the request: {0}")]
    RequestConstruction(String),
    /// The server answered with an error status: never retried, except
    /// that a patch answered with 404 falls back to a create.
    #[error("the server refused the event with status {code}: {message}")]
    Status {
        /// The HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server answered with something that is not an event: retried.
    #[error("the server returned an unexpected object: {0}")]
    UnexpectedObject(String),
    /// The request did not get through (connection, timeout, I/O): retried.
    #[error("could not reach the sink: {0}")]
    Transport(String),
}

impl SinkError {
    /// client-go's `IsKeyNotFoundError`: a status error with code 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SinkError::Status { code: 404, .. })
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SinkError::UnexpectedObject(_) | SinkError::Transport(_)
        )
    }
}

/// Writes events somewhere (client-go's `EventSink`): an API server, a file,
/// a log, memory. Each returns the event as stored, which the correlator
/// remembers so that the next repeat patches that object.
pub trait EventSink: Send + Sync {
    /// Stores a new event.
    fn create(&self, event: &Event) -> Result<Event, SinkError>;
    /// Replaces a stored event.
    fn update(&self, event: &Event) -> Result<Event, SinkError>;
    /// Applies `patch` (a JSON merge patch of `count`, `lastTimestamp` and
    /// `message`) to the stored `event`.
    fn patch(&self, event: &Event, patch: &serde_json::Value) -> Result<Event, SinkError>;
}

/// client-go's `maxTriesPerEvent`.
pub const MAX_TRIES_PER_EVENT: u32 = 12;
/// client-go's default `sleepDuration` between tries.
pub const DEFAULT_RETRY_SLEEP: Duration = Duration::from_secs(10);

/// How one event fared at a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Written after this many attempts.
    Written {
        /// Attempts made, the successful one included.
        attempts: u32,
    },
    /// The correlator's spam filter skipped it.
    Skipped,
    /// A final error, or [`MAX_TRIES_PER_EVENT`] failures.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: SinkError,
    },
    /// The stop signal fired while waiting to retry.
    Stopped {
        /// Attempts made.
        attempts: u32,
    },
}

/// Correlates `event` and writes the result to `sink` with client-go's retry
/// rules: up to 12 tries; the first retry waits `sleep × rand[0, 1)`, later
/// ones exactly `sleep`, on `clock`; `stop` ends a wait (and the delivery).
pub fn record_to_sink(
    sink: &dyn EventSink,
    correlator: &Correlator,
    event: &Event,
    sleep: Duration,
    clock: &SharedClock,
    stop: &Stop,
) -> Delivery {
    let correlation = correlator.correlate(event);
    if correlation.skip {
        return Delivery::Skipped;
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write_once(sink, &correlation.event, correlation.patch.as_ref()) {
            Ok(stored) => {
                correlator.update_state(&stored);
                return Delivery::Written { attempts };
            }
            Err(error) if !error.is_retryable() || attempts >= MAX_TRIES_PER_EVENT => {
                tracing::warn!(%error, attempts, reason = %event.reason, "could not write event");
                return Delivery::Failed { attempts, error };
            }
            Err(error) => {
                tracing::debug!(%error, attempts, "writing event failed; will retry");
                let wait = if attempts == 1 {
                    sleep.mul_f64(fastrand::f64())
                } else {
                    sleep
                };
                if stop.wait_timeout_on(clock, wait) {
                    return Delivery::Stopped { attempts };
                }
            }
        }
    }
}

/// client-go's `recordEvent`: a patch for a repeat, falling back to a
/// create (with the resource version cleared) when the patched object is gone.
fn write_once(
    sink: &dyn EventSink,
    event: &Event,
    patch: Option<&serde_json::Value>,
) -> Result<Event, SinkError> {
    let Some(patch) = patch.filter(|_| event.count > 1) else {
        return sink.create(event);
    };
    match sink.patch(event, patch) {
        Err(error) if error.is_not_found() => {
            let mut fresh = event.clone();
            fresh.metadata.resource_version.clear();
            sink.create(&fresh)
        }
        other => other,
    }
}

/// Keeps events in memory, by name: a sink for tests and demos.
///
/// [`MemorySink::new`] keeps every event and every call, which suits a
/// test. A long-running program should use [`MemorySink::with_capacity`]:
/// it keeps the last `capacity` events created (a new one drops the oldest)
/// and the last `capacity` calls, so its memory stays bounded however long
/// it runs, while [`call_counts`](MemorySink::call_counts) still counts
/// every call. A repeat of a dropped event is answered 404 on its patch,
/// and [`record_to_sink`] then creates it again, as client-go does when
/// the API server has expired an event.
///
/// ```
/// use requeue::events::{Event, EventSink, EventSource, EventType, MemorySink, ObjectReference};
/// use std::time::SystemTime;
///
/// let sink = MemorySink::with_capacity(2);
/// for name in ["a", "b", "c"] {
///     let object = ObjectReference::new("Pod", "default", name);
///     let mut event = Event::new(object, EventType::Normal, "Started", "ok",
///         EventSource::new("ctrl", ""), SystemTime::now());
///     event.metadata.name = name.to_string();
///     sink.create(&event)?;
/// }
/// // The oldest event made room; every call is still counted.
/// let names: Vec<String> = sink.events().into_iter().map(|e| e.metadata.name).collect();
/// assert_eq!(names, ["b", "c"]);
/// assert_eq!(sink.call_counts().created, 3);
/// assert_eq!(sink.calls().len(), 2);
/// # Ok::<(), requeue::events::SinkError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<MemoryState>,
}

/// How many calls a [`MemorySink`] has answered, by kind (failed calls
/// included), over its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCalls {
    /// `create` calls.
    pub created: u64,
    /// `update` calls.
    pub updated: u64,
    /// `patch` calls.
    pub patched: u64,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// The stored events in creation order; `events[0]` is the
    /// `first`-th event ever created.
    events: VecDeque<Event>,
    /// (namespace, name) → creation number, so that a lookup does not scan.
    index: HashMap<(String, String), u64>,
    first: u64,
    next_version: u64,
    /// The calls made, the last `capacity` of them when bounded.
    calls: VecDeque<&'static str>,
    counts: SinkCalls,
    /// `None`: unbounded.
    capacity: Option<usize>,
}

impl MemorySink {
    /// An empty sink that keeps every event and call.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sink that keeps at most `capacity` events (dropping the
    /// oldest created to make room) and the last `capacity` calls. A
    /// capacity of zero is taken as one.
    pub fn with_capacity(capacity: usize) -> Self {
        MemorySink {
            state: Mutex::new(MemoryState {
                capacity: Some(capacity.max(1)),
                ..MemoryState::default()
            }),
        }
    }

    /// The stored events, in creation order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.state).events.iter().cloned().collect()
    }

    /// The calls made so far (with a capacity, the last `capacity` of
    /// them): `"create"`, `"update"` or `"patch"`.
    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.state).calls.iter().copied().collect()
    }

    /// Every call made so far, counted by kind (cheap: no copy of the log).
    pub fn call_counts(&self) -> SinkCalls {
        lock(&self.state).counts
    }

    fn store(&self, call: &'static str, event: &Event, replace: bool) -> Result<Event, SinkError> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        match call {
            "create" => state.counts.created += 1,
            "update" => state.counts.updated += 1,
            _ => state.counts.patched += 1,
        }
        if state.capacity.is_some_and(|c| state.calls.len() >= c) {
            state.calls.pop_front();
        }
        state.calls.push_back(call);
        state.next_version += 1;
        let mut stored = event.clone();
        stored.metadata.resource_version = state.next_version.to_string();
        let name = (
            event.metadata.namespace.clone(),
            event.metadata.name.clone(),
        );
        let slot = state.index.get(&name).copied();
        match (slot, replace) {
            (Some(n), true) => {
                // Every indexed number is at or past `first` (see below).
                let at = usize::try_from(n - state.first).unwrap_or(usize::MAX);
                if let Some(existing) = state.events.get_mut(at) {
                    *existing = stored.clone();
                }
            }
            (None, false) => {
                if state.capacity.is_some_and(|c| state.events.len() >= c)
                    && let Some(oldest) = state.events.pop_front()
                {
                    let key = (oldest.metadata.namespace, oldest.metadata.name);
                    state.index.remove(&key);
                    state.first += 1;
                }
                let n = state.first + state.events.len() as u64;
                state.index.insert(name, n);
                state.events.push_back(stored.clone());
            }
            (Some(_), false) => {
                return Err(SinkError::Status {
                    code: 409,
                    message: "already exists".into(),
                });
            }
            (None, true) => {
                return Err(SinkError::Status {
                    code: 404,
                    message: "not found".into(),
                });
            }
        }
        Ok(stored)
    }
}

impl EventSink for MemorySink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.store("create", event, false)
    }
    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.store("update", event, true)
    }
    fn patch(&self, event: &Event, _patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.store("patch", event, true)
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
