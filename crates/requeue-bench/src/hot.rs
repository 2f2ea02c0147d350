//! W5 hot-requeue: a producer keeps re-adding a small set of keys while two
//! consumers process them, checking that no key is ever held twice.

use crate::crew::Crew;
use crate::single::plain_queue;
use crate::{BenchError, Measurement, key_index, keys};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// W5's keys: the producer cycles through keys 0..1000.
pub const HOT_KEYS: usize = 1_000;

/// W5's work per item: a 10 µs busy spin, so 2 consumers can process at most 200k items/s.
pub const HOT_SPIN: Duration = Duration::from_micros(10);

/// Consumers of W5.
const CONSUMERS: usize = 2;

/// W5 hot-requeue: 1 producer re-adds keys 0..999 round-robin for
/// `duration` (2 s in WORKLOADS.md), then shuts the queue down; 2
/// consumers get, mark the key in hand (failing if it is already marked),
/// spin 10 µs, unmark, done. ops = items processed; wall runs until the
/// consumers have drained the queue.
pub fn w5_hot_requeue(duration: Duration) -> Result<Measurement, BenchError> {
    const W: &str = "W5";
    let queue = plain_queue();
    let held: Arc<Vec<AtomicBool>> =
        Arc::new((0..HOT_KEYS).map(|_| AtomicBool::new(false)).collect());
    let processed = Arc::new(AtomicU64::new(0));
    let broken: Arc<Mutex<Option<BenchError>>> = Arc::default();
    let mut crew = Crew::new(W);
    {
        let queue = queue.clone();
        let keys = keys(HOT_KEYS);
        crew.spawn("producer", move || {
            let start = Instant::now();
            'run: while start.elapsed() < duration {
                for key in &keys {
                    if queue.add(key.clone()).is_err() {
                        break 'run; // a consumer saw a broken invariant
                    }
                }
            }
            queue.shut_down();
        });
    }
    for c in 0..CONSUMERS {
        let (queue, held, processed, broken) = (
            queue.clone(),
            held.clone(),
            processed.clone(),
            broken.clone(),
        );
        crew.spawn(&format!("consumer-{c}"), move || {
            let mut mine = 0;
            let fail = |e: BenchError| {
                broken
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
                queue.shut_down();
            };
            while let Some(item) = queue.get() {
                let Some(flag) = key_index(&item).and_then(|i| held.get(i)) else {
                    fail(BenchError::Invariant {
                        workload: W,
                        detail: format!("unknown key {}", *item),
                    });
                    break;
                };
                if flag.swap(true, Ordering::AcqRel) {
                    fail(BenchError::Duplicate {
                        workload: W,
                        key: item.clone(),
                        detail: "handed to a consumer while another held it".into(),
                    });
                    break;
                }
                let spin = Instant::now();
                while spin.elapsed() < HOT_SPIN {
                    std::hint::spin_loop();
                }
                flag.store(false, Ordering::Release);
                item.done();
                mine += 1;
            }
            processed.fetch_add(mine, Ordering::Relaxed);
        });
    }
    let abort = queue.clone();
    let timing = crew.run(|| (), move || drop(abort.shut_down()))?;
    if let Some(e) = broken.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e);
    }
    let left = queue.snapshot();
    if left.ready + left.processing + left.delayed > 0 {
        return Err(BenchError::Invariant {
            workload: W,
            detail: format!("items left after the drain: {left:?}"),
        });
    }
    let processed = processed.load(Ordering::Relaxed);
    let mut m = Measurement::new(W, "requeue", processed, HOT_KEYS as u64, timing.wall);
    m.cpu = timing.cpu;
    Ok(m.with_memory())
}
