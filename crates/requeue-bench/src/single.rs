//! The one-thread workloads: W1 (fifo-single), W2 (dedup), W7 (limiter-when)
//! and W1's channel floor.

use crate::crew::{Timing, timed};
use crate::measure::expect_count;
use crate::{BenchError, CounterMetrics, Measurement, keys};
use requeue::limiter::{ItemExponential, RateLimiter};
use requeue::queue::{TryGetError, WorkQueue};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A queue for throughput workloads: real clock, no metrics, default limiter.
pub(crate) fn plain_queue() -> WorkQueue<String> {
    WorkQueue::new()
}

/// A queue with [`CounterMetrics`] attached (metrics are only kept for a named queue).
pub(crate) fn metered_queue(name: &str) -> WorkQueue<String> {
    WorkQueue::builder()
        .name(name)
        .metrics(Arc::new(CounterMetrics::new()))
        .build()
}

fn finish(mut m: Measurement, timing: Timing) -> Measurement {
    m.cpu = timing.cpu;
    m.with_memory()
}

/// W1 fifo-single: one thread adds N distinct keys, then N × (get, done). ops = 3N.
pub fn w1_fifo_single(n: usize) -> Result<Measurement, BenchError> {
    w1_on(plain_queue(), n, "requeue")
}

/// W1 with [`CounterMetrics`] attached (compare with [`w1_fifo_single`]: target ≤ 25 % slower).
pub fn w1_fifo_single_metered(n: usize) -> Result<Measurement, BenchError> {
    w1_on(metered_queue("w1"), n, "requeue+metrics")
}

fn w1_on(
    queue: WorkQueue<String>,
    n: usize,
    engine: &'static str,
) -> Result<Measurement, BenchError> {
    const W: &str = "W1";
    let keys = keys(n);
    let (result, timing) = timed(|| {
        for key in keys {
            if queue.add(key).is_err() {
                return Err(0);
            }
        }
        let mut got = 0u64;
        loop {
            match queue.try_get() {
                Ok(item) => {
                    item.done();
                    got += 1;
                }
                Err(TryGetError::Empty) => return Ok(got),
                Err(TryGetError::ShutDown) => return Err(got),
            }
        }
    });
    let got = result.map_err(|got| BenchError::Invariant {
        workload: W,
        detail: format!("the queue shut down by itself after {got} gets"),
    })?;
    expect_count(W, n as u64, got)?;
    let m = finish(
        Measurement::new(W, engine, 3 * n as u64, n as u64, timing.wall),
        timing,
    );
    queue.shut_down();
    Ok(m)
}

/// W1 through an unbounded crossbeam channel: send N keys, then N × receive
/// (and drop). ops = 2N; compare items/s.
pub fn floor_w1(n: usize) -> Result<Measurement, BenchError> {
    const W: &str = "W1";
    let keys = keys(n);
    let (tx, rx) = crossbeam_channel::unbounded();
    let (got, timing) = timed(|| {
        for key in keys {
            let _ = tx.send(key);
        }
        let mut got = 0u64;
        while let Ok(key) = rx.try_recv() {
            drop(key);
            got += 1;
        }
        got
    });
    expect_count(W, n as u64, got)?;
    Ok(finish(
        Measurement::new(W, "crossbeam-channel", 2 * n as u64, n as u64, timing.wall),
        timing,
    ))
}

/// W2 dedup: one thread; each of `rounds` rounds adds all `distinct` keys,
/// then the queue is drained with get + done, which must take exactly
/// `distinct` gets. ops = adds + gets + dones. Full size: 1,000 × 1,000
/// (docs/benchmarks.md §1).
///
/// Each round's keys are cloned before the clock runs (the items are built
/// before timing), so only the adds are timed; with the clock stopped
/// between rounds, no CPU time is reported.
pub fn w2_dedup(distinct: usize, rounds: usize) -> Result<Measurement, BenchError> {
    const W: &str = "W2";
    let queue = plain_queue();
    let keys = keys(distinct);
    let mut wall = Duration::ZERO;
    for _ in 0..rounds {
        // Keys a controller re-adds are keys it holds: `add_ref` clones one
        // only when the queue must store it, so the 999 of every 1,000
        // adds that collapse allocate and free nothing.
        let start = Instant::now();
        let added = keys.iter().all(|key| queue.add_ref(key).is_ok());
        wall += start.elapsed();
        if !added {
            return Err(BenchError::Invariant {
                workload: W,
                detail: "the queue refused an add".into(),
            });
        }
    }
    if queue.len() != distinct {
        return Err(BenchError::Invariant {
            workload: W,
            detail: format!("{} ready after the adds, expected {distinct}", queue.len()),
        });
    }
    let start = Instant::now();
    let mut gets = 0u64;
    while let Ok(item) = queue.try_get() {
        item.done();
        gets += 1;
    }
    wall += start.elapsed();
    expect_count(W, distinct as u64, gets)?;
    let ops = (distinct * rounds) as u64 + 2 * gets;
    let m = Measurement::new(W, "requeue", ops, distinct as u64, wall);
    queue.shut_down();
    Ok(m.with_memory())
}

/// W7 limiter-when: an item-exponential limiter (5 ms, 1000 s) answers
/// `when` for N keys, again for each, then forgets all. ops = 3N;
/// [`Measurement::rss_bytes`] is read while the N keys are tracked.
pub fn w7_limiter_when(n: usize) -> Result<Measurement, BenchError> {
    const W: &str = "W7";
    let limiter =
        ItemExponential::<String>::new(Duration::from_millis(5), Duration::from_secs(1000));
    let keys = keys(n);
    let pass = |expect: Duration| {
        timed(|| {
            keys.iter()
                .map(|k| u64::from(limiter.when(k) != expect))
                .sum::<u64>()
        })
    };
    let (wrong1, t1) = pass(Duration::from_millis(5));
    let (wrong2, t2) = pass(Duration::from_millis(10));
    let tracked = limiter.tracked_items();
    let rss = crate::current_rss_bytes();
    let ((), t3) = timed(|| keys.iter().for_each(|k| limiter.forget(k)));
    let left = limiter.tracked_items();
    if wrong1 + wrong2 > 0 || tracked != n || left != 0 {
        return Err(BenchError::Invariant {
            workload: W,
            detail: format!(
                "{wrong1}+{wrong2} wrong delays, {tracked} tracked of {n}, {left} left after forget"
            ),
        });
    }
    let mut m = Measurement::new(
        W,
        "requeue",
        3 * n as u64,
        n as u64,
        t1.wall + t2.wall + t3.wall,
    );
    m.cpu = [t1.cpu, t2.cpu, t3.cpu].into_iter().sum();
    m.rss_bytes = rss;
    Ok(m.with_memory())
}
