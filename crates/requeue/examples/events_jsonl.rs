//! Records events for a failing Pod and shows what the correlator made of
//! them in a JSON-lines file: identical events deduplicated into one with a
//! count, similar ones (same reason, different messages) aggregated.
//!
//! Run with `cargo run -p requeue --example events_jsonl [path]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use requeue::events::{Broadcaster, Event, EventSource, EventType, Fsync, JsonLinesSink};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("requeue-events.jsonl"));
    let _ = std::fs::remove_file(&path);

    let broadcaster = Broadcaster::default();
    broadcaster.start_recording_to_sink(Arc::new(JsonLinesSink::open(&path, Fsync::Never)?))?;
    let recorder = broadcaster.recorder(EventSource::new("shop-controller", "node-a"));
    let pod = (
        "Pod",
        "shop",
        "web-0",
        "5f0f3c52-8a4e-4d4b-9b2e-3c1a2f7d9e10",
    );

    // The same failure five times: one event, count 5.
    for _ in 0..5 {
        recorder.event(
            &pod,
            EventType::Warning,
            "BackOff",
            "Back-off restarting failed container app",
        );
    }
    // Twelve different failures of the same kind: after ten distinct
    // messages they are combined into one aggregate event.
    for attempt in 1..=12 {
        recorder.eventf(
            &pod,
            EventType::Warning,
            "FailedMount",
            format_args!("MountVolume.SetUp failed for volume \"data-{attempt}\""),
        );
    }
    broadcaster.shutdown();

    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<Event> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // The file is append-only: the last line of each event name is its current state.
    let mut current: BTreeMap<String, &Event> = BTreeMap::new();
    for event in &lines {
        current.insert(event.metadata.name.clone(), event);
    }
    println!("{} lines written to {}", lines.len(), path.display());
    println!("{} events as a cluster would show them:", current.len());
    for event in current.values() {
        println!(
            "  {:>3}x {:<12} {}",
            event.count, event.reason, event.message
        );
    }
    Ok(())
}
