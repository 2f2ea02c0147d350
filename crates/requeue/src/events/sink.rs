//! Where events go: the [`EventSink`] trait, the retry rules of client-go's
//! `recordToSink` (docs/behaviour.md §7.3), and an in-memory sink for tests.

use super::{Correlator, Event};
use crate::clock::SharedClock;
use crate::sync::{Mutex, lock};
use crate::wait::Stop;
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

/// Keeps every event in memory, by name: a sink for tests and demos.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    events: Vec<Event>,
    next_version: u64,
    calls: Vec<&'static str>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored events, in creation order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.state).events.clone()
    }

    /// The calls made so far: `"create"`, `"update"` or `"patch"`.
    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.state).calls.clone()
    }

    fn store(&self, call: &'static str, event: &Event, replace: bool) -> Result<Event, SinkError> {
        let mut state = lock(&self.state);
        state.calls.push(call);
        state.next_version += 1;
        let mut stored = event.clone();
        stored.metadata.resource_version = state.next_version.to_string();
        let slot = state.events.iter_mut().find(|e| {
            e.metadata.name == event.metadata.name
                && e.metadata.namespace == event.metadata.namespace
        });
        match (slot, replace) {
            (Some(existing), true) => *existing = stored.clone(),
            (None, false) => state.events.push(stored.clone()),
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
