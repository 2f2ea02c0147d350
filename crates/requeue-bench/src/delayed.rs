//! W6 delayed: one producer `add_after`s N keys with pseudo-random delays
//! of 0–1000 ms; two consumers measure how late each comes out.

use crate::crew::Crew;
use crate::measure::expect_count;
use crate::single::plain_queue;
use crate::{BenchError, LatencyHistogram, Measurement, SplitMix64, W6_SEED, key_index, keys};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Consumers of W6.
const CONSUMERS: usize = 2;

/// W6's delays in milliseconds: `splitmix64(seed 0x5EED).next() % 1001` for each of `n` keys.
pub fn w6_delays_ms(n: usize) -> impl Iterator<Item = u64> {
    let mut rng = SplitMix64::new(W6_SEED);
    (0..n).map(move |_| rng.next() % 1001)
}

/// W6 delayed: 1 producer `add_after`s N keys (delay of key i = the i-th
/// [`w6_delays_ms`]), recording due = elapsed-before-call + delay; 2
/// consumers record lateness = get time − due, then done, until all N came
/// out. ops = adds and wall = the producer's add loop (adds/s);
/// [`Measurement::latency`] holds the lateness p50/p99/max and
/// [`Measurement::cpu`] covers the whole run, the wait for the last delay
/// included. An item handed out before its due time is an error.
pub fn w6_delayed(n: usize) -> Result<Measurement, BenchError> {
    const W: &str = "W6";
    let queue = plain_queue();
    // Holds each key's delay (ns) until the producer replaces it with its due time.
    let due: Arc<Vec<AtomicU64>> = Arc::new(
        w6_delays_ms(n)
            .map(|ms| AtomicU64::new(ms * 1_000_000))
            .collect(),
    );
    let epoch = Instant::now();
    let add_wall = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let lateness = Arc::new(Mutex::new(LatencyHistogram::new()));
    let broken: Arc<Mutex<Option<BenchError>>> = Arc::default();
    let mut crew = Crew::new(W);
    {
        let (queue, due, add_wall, keys) = (queue.clone(), due.clone(), add_wall.clone(), keys(n));
        crew.spawn("producer", move || {
            let start = Instant::now();
            for (key, due) in keys.into_iter().zip(due.iter()) {
                let delay = due.load(Ordering::Relaxed);
                let before = nanos(epoch.elapsed());
                due.store(before + delay, Ordering::Relaxed); // published by the queue's lock
                if queue.add_after(key, Duration::from_nanos(delay)).is_err() {
                    break; // a consumer found a broken invariant
                }
            }
            add_wall.store(nanos(start.elapsed()), Ordering::Relaxed);
        });
    }
    for c in 0..CONSUMERS {
        let (queue, due, seen) = (queue.clone(), due.clone(), seen.clone());
        let (lateness, broken) = (lateness.clone(), broken.clone());
        crew.spawn(&format!("consumer-{c}"), move || {
            let mut mine = LatencyHistogram::new();
            let target = n as u64;
            while let Some(item) = queue.get() {
                let now = nanos(epoch.elapsed());
                let Some(due) = key_index(&item).and_then(|i| due.get(i)) else {
                    broken
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(BenchError::Invariant {
                            workload: W,
                            detail: format!("unknown key {}", *item),
                        });
                    queue.shut_down();
                    break;
                };
                let due = due.load(Ordering::Relaxed);
                if now < due {
                    broken
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(BenchError::Invariant {
                            workload: W,
                            detail: format!(
                                "{} handed out {} µs before it was due",
                                *item,
                                (due - now) / 1000
                            ),
                        });
                }
                mine.record(Duration::from_nanos(now.saturating_sub(due)));
                item.done();
                if seen.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    queue.shut_down();
                }
            }
            lateness
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .merge(&mine);
        });
    }
    if n == 0 {
        queue.shut_down();
    }
    let abort = queue.clone();
    let timing = crew.run(|| (), move || drop(abort.shut_down()))?;
    if let Some(e) = broken.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e);
    }
    expect_count(W, n as u64, seen.load(Ordering::Relaxed))?;
    let wall = Duration::from_nanos(add_wall.load(Ordering::Relaxed));
    let mut m = Measurement::new(W, "requeue", n as u64, n as u64, wall);
    m.cpu = timing.cpu;
    m.latency = lateness
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .summary();
    Ok(m.with_memory())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
