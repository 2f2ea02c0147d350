//! The idle queue's add-to-hand-out latency, on any engine: one queue
//! instance's getter waits on an empty queue (on the engine's wake-up
//! path: Redis's marker, PostgreSQL's NOTIFY), another instance adds one
//! key, and the time from just before the add to the hand-out is
//! recorded, `samples` times, a few ms apart so that the getter is idle
//! again each time. Every key must be handed out once, in order.

use crate::{BenchError, Measurement};
use requeue::engine::{AsyncQueue, QueueError, Then};
use std::time::{Duration, Instant};

/// The workload's name in reports.
pub(crate) const WORKLOAD: &str = "idle";

/// Measures `samples` hand-outs from `adder` to `getter` (two instances
/// of one queue); `engine` names the row.
pub(crate) async fn idle_handout<Q: AsyncQueue<String>>(
    adder: &Q,
    getter: &Q,
    samples: u64,
    engine: &'static str,
    failed: fn(&'static str, QueueError) -> BenchError,
) -> Result<Measurement, BenchError> {
    let mut histogram = crate::LatencyHistogram::new();
    let start = Instant::now();
    for i in 0..samples {
        // Pacing, not waiting for a condition: the getter goes back to
        // its idle wait between samples.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let waiting = {
            let getter = getter.clone();
            tokio::spawn(async move {
                let item = getter.get().await?;
                let at = Instant::now();
                let key = (*item).clone();
                item.end_async(Then::Done).await?;
                Ok::<_, QueueError>((key, at))
            })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        let key = format!("idle-{i}");
        let sent = Instant::now();
        adder
            .add(key.clone())
            .await
            .map_err(|e| failed(WORKLOAD, e.error))?;
        let (got, at) = waiting
            .await
            .map_err(|e| failed(WORKLOAD, QueueError::backend(e.to_string())))?
            .map_err(|e| failed(WORKLOAD, e))?;
        if got != key {
            return Err(BenchError::Duplicate {
                workload: WORKLOAD,
                key: got,
                detail: format!("handed out instead of {key}"),
            });
        }
        histogram.record(at.saturating_duration_since(sent));
    }
    let mut m = Measurement::new(WORKLOAD, engine, samples, samples, start.elapsed());
    m.latency = histogram.summary();
    Ok(m)
}
