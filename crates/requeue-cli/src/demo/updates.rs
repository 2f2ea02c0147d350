//! The update stream: what an informer would feed a controller. A steady
//! trickle of object changes (hot keys far more often, in bursts) plus,
//! now and then, a rollout that touches every object of a namespace
//! several times in a row. The queue collapses the repeats; we count them.

use super::fleet::{Fleet, PER_NAMESPACE};
use requeue::queue::{Added, WorkQueue};
use requeue::wait::Stop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the stream wakes up.
const TICK: Duration = Duration::from_millis(10);
/// Steady updates per second per worker: below what the workers can do,
/// so the queue stays short between rollouts.
const STEADY_PER_WORKER: u64 = 1_000;
/// Share of steady updates that go to the hot keys.
const HOT_SHARE: f64 = 0.3;
/// Adds per update of a hot key.
const HOT_BURST: std::ops::RangeInclusive<usize> = 2..=6;
/// A rollout starts on average once per this many ticks.
const ROLLOUT_EVERY_TICKS: u32 = 120;
/// Updates per object in a rollout (spec change, then status changes).
const ROLLOUT_ROUNDS: usize = 3;

/// What the stream added and what the queue collapsed.
#[derive(Debug, Default)]
pub struct UpdateCounts {
    /// Adds made.
    pub adds: AtomicU64,
    /// Adds the queue merged into a pending one (`Added::Merged`): work saved.
    pub merged: AtomicU64,
    /// Rollouts started.
    pub rollouts: AtomicU64,
}

impl UpdateCounts {
    /// (adds, merged).
    pub fn get(&self) -> (u64, u64) {
        (
            self.adds.load(Ordering::Relaxed),
            self.merged.load(Ordering::Relaxed),
        )
    }

    /// Adds `key`; `false` once the queue is shutting down.
    fn add(&self, queue: &WorkQueue<String>, key: &str) -> bool {
        match queue.add(key.to_string()) {
            Ok(added) => {
                self.adds.fetch_add(1, Ordering::Relaxed);
                if added == Added::Merged {
                    self.merged.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Feeds updates into `queue` until `stop` fires or the queue shuts down.
pub fn run(
    fleet: &Fleet,
    queue: &WorkQueue<String>,
    workers: u32,
    seed: u64,
    counts: &UpdateCounts,
    stop: &Stop,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5EED);
    let per_second = STEADY_PER_WORKER * u64::from(workers);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next = start;
    loop {
        next += TICK;
        if stop.wait_timeout(next.saturating_duration_since(Instant::now())) {
            return;
        }
        // Catch up to the rate the elapsed time allows, so a late tick
        // does not lower the rate.
        let due = (start.elapsed().as_secs_f64() * per_second as f64) as u64;
        for _ in sent..due {
            // A hot object's changes come in bursts (its status is written
            // by several parties); any other object changes once.
            let (i, burst) = if rng.f64() < HOT_SHARE {
                (
                    fleet.hot[rng.usize(..fleet.hot.len())],
                    rng.usize(HOT_BURST),
                )
            } else {
                (rng.usize(..fleet.len()), 1)
            };
            for _ in 0..burst {
                if !counts.add(queue, fleet.key(i)) {
                    return;
                }
            }
        }
        sent = sent.max(due);
        if rng.u32(..ROLLOUT_EVERY_TICKS) == 0 {
            counts.rollouts.fetch_add(1, Ordering::Relaxed);
            let namespace = rng.usize(..fleet.namespaces());
            let first = namespace * PER_NAMESPACE;
            let last = (first + PER_NAMESPACE).min(fleet.len());
            for _ in 0..ROLLOUT_ROUNDS {
                for i in first..last {
                    if !counts.add(queue, fleet.key(i)) {
                        return;
                    }
                }
            }
        }
    }
}
