//! The recorder and the broadcaster: recording never blocks the caller;
//! every watcher (a handler, a sink, the log) gets its own bounded queue
//! and thread (client-go's `EventBroadcaster` with `DropIfChannelFull`).

use super::reference::unique_event_time;
use super::sink::{DEFAULT_RETRY_SLEEP, EventSink, record_to_sink};
use super::{Correlator, CorrelatorOptions, Event, EventSource, EventType, Involved};
use crate::clock::{self, SharedClock};
use crate::sync::{Mutex, lock};
use crate::wait::Stop;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// client-go's `maxQueuedEvents`: events a watcher may have waiting.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;

/// Configures a [`Broadcaster`].
#[derive(Debug, Clone)]
pub struct BroadcasterOptions {
    /// Events each watcher may have waiting before new ones are dropped.
    pub queue_capacity: usize,
    /// The wait between a sink's retries (client-go's `sleepDuration`).
    pub retry_sleep: Duration,
    /// Options for the correlator each sink gets.
    pub correlator: CorrelatorOptions,
    /// Time for event timestamps and retry waits.
    pub clock: SharedClock,
    /// Shuts the broadcaster down when it fires (client-go's `WithContext`).
    pub stop: Option<Stop>,
}

impl Default for BroadcasterOptions {
    fn default() -> Self {
        BroadcasterOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retry_sleep: DEFAULT_RETRY_SLEEP,
            correlator: CorrelatorOptions::default(),
            clock: clock::real(),
            stop: None,
        }
    }
}

struct Watcher {
    /// At most `queue_capacity` events wait in it; `action` drops (and
    /// counts) what does not fit rather than wait.
    sender: SyncSender<Event>,
    /// The thread that hands queued events to a handler; `None` for a
    /// [`Broadcaster::watch`] channel, read by the caller directly.
    thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Releases the stop-watching thread of a dropped broadcaster.
        self.stop.stop();
    }
}

struct Inner {
    options: BroadcasterOptions,
    /// One per `start_*` or `watch` call, all set up by the caller (a
    /// handful per program), kept until shutdown.
    watchers: Mutex<Vec<Watcher>>,
    /// False once shut down.
    open: Mutex<bool>,
    dropped: AtomicU64,
    stop: Stop,
}

/// Fans recorded events out to watchers; see the [`events`](crate::events) module docs.
///
/// Cloning gives another handle to the same broadcaster.
#[derive(Clone)]
pub struct Broadcaster {
    inner: Arc<Inner>,
}

