//! One reading of every number the views show, taken from the controller,
//! the queue, the fleet, the update stream, the event pipeline and the panic log.

use super::events::{Events, Stored};
use super::fleet::Fleet;
use super::panics::PanicLog;
use super::updates::UpdateCounts;
use requeue::controller::{Controller, Counts};
use requeue::queue::QueueSnapshot;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys listed as most retried.
pub const TOP: usize = 5;
/// The window of the current rate.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A most-retried key: (key, failures so far, current `num_requeues`).
pub type Retried = (String, u32, u32);

/// Everything a view shows, read at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub elapsed: Duration,
    pub counts: Counts,
    pub queue: QueueSnapshot,
    pub adds: u64,
    pub merged: u64,
    pub rollouts: u64,
    pub requeued_after: u64,
    pub resyncs: u64,
    pub reconciled: usize,
    pub objects: usize,
    pub rate_now: f64,
    pub rate_avg: f64,
    pub events: Stored,
    pub last_panic: Option<String>,
    pub top: Vec<Retried>,
}

impl Sample {
    /// Share of the update stream's adds that the queue collapsed, in %.
    pub fn dedup_percent(&self) -> f64 {
        percent(self.merged, self.adds)
    }
}

/// `part` of `whole` in % (0 for an empty whole).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Where the numbers come from.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub controller: &'a Controller<String>,
    pub fleet: &'a Fleet,
    pub updates: &'a UpdateCounts,
    pub requeued_after: &'a AtomicU64,
    pub resyncs: &'a AtomicU64,
    pub events: &'a Events,
    pub panics: &'a PanicLog,
}

/// Reads samples and keeps the history the current rate needs.
pub struct Probe<'a> {
    sources: Sources<'a>,
    start: Instant,
    history: VecDeque<(Instant, u64)>,
}

impl<'a> Probe<'a> {
    /// A probe whose clock starts at `start`.
    pub fn new(sources: Sources<'a>, start: Instant) -> Self {
        Probe {
            sources,
            start,
            history: VecDeque::from([(start, 0)]),
        }
    }

    /// Reads everything now.
    pub fn sample(&mut self) -> Sample {
        let now = Instant::now();
        let src = self.sources;
        let counts = src.controller.counts();
        let processed = counts.processed();
        self.history.push_back((now, processed));
        while self.history.len() > 2 && now - self.history[1].0 >= RATE_WINDOW {
            self.history.pop_front();
        }
        let rate = |from: (Instant, u64)| {
            let seconds = (now - from.0).as_secs_f64();
            if seconds > 0.0 {
                (processed - from.1) as f64 / seconds
            } else {
                0.0
            }
        };
        let (adds, merged) = src.updates.get();
        let queue = src.controller.queue();
        let top = src
            .fleet
            .most_retried(TOP)
            .into_iter()
            .map(|(key, failures)| {
                let now = queue.num_requeues(&key.to_string());
                (key.to_string(), failures, now)
            })
            .collect();
        Sample {
            elapsed: now - self.start,
            counts,
            queue: queue.snapshot(),
            adds,
            merged,
            rollouts: src.updates.rollouts.load(Ordering::Relaxed),
            requeued_after: src.requeued_after.load(Ordering::Relaxed),
            resyncs: src.resyncs.load(Ordering::Relaxed),
            reconciled: src.fleet.reconciled(),
            objects: src.fleet.len(),
            rate_now: rate(self.history[0]),
            rate_avg: rate((self.start, 0)),
            events: src.events.stored(),
            last_panic: src.panics.last(),
            top,
        }
    }
}

/// `n` with thousands separators: 12345 → "12,345".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(3, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
