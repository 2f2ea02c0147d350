//! W3 (mpmc) and W4 (mpmc-oversub): producers add N distinct keys in
//! contiguous shares, consumers get + done until N items were seen, then
//! shut the queue down. Items/s = N / wall. On threads, as tokio tasks,
//! and their channel floors.

use crate::crew::{Crew, Timing};
use crate::measure::expect_count;
use crate::single::{metered_queue, plain_queue};
use crate::tasks::{TASK_BATCH, TaskCrew};
use crate::{BenchError, Measurement, keys};
use requeue::queue::WorkQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// W3 mpmc: `producers` threads add N distinct keys in total (N / producers
/// contiguous keys each); `consumers` threads get + done until N items were
/// seen, then shut down. W3 runs 2 and 2 (docs/benchmarks.md §2.3).
pub fn w3_mpmc(n: usize, producers: usize, consumers: usize) -> Result<Measurement, BenchError> {
    mpmc_on(plain_queue(), "W3", "requeue", n, producers, consumers)
}

/// W3 (2 producers, 2 consumers) with [`CounterMetrics`](crate::CounterMetrics)
/// attached (target: at most 25 % slower than [`w3_mpmc`]).
pub fn w3_mpmc_metered(n: usize) -> Result<Measurement, BenchError> {
    mpmc_on(metered_queue("w3"), "W3", "requeue+metrics", n, 2, 2)
}

/// W4 mpmc-oversub: W3 with 8 producers and 8 consumers on the machine's cores.
pub fn w4_mpmc_oversub(n: usize) -> Result<Measurement, BenchError> {
    mpmc_on(plain_queue(), "W4", "requeue", n, 8, 8)
}

/// W3 as tokio tasks on a multi-thread runtime with 2 worker threads
/// ([`TASK_WORKERS`](crate::TASK_WORKERS)): `producers` tasks add N
/// distinct keys (plain `add` calls), yielding to the scheduler after
/// every [`TASK_BATCH`] adds so that producers and consumers run at once
/// (a task is never preempted; see [`TASK_BATCH`]); `consumers` tasks take
/// items with [`WorkQueue::get_async`] and mark them done until N were
/// seen. The same invariants as [`w3_mpmc`]: every add accepted, exactly
/// N items out.
pub fn w3_mpmc_tasks(
    n: usize,
    producers: usize,
    consumers: usize,
) -> Result<Measurement, BenchError> {
    mpmc_tasks(plain_queue(), "W3", n, producers, consumers)
}

/// W4 as tokio tasks: [`w3_mpmc_tasks`] with 8 producer and 8 consumer
/// tasks on the runtime's 2 worker threads.
pub fn w4_mpmc_oversub_tasks(n: usize) -> Result<Measurement, BenchError> {
    mpmc_tasks(plain_queue(), "W4", n, 8, 8)
}

/// Splits `keys` into `parts` contiguous shares (the first ones one longer).
fn shares(keys: Vec<String>, parts: usize) -> Vec<Vec<String>> {
    let parts = parts.max(1);
    let (base, extra) = (keys.len() / parts, keys.len() % parts);
    let mut rest = keys.into_iter();
    (0..parts)
        .map(|p| rest.by_ref().take(base + usize::from(p < extra)).collect())
        .collect()
}

