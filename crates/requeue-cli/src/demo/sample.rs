//! One reading of every number the views show, taken from the workers
//! (the controller in this process, or the worker processes' reports), the
//! queue (in memory, or Redis as last polled), the fleet, the update
//! stream, the event pipeline and the panic log.

use super::events::{Events, Stored};
use super::fleet::Fleet;
use super::panics::PanicLog;
use super::updates::UpdateCounts;
use requeue::controller::{Controller, Counts};
use requeue::engine::AsyncQueue;
use requeue::queue::{QueueSnapshot, WorkQueue};
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
    /// On the Redis engine only.
    pub redis: Option<RedisNumbers>,
}

/// What only the Redis engine has.
#[derive(Debug, Clone, Default)]
pub struct RedisNumbers {
    /// The server keeping the counters below: `Redis` or `PostgreSQL`.
    pub server: &'static str,
    /// Leases that ran out before their key was settled (summed over the workers).
    pub leases_lost: u64,
    /// Expired leases reaped, ever (the queue's own counter in Redis).
    pub leases_reaped: u64,
    /// Rate-limited re-adds (retries), ever (the queue's own counter in Redis).
    pub retries_total: u64,
    /// Per worker process (empty when the workers run in this process):
    /// handler calls so far, and whether it is still running.
    pub processes: Vec<(u64, bool)>,
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

/// The reconcile side's numbers.
pub trait Workers: Sync {
    /// The controller's counts (summed over the worker processes).
    fn counts(&self) -> Counts;
    /// Reconciles that asked to come back later.
    fn requeued_after(&self) -> u64;
    /// The latest simulated panic's message.
    fn last_panic(&self) -> Option<String>;
    /// Per worker process: (handler calls, still running); empty when the
    /// workers run in this process.
    fn processes(&self) -> Vec<(u64, bool)> {
        Vec::new()
    }
}

/// The queue's numbers.
pub trait Gauge: Sync {
    /// Ready, in flight, delayed, …
    fn snapshot(&self) -> QueueSnapshot;
    /// `key`'s retries since its last success.
    fn num_requeues(&self, key: &str) -> u32;
    /// Redis' own counters as last read, (leases reaped, retries);
    /// `None` for an engine without them.
    /// The server the counters of [`redis_counters`](Self::redis_counters) come from.
    fn server_name(&self) -> &'static str {
        "Redis"
    }

    fn redis_counters(&self) -> Option<(u64, u64)> {
        None
    }
}

impl Gauge for WorkQueue<String> {
    fn snapshot(&self) -> QueueSnapshot {
        WorkQueue::snapshot(self)
    }

    fn num_requeues(&self, key: &str) -> u32 {
        WorkQueue::num_requeues(self, &key.to_string())
    }
}

/// Workers in this process: a controller, its reconciler's count, the panic log.
pub struct InProcess<'a, Q: AsyncQueue<String>> {
    pub controller: &'a Controller<String, Q>,
    pub requeued_after: &'a AtomicU64,
    pub panics: &'a PanicLog,
}

impl<Q: AsyncQueue<String>> Workers for InProcess<'_, Q> {
    fn counts(&self) -> Counts {
        self.controller.counts()
    }

    fn requeued_after(&self) -> u64 {
        self.requeued_after.load(Ordering::Relaxed)
    }

    fn last_panic(&self) -> Option<String> {
        self.panics.last()
    }
}

/// Where the numbers come from.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub workers: &'a dyn Workers,
    pub queue: &'a dyn Gauge,
    pub fleet: &'a Fleet,
    pub updates: &'a UpdateCounts,
    pub resyncs: &'a AtomicU64,
    pub events: &'a Events,
}

/// Reads samples and keeps the history the current rate needs.
pub struct Probe<'a> {
    sources: Sources<'a>,
    start: Instant,
    /// The samples of the last [`RATE_WINDOW`] only (trimmed at each sample).
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
        let counts = src.workers.counts();
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
        let queue = src.queue;
        let top = src
            .fleet
            .most_retried(TOP)
            .into_iter()
            .map(|(key, failures)| {
                let now = queue.num_requeues(key);
                (key.to_string(), failures, now)
            })
            .collect();
        let redis = queue
            .redis_counters()
            .map(|(leases_reaped, retries_total)| RedisNumbers {
                server: queue.server_name(),
                leases_lost: counts.lease_lost,
                leases_reaped,
                retries_total,
                processes: src.workers.processes(),
            });
        Sample {
            elapsed: now - self.start,
            counts,
            queue: queue.snapshot(),
            adds,
            merged,
            rollouts: src.updates.rollouts.load(Ordering::Relaxed),
            requeued_after: src.workers.requeued_after(),
            resyncs: src.resyncs.load(Ordering::Relaxed),
            reconciled: src.fleet.reconciled(),
            objects: src.fleet.len(),
            rate_now: rate(self.history[0]),
            rate_avg: rate((self.start, 0)),
            events: src.events.stored(),
            last_panic: src.workers.last_panic(),
            top,
            redis,
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
