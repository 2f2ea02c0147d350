//! W5 hot-requeue: a producer keeps re-adding a small set of keys while two
//! consumers process them, checking that no key is ever held twice. On
//! threads and as tokio tasks.

use crate::crew::{Crew, Timing};
use crate::single::plain_queue;
use crate::tasks::{TASK_BATCH, TaskCrew};
use crate::{BenchError, Measurement, key_index, keys};
use requeue::queue::WorkQueue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// W5's keys: the producer cycles through keys 0..1000.
pub const HOT_KEYS: usize = 1_000;

/// W5's work per item: a 10 µs busy spin, so 2 consumers can process at most 200k items/s.
pub const HOT_SPIN: Duration = Duration::from_micros(10);

/// Consumers of W5.
const CONSUMERS: usize = 2;

const W: &str = "W5";

/// What W5's producer and consumers share.
struct Hot {
    queue: WorkQueue<String>,
    /// Whether key i is in a consumer's hand.
    held: Vec<AtomicBool>,
    processed: AtomicU64,
    broken: Mutex<Option<BenchError>>,
}

impl Hot {
    fn new() -> Arc<Hot> {
        Arc::new(Hot {
            queue: plain_queue(),
            held: (0..HOT_KEYS).map(|_| AtomicBool::new(false)).collect(),
            processed: AtomicU64::new(0),
            broken: Mutex::new(None),
        })
    }

    /// Records the first broken invariant and shuts the queue down.
    fn fail(&self, e: BenchError) {
        self.broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.queue.shut_down();
    }

    /// A consumer's work on the key in hand: mark it (failing if another
    /// consumer holds it), spin 10 µs, unmark. `false` once an invariant
    /// is broken (the queue is then shut down).
    fn work(&self, key: &str) -> bool {
        let Some(flag) = key_index(key).and_then(|i| self.held.get(i)) else {
            self.fail(BenchError::Invariant {
                workload: W,
                detail: format!("unknown key {key}"),
            });
            return false;
        };
        if flag.swap(true, Ordering::AcqRel) {
            self.fail(BenchError::Duplicate {
                workload: W,
                key: key.to_string(),
                detail: "handed to a consumer while another held it".into(),
            });
            return false;
        }
        let spin = Instant::now();
        while spin.elapsed() < HOT_SPIN {
            std::hint::spin_loop();
        }
        flag.store(false, Ordering::Release);
        true
    }

    /// The measurement, once every worker has finished: the first broken
    /// invariant, if any, and nothing left in the queue.
    fn finish(&self, engine: &'static str, timing: Timing) -> Result<Measurement, BenchError> {
        if let Some(e) = self
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        let left = self.queue.snapshot();
        if left.ready + left.processing + left.delayed > 0 {
            return Err(BenchError::Invariant {
                workload: W,
                detail: format!("items left after the drain: {left:?}"),
            });
        }
        let processed = self.processed.load(Ordering::Relaxed);
        let mut m = Measurement::new(W, engine, processed, HOT_KEYS as u64, timing.wall);
        m.cpu = timing.cpu;
        Ok(m.with_memory())
    }
}

/// W5 hot-requeue: 1 producer re-adds keys 0..999 round-robin for
/// `duration` (2 s at full size, docs/benchmarks.md §1), then shuts the queue down; 2
/// consumers get, mark the key in hand (failing if it is already marked),
/// spin 10 µs, unmark, done. ops = items processed; wall runs until the
/// consumers have drained the queue.
pub fn w5_hot_requeue(duration: Duration) -> Result<Measurement, BenchError> {
    let hot = Hot::new();
    let mut crew = Crew::new(W);
    {
        let (hot, keys) = (hot.clone(), keys(HOT_KEYS));
        crew.spawn("producer", move || {
            let start = Instant::now();
            'run: while start.elapsed() < duration {
                for key in &keys {
                    if hot.queue.add(key.clone()).is_err() {
                        break 'run; // a consumer saw a broken invariant
                    }
                }
            }
            hot.queue.shut_down();
        });
    }
    for c in 0..CONSUMERS {
        let hot = hot.clone();
        crew.spawn(&format!("consumer-{c}"), move || {
            let mut mine = 0;
            while let Some(item) = hot.queue.get() {
                if !hot.work(&item) {
                    break;
                }
                item.done();
                mine += 1;
            }
            hot.processed.fetch_add(mine, Ordering::Relaxed);
        });
    }
    let abort = hot.queue.clone();
    let timing = crew.run(|| (), move || drop(abort.shut_down()))?;
    hot.finish("requeue", timing)
}

/// W5 as tokio tasks on a multi-thread runtime with 2 worker threads
/// ([`TASK_WORKERS`](crate::TASK_WORKERS)). The producer task re-adds
/// [`TASK_BATCH`] keys (round-robin over 0..999), checks the time and
/// then yields to the scheduler (`tokio::task::yield_now`) before the next
/// batch (client-go's producer goroutine checks the time every 256 adds
/// too): a task is never preempted, so a producer that did not yield
/// would hold a worker thread for the whole run, where Go's scheduler
/// preempts the producer goroutine. The 2 consumer tasks take items with
/// [`WorkQueue::get_async`] and spin 10 µs synchronously inside the task
/// (as client-go's consumer goroutines do), with the same marking of the
/// key in hand as [`w5_hot_requeue`].
pub fn w5_hot_requeue_tasks(duration: Duration) -> Result<Measurement, BenchError> {
    let hot = Hot::new();
    let mut crew = TaskCrew::new(W);
    {
        let (hot, keys) = (hot.clone(), keys(HOT_KEYS));
        crew.spawn(async move {
            let start = Instant::now();
            let mut next = keys.iter().cycle();
            'run: loop {
                for key in next.by_ref().take(TASK_BATCH) {
                    if hot.queue.add(key.clone()).is_err() {
                        break 'run; // a consumer saw a broken invariant
                    }
                }
                if start.elapsed() >= duration {
                    break;
                }
                tokio::task::yield_now().await;
            }
            hot.queue.shut_down();
        });
    }
    for _ in 0..CONSUMERS {
        let hot = hot.clone();
        crew.spawn(async move {
            let mut mine = 0;
            while let Some(item) = hot.queue.get_async().await {
                if !hot.work(&item) {
                    break;
                }
                item.done();
                mine += 1;
            }
            hot.processed.fetch_add(mine, Ordering::Relaxed);
        });
    }
    let abort = hot.queue.clone();
    let timing = crew.run(move || drop(abort.shut_down()))?;
    hot.finish("requeue-tasks", timing)
}