fn mpmc_on(
    queue: WorkQueue<String>,
    workload: &'static str,
    engine: &'static str,
    n: usize,
    producers: usize,
    consumers: usize,
) -> Result<Measurement, BenchError> {
    let seen = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let target = n as u64;
    let mut crew = Crew::new(workload);
    for (p, share) in shares(keys(n), producers).into_iter().enumerate() {
        let (queue, refused) = (queue.clone(), refused.clone());
        crew.spawn(&format!("producer-{p}"), move || {
            for key in share {
                if queue.add(key).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    for c in 0..consumers.max(1) {
        let (queue, seen) = (queue.clone(), seen.clone());
        crew.spawn(&format!("consumer-{c}"), move || {
            while let Some(item) = queue.get() {
                item.done();
                if seen.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    queue.shut_down();
                }
            }
        });
    }
    if n == 0 {
        queue.shut_down();
    }
    let abort = queue.clone();
    let timing = crew.run(|| (), move || drop(abort.shut_down()))?;
    check_mpmc(workload, target, &refused, &seen)?;
    Ok(finish(workload, engine, target, timing))
}

fn mpmc_tasks(
    queue: WorkQueue<String>,
    workload: &'static str,
    n: usize,
    producers: usize,
    consumers: usize,
) -> Result<Measurement, BenchError> {
    let seen = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let target = n as u64;
    let mut crew = TaskCrew::new(workload);
    for share in shares(keys(n), producers) {
        let (queue, refused) = (queue.clone(), refused.clone());
        crew.spawn(async move {
            for (i, key) in share.into_iter().enumerate() {
                if i > 0 && i.is_multiple_of(TASK_BATCH) {
                    tokio::task::yield_now().await;
                }
                if queue.add(key).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    for _ in 0..consumers.max(1) {
        let (queue, seen) = (queue.clone(), seen.clone());
        crew.spawn(async move {
            while let Some(item) = queue.get_async().await {
                item.done();
                if seen.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    queue.shut_down();
                }
            }
        });
    }
    if n == 0 {
        queue.shut_down();
    }
    let abort = queue.clone();
    let timing = crew.run(move || drop(abort.shut_down()))?;
    check_mpmc(workload, target, &refused, &seen)?;
    Ok(finish(workload, "requeue-tasks", target, timing))
}

/// Every add was accepted and exactly `target` items came out.
fn check_mpmc(
    workload: &'static str,
    target: u64,
    refused: &AtomicU64,
    seen: &AtomicU64,
) -> Result<(), BenchError> {
    let refused = refused.load(Ordering::Relaxed);
    if refused > 0 {
        return Err(BenchError::Invariant {
            workload,
            detail: format!("{refused} adds refused: the queue shut down before N items were seen"),
        });
    }
    expect_count(workload, target, seen.load(Ordering::Relaxed))
}

fn finish(workload: &'static str, engine: &'static str, n: u64, timing: Timing) -> Measurement {
    let mut m = Measurement::new(workload, engine, n, n, timing.wall);
    m.cpu = timing.cpu;
    m.with_memory()
}

/// W3 through an unbounded crossbeam channel: 2 producers send N keys,
/// 2 consumers receive until every sender is gone.
pub fn floor_w3(n: usize) -> Result<Measurement, BenchError> {
    floor_mpmc("W3", n, 2, 2)
}

/// W4 through an unbounded crossbeam channel: 8 producers, 8 consumers.
pub fn floor_w4(n: usize) -> Result<Measurement, BenchError> {
    floor_mpmc("W4", n, 8, 8)
}

fn floor_mpmc(
    workload: &'static str,
    n: usize,
    producers: usize,
    consumers: usize,
) -> Result<Measurement, BenchError> {
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    let seen = Arc::new(AtomicU64::new(0));
    let mut crew = Crew::new(workload);
    for (p, share) in shares(keys(n), producers).into_iter().enumerate() {
        let tx = tx.clone();
        crew.spawn(&format!("producer-{p}"), move || {
            for key in share {
                let _ = tx.send(key);
            }
        });
    }
    drop(tx);
    for c in 0..consumers.max(1) {
        let (rx, seen) = (rx.clone(), seen.clone());
        crew.spawn(&format!("consumer-{c}"), move || {
            let mut mine = 0;
            while let Ok(key) = rx.recv() {
                drop(key);
                mine += 1;
            }
            seen.fetch_add(mine, Ordering::Relaxed);
        });
    }
    drop(rx);
    let timing = crew.run(|| (), || ())?;
    expect_count(workload, n as u64, seen.load(Ordering::Relaxed))?;
    Ok(finish(workload, "crossbeam-channel", n as u64, timing))
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_are_contiguous_and_complete() {
        let keys: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let parts = shares(keys, 3);
        let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(lens, [4, 3, 3]);
        assert_eq!(parts[1][0], "4");
    }
}
