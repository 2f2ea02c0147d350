//! Sinks that write events somewhere people look: a JSON-lines file and the log.

use super::{Event, EventSink, SinkError};
use crate::sync::{Mutex, lock};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// When a [`JsonLinesSink`] forces its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Each line is written with one `write` call to a file opened for
    /// appending, so lines are never interleaved or torn by other writers;
    /// the kernel decides when they reach the disk (lost only if the
    /// machine, not the process, crashes). The default.
    #[default]
    Never,
    /// `fdatasync` after every line: survives a machine crash, costs a disk
    /// round trip per event.
    EveryEvent,
}

/// Appends every write as one line of JSON (the core/v1 Event shape), so
/// the file is the history of each event: its creation, then one line per
/// patch with the new count. `jq`, `kubectl`-style tools and log shippers
/// read it as is.
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    file: Mutex<File>,
    fsync: Fsync,
    versions: AtomicU64,
}

impl JsonLinesSink {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(JsonLinesSink {
            path,
            file: Mutex::new(file),
            fsync,
            versions: AtomicU64::new(0),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, event: &Event) -> Result<Event, SinkError> {
        let mut stored = event.clone();
        let version = self.versions.fetch_add(1, Ordering::SeqCst) + 1;
        stored.metadata.resource_version = version.to_string();
        let mut line = serde_json::to_vec(&stored)
            .map_err(|e| SinkError::RequestConstruction(e.to_string()))?;
        line.push(b'\n');
        let mut file = lock(&self.file);
        file.write_all(&line)
            .map_err(|e| SinkError::Transport(e.to_string()))?;
        if self.fsync == Fsync::EveryEvent {
            file.sync_data()
                .map_err(|e| SinkError::Transport(e.to_string()))?;
        }
        Ok(stored)
    }
}

impl EventSink for JsonLinesSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.append(event)
    }
    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.append(event)
    }
    fn patch(&self, event: &Event, _patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.append(event)
    }
}

/// Writes every event to the `tracing` log (target `requeue::events`) as a
/// structured record; never fails.
#[derive(Debug, Default)]
pub struct TracingSink;

impl TracingSink {
    fn log(&self, verb: &'static str, e: &Event) -> Result<Event, SinkError> {
        let o = &e.involved_object;
        tracing::info!(
            target: "requeue::events",
            verb,
            kind = %o.kind,
            namespace = %o.namespace,
            name = %o.name,
            r#type = e.event_type.as_str(),
            reason = %e.reason,
            count = e.count,
            message = %e.message,
            "Event"
        );
        Ok(e.clone())
    }
}

impl EventSink for TracingSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.log("create", event)
    }
    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.log("update", event)
    }
    fn patch(&self, event: &Event, _patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.log("patch", event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventSource, EventType, ObjectReference};
    use std::time::SystemTime;

    fn event(count: i32) -> Event {
        let mut e = Event::new(
            ObjectReference::new("Pod", "default", "web-0"),
            EventType::Warning,
            "BackOff",
            "restarting",
            EventSource::new("c", ""),
            SystemTime::now(),
        );
        e.count = count;
        e
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("requeue-{}-{name}.jsonl", std::process::id()))
    }

    #[test]
    fn every_write_is_one_line_of_event_json() {
        let path = temp_path("lines");
        let _ = std::fs::remove_file(&path);
        let sink = JsonLinesSink::open(&path, Fsync::EveryEvent).expect("open");
        sink.create(&event(1)).expect("create");
        sink.patch(&event(2), &serde_json::json!({"count": 2}))
            .expect("patch");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an event per line"))
            .collect();
        assert_eq!(lines.iter().map(|e| e.count).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lines[1].metadata.resource_version, "2");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error_at_open() {
        let err = JsonLinesSink::open("/nonexistent-dir/requeue/events.jsonl", Fsync::Never);
        assert!(err.is_err());
    }

    #[test]
    fn the_tracing_sink_accepts_everything() {
        let sink = TracingSink;
        assert_eq!(sink.create(&event(1)).map(|e| e.count), Ok(1));
        assert_eq!(
            sink.patch(&event(3), &serde_json::Value::Null)
                .map(|e| e.count),
            Ok(3)
        );
    }
}
