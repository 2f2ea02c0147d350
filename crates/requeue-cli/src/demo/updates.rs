//! The update stream: what an informer would feed a controller. A steady
//! trickle of object changes (hot keys far more often, in bursts) plus,
//! now and then, a rollout that touches every object of a namespace
//! several times in a row. The queue collapses the repeats; we count them.

use super::fleet::{Fleet, PER_NAMESPACE};
use futures_util::StreamExt;
use requeue::engine::{AsyncQueue, QueueError};
use requeue::queue::{AddOpts, Added, WorkQueue};
use requeue::wait::Stop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the stream wakes up.
const TICK: Duration = Duration::from_millis(10);
/// Steady updates per second per worker of the in-memory demo: below what
/// the workers can do, so the queue stays short between rollouts.
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

    /// Counts an add the queue took.
    fn took(&self, added: Added) {
        self.adds.fetch_add(1, Ordering::Relaxed);
        if added == Added::Merged {
            self.merged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `key`; `false` once the queue is shutting down.
    fn add(&self, queue: &WorkQueue<String>, key: &str) -> bool {
        match queue.add(key.to_string()) {
            Ok(added) => {
                self.took(added);
                true
            }
            Err(_) => false,
        }
    }
}

/// The stream's plan: which keys to add at each tick. The same plan feeds
/// the blocking driver ([`run`]) and the async one ([`run_async`]).
struct Plan<'a> {
    fleet: &'a Fleet,
    rng: fastrand::Rng,
    per_second: u64,
    start: Instant,
    sent: u64,
    next: Instant,
}

impl<'a> Plan<'a> {
    fn new(fleet: &'a Fleet, per_second: u64, seed: u64) -> Self {
        let start = Instant::now();
        Plan {
            fleet,
            rng: fastrand::Rng::with_seed(seed ^ 0x5EED),
            per_second,
            start,
            sent: 0,
            next: start,
        }
    }

    /// When the next tick is due.
    fn next_tick(&mut self) -> Instant {
        self.next += TICK;
        self.next
    }

    /// The fleet positions to add at this tick, in order, into `batch`
    /// (cleared first); counts a rollout when one starts.
    fn tick(&mut self, counts: &UpdateCounts, batch: &mut Vec<usize>) {
        let (fleet, rng) = (self.fleet, &mut self.rng);
        batch.clear();
        // Catch up to the rate the elapsed time allows, so a late tick
        // does not lower the rate.
        let due = (self.start.elapsed().as_secs_f64() * self.per_second as f64) as u64;
        // But not more than a second's worth at once: a stream held up for
        // long (a frozen Redis) skips what it missed instead of sending a
        // burst, and the batch stays bounded however long the hold-up.
        self.sent = self.sent.max(due.saturating_sub(self.per_second));
        for _ in self.sent..due {
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
            batch.extend(std::iter::repeat_n(i, burst));
        }
        self.sent = self.sent.max(due);
        if rng.u32(..ROLLOUT_EVERY_TICKS) == 0 {
            counts.rollouts.fetch_add(1, Ordering::Relaxed);
            let namespace = rng.usize(..fleet.namespaces());
            let first = namespace * PER_NAMESPACE;
            let last = (first + PER_NAMESPACE).min(fleet.len());
            for _ in 0..ROLLOUT_ROUNDS {
                batch.extend(first..last);
            }
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
    let mut plan = Plan::new(fleet, STEADY_PER_WORKER * u64::from(workers), seed);
    let mut batch = Vec::new();
    loop {
        let next = plan.next_tick();
        if stop.wait_timeout(next.saturating_duration_since(Instant::now())) {
            return;
        }
        plan.tick(counts, &mut batch);
        for &i in &batch {
            if !counts.add(queue, fleet.key(i)) {
                return;
            }
        }
    }
}

/// As [`run`], on any engine, at `per_second` steady updates.
pub async fn run_async<Q: AsyncQueue<String>>(
    fleet: &Fleet,
    queue: &Q,
    per_second: u64,
    seed: u64,
    counts: &UpdateCounts,
    stop: &Stop,
) {
    let mut plan = Plan::new(fleet, per_second, seed);
    // Reused; at most a second's worth of updates plus a rollout (see `tick`).
    let mut batch = Vec::new();
    loop {
        let next = tokio::time::Instant::from_std(plan.next_tick());
        tokio::select! {
            biased;
            _ = stop.stopped() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        plan.tick(counts, &mut batch);
        let keys = batch.iter().map(|&i| fleet.key(i).to_string());
        if !add_all(queue, keys, AddOpts::new(), stop, |added| {
            counts.took(added)
        })
        .await
        {
            return;
        }
    }
}

/// Adds on a remote engine wait a round trip each: this many at once.
const ADDS_IN_FLIGHT: usize = 64;

/// Adds `keys` with `opts`, up to [`ADDS_IN_FLIGHT`] at a time, calling
/// `took` for each add made; `false` once the queue shuts down or `stop`
/// fires. An add the engine fails (a Redis hiccup) is skipped: an informer
/// would deliver the object's next change, and the resync lists it anyway.
pub async fn add_all<Q: AsyncQueue<String>>(
    queue: &Q,
    keys: impl Iterator<Item = String>,
    opts: AddOpts,
    stop: &Stop,
    mut took: impl FnMut(Added),
) -> bool {
    let mut adds = futures_util::stream::iter(keys.map(|key| queue.add_with(key, opts)))
        .buffer_unordered(ADDS_IN_FLIGHT);
    loop {
        // The stop ends the adds under way too: on a frozen Redis each
        // would wait for its timeout.
        let result = tokio::select! {
            biased;
            _ = stop.stopped() => return false,
            next = adds.next() => match next {
                Some(result) => result,
                None => return true,
            },
        };
        match result {
            Ok(added) => took(added),
            Err(refused) if matches!(refused.error, QueueError::ShutDown) => return false,
            Err(_) => {}
        }
    }
}
