//! The event pipeline: the controller records a Warning event per failed
//! reconcile; a broadcaster hands each to a sink through client-go's
//! correlator (identical events become one event with a count, a noisy
//! object is rate limited), and to a watcher that only counts them.
//!
//! Memory stays bounded however long the run: the sink keeps the last
//! [`EVENTS_KEPT`] events (the summary's list is drawn from those; its
//! counts cover every event), the correlator's caches hold 4,096 keys
//! each, and the broadcaster's queues are bounded (a full one drops, counted).

use requeue::events::{Broadcaster, Event, EventSource, MemorySink, Recorder};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The component the demo's events name as their source.
pub const COMPONENT: &str = "requeue-demo";

/// Events the sink keeps (the oldest made room): about 600 bytes each, so
/// a few MB at most. A 30 s run of the default fleet stores about 3,000.
pub const EVENTS_KEPT: usize = 10_000;

/// A broadcaster with a memory sink behind a correlator, and a counter.
#[derive(Debug)]
pub struct Events {
    broadcaster: Broadcaster,
    sink: Arc<MemorySink>,
    recorded: Arc<AtomicU64>,
}

/// What reached the sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    /// Events recorded (seen by the counting watcher).
    pub recorded: u64,
    /// New event objects the sink created.
    pub created: u64,
    /// Repeats written as a patch of an earlier event (count + 1).
    pub patched: u64,
    /// Events the broadcaster dropped because a watcher's queue was full.
    pub dropped: u64,
}

impl Stored {
    /// Recorded events that neither created nor patched an event object:
    /// the correlator's spam filter skipped them (or they were dropped).
    pub fn filtered(&self) -> u64 {
        self.recorded
            .saturating_sub(self.created + self.patched + self.dropped)
    }
}

impl Events {
    /// Starts the sink's and the counter's watcher threads.
    pub fn start() -> anyhow::Result<Self> {
        Self::keeping(EVENTS_KEPT)
    }

    /// As [`start`](Events::start), with a sink that keeps the last `kept` events.
    fn keeping(kept: usize) -> anyhow::Result<Self> {
        let broadcaster = Broadcaster::default();
        let sink = Arc::new(MemorySink::with_capacity(kept));
        broadcaster.start_recording_to_sink(sink.clone())?;
        let recorded = Arc::new(AtomicU64::new(0));
        let counter = recorded.clone();
        broadcaster.start_event_watcher(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(Events {
            broadcaster,
            sink,
            recorded,
        })
    }

    /// The recorder the controller reports errors with.
    pub fn recorder(&self) -> Recorder {
        self.broadcaster.recorder(EventSource::new(COMPONENT, ""))
    }

    /// Counts so far.
    pub fn stored(&self) -> Stored {
        let calls = self.sink.call_counts();
        Stored {
            recorded: self.recorded.load(Ordering::Relaxed),
            created: calls.created,
            patched: calls.patched + calls.updated,
            dropped: self.broadcaster.dropped(),
        }
    }

    /// Delivers what is queued, then stops the watchers.
    pub fn shutdown(&self) {
        self.broadcaster.shutdown();
    }

    /// The events in the sink (the last [`EVENTS_KEPT`]).
    pub fn stored_events(&self) -> Vec<Event> {
        self.sink.events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use requeue::events::{EventType, ObjectReference};

    #[test]
    fn repeated_errors_collapse_into_one_counted_event() {
        let events = Events::start().expect("threads");
        let recorder = events.recorder();
        let object = ObjectReference::new("Widget", "ns-0", "obj-1");
        for _ in 0..5 {
            recorder.event(&object, EventType::Warning, "ReconcileError", "boom");
        }
        events.shutdown();
        let stored = events.stored();
        assert_eq!((stored.recorded, stored.created, stored.patched), (5, 1, 4));
        assert_eq!(stored.filtered(), 0);
        let stored = events.stored_events();
        assert_eq!((stored.len(), stored[0].count), (1, 5));
    }

    #[test]
    fn the_sink_keeps_only_the_last_events_but_counts_them_all() {
        let events = Events::keeping(3).expect("threads");
        let recorder = events.recorder();
        for i in 0..10 {
            let object = ObjectReference::new("Widget", "ns-0", format!("obj-{i}"));
            recorder.event(&object, EventType::Warning, "ReconcileError", "boom");
        }
        events.shutdown();
        let stored = events.stored();
        assert_eq!((stored.recorded, stored.created), (10, 10));
        let kept: Vec<String> = events
            .stored_events()
            .into_iter()
            .map(|e| e.involved_object.name)
            .collect();
        assert_eq!(kept, ["obj-7", "obj-8", "obj-9"]);
    }
}