impl fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field("watchers", &lock(&self.inner.watchers).len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Default for Broadcaster {
    fn default() -> Self {
        Self::new(BroadcasterOptions::default())
    }
}

impl Broadcaster {
    /// A broadcaster with no watchers yet.
    ///
    /// With `options.stop`, a small thread waits for that signal and then
    /// shuts the broadcaster down; it ends with the broadcaster either way.
    pub fn new(options: BroadcasterOptions) -> Self {
        let outer = options.stop.clone();
        let stop = outer.as_ref().map_or_else(Stop::new, Stop::child);
        let inner = Arc::new(Inner {
            options,
            watchers: Mutex::new(Vec::new()),
            open: Mutex::new(true),
            dropped: AtomicU64::new(0),
            stop: stop.clone(),
        });
        if outer.is_some() {
            let weak = Arc::downgrade(&inner);
            let spawned = std::thread::Builder::new()
                .name("requeue-events-stop".into())
                .spawn(move || {
                    stop.wait();
                    if let Some(inner) = weak.upgrade() {
                        Broadcaster { inner }.shutdown();
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot watch the broadcaster's stop signal");
            }
        }
        Broadcaster { inner }
    }

    /// A recorder that stamps its events with `source`.
    pub fn recorder(&self, source: EventSource) -> Recorder {
        Recorder {
            broadcaster: self.clone(),
            source,
        }
    }

    /// How many events were dropped because a watcher's queue was full (or
    /// the broadcaster was shut down), counted once per watcher that missed one.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::SeqCst)
    }

    /// Calls `handler` with every event, in order, on a thread of its own.
    pub fn start_event_watcher(
        &self,
        handler: impl FnMut(&Event) + Send + 'static,
    ) -> std::io::Result<()> {
        let mut handler = handler;
        let (sender, receiver): (SyncSender<Event>, Receiver<Event>) =
            sync_channel(self.inner.options.queue_capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("requeue-events".into())
            .spawn(move || receiver.iter().for_each(|event| handler(&event)))?;
        lock(&self.inner.watchers).push(Watcher {
            sender,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Delivers every event into the returned channel (for code that would
    /// rather receive than be called; client-go's `Watch`). The channel ends
    /// after [`shutdown`](Broadcaster::shutdown); a receiver dropped early
    /// is fine.
    ///
    /// The channel is the watcher's own queue: it holds at most
    /// [`queue_capacity`](BroadcasterOptions::queue_capacity) events, and
    /// while it is full new events are dropped for it (counted in
    /// [`dropped`](Broadcaster::dropped) and logged), as for every watcher,
    /// so a receiver that falls behind costs a bounded amount of memory.
    /// It never fails (the `Result` is kept for callers written when it
    /// started a thread).
    pub fn watch(&self) -> std::io::Result<Receiver<Event>> {
        let (sender, receiver) = sync_channel(self.inner.options.queue_capacity.max(1));
        lock(&self.inner.watchers).push(Watcher {
            sender,
            thread: None,
        });
        Ok(receiver)
    }

    /// Writes every event to `sink` through a correlator of its own, with
    /// client-go's retry rules; a shutdown cuts retry waits short.
    pub fn start_recording_to_sink(&self, sink: Arc<dyn EventSink>) -> std::io::Result<()> {
        let correlator = Correlator::new(self.inner.options.correlator.clone());
        let (sleep, clock, stop) = (
            self.inner.options.retry_sleep,
            self.inner.options.clock.clone(),
            self.inner.stop.clone(),
        );
        self.start_event_watcher(move |event| {
            record_to_sink(&*sink, &correlator, event, sleep, &clock, &stop);
        })
    }

    /// Logs every event through `tracing` (target `requeue::events`) with
    /// the fields of client-go's `StartStructuredLogging`: "Event occurred",
    /// object (`namespace/name`), fieldPath, kind, apiVersion, type, reason, message.
    pub fn start_logging(&self) -> std::io::Result<()> {
        self.start_event_watcher(|e| {
            let o = &e.involved_object;
            let object = if o.namespace.is_empty() {
                o.name.clone()
            } else {
                format!("{}/{}", o.namespace, o.name)
            };
            tracing::info!(
                target: "requeue::events",
                object = %object,
                field_path = %o.field_path,
                kind = %o.kind,
                api_version = %o.api_version,
                r#type = e.event_type.as_str(),
                reason = %e.reason,
                message = %e.message,
                "Event occurred"
            );
        })
    }

    /// Hands `event` to every watcher without blocking; a watcher whose
    /// queue is full misses it (counted and logged).
    pub fn action(&self, event: Event) {
        if !*lock(&self.inner.open) {
            self.inner.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        lock(&self.inner.watchers).retain(|watcher| {
            match watcher.sender.try_send(event.clone()) {
                Ok(()) => {}
                // A `watch` receiver was dropped: that caller stopped
                // watching, so the watcher goes (nothing is missed).
                Err(TrySendError::Disconnected(_)) if watcher.thread.is_none() => return false,
                // A full queue, or a handler thread that died (panicked).
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    let dropped = self.inner.dropped.fetch_add(1, Ordering::SeqCst) + 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(dropped, "too many queued events; dropping");
                    }
                }
            }
            true
        });
    }

    /// Stops accepting events, lets every watcher finish the events already
    /// queued for it (sinks stop retrying), and waits for their threads.
    pub fn shutdown(&self) {
        *lock(&self.inner.open) = false;
        self.inner.stop.stop();
        let watchers = std::mem::take(&mut *lock(&self.inner.watchers));
        for Watcher { sender, thread } in watchers {
            drop(sender);
            if thread.is_some_and(|thread| thread.join().is_err()) {
                tracing::error!("an event watcher panicked");
            }
        }
    }
}

/// Records events about objects (client-go's `EventRecorder`). Cheap to
/// clone; never blocks.
#[derive(Clone)]
pub struct Recorder {
    broadcaster: Broadcaster,
    source: EventSource,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("source", &self.source)
            .finish()
    }
}

impl Recorder {
    /// Records an event about `object`.
    pub fn event(&self, object: &dyn Involved, event_type: EventType, reason: &str, message: &str) {
        self.annotated_event(object, BTreeMap::new(), event_type, reason, message);
    }

    /// Records an event with a formatted message:
    /// `recorder.eventf(&pod, EventType::Warning, "Failed", format_args!("exit code {code}"))`.
    pub fn eventf(
        &self,
        object: &dyn Involved,
        event_type: EventType,
        reason: &str,
        message: fmt::Arguments<'_>,
    ) {
        self.event(object, event_type, reason, &message.to_string());
    }

    /// Records an event carrying `annotations`.
    pub fn annotated_event(
        &self,
        object: &dyn Involved,
        annotations: BTreeMap<String, String>,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let inner = &self.broadcaster.inner;
        let at = unique_event_time(inner.options.clock.wall_now());
        let event = Event::new(
            object.object_reference(),
            event_type,
            reason,
            message,
            self.source.clone(),
            at,
        )
        .with_annotations(annotations);
        self.broadcaster.action(event);
    }
}

#[cfg(test)]
#[path = "broadcaster_tests.rs"]
mod tests;
