//! W1 and W3 on the Redis engine (`requeue-redis`), with `workers`
//! concurrent tasks, beside the floor: the same number of items through
//! raw `LPUSH`/`RPOP` on one multiplexed connection, measured in the same
//! run against the same server.
//!
//! Every workload checks that each item came out exactly once.

use crate::{BenchError, Measurement};
use redis::AsyncCommands;
use requeue::engine::{QueueError, Then};
use requeue_redis::RedisQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The concurrency levels `requeue bench --engine redis` runs.
pub const REDIS_WORKERS: [usize; 3] = [1, 8, 32];

/// The engine name of requeue-redis with `workers` tasks, fetching ahead
/// or not (`RedisQueueBuilder::prefetch`).
pub fn requeue_redis_name(workers: usize, prefetch: bool) -> &'static str {
    match (prefetch, workers) {
        (false, _) => redis_engine_name(workers, false),
        (true, 1) => "requeue-redis x1 prefetch",
        (true, 8) => "requeue-redis x8 prefetch",
        (true, 32) => "requeue-redis x32 prefetch",
        (true, _) => "requeue-redis prefetch",
    }
}

/// The engine name of a Redis measurement with `workers` tasks.
pub fn redis_engine_name(workers: usize, floor: bool) -> &'static str {
    match (floor, workers) {
        (false, 1) => "requeue-redis x1",
        (false, 8) => "requeue-redis x8",
        (false, 32) => "requeue-redis x32",
        (false, _) => "requeue-redis",
        (true, 1) => "LPUSH/RPOP x1",
        (true, 8) => "LPUSH/RPOP x8",
        (true, 32) => "LPUSH/RPOP x32",
        (true, _) => "LPUSH/RPOP",
    }
}

/// A queue or list name no other run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..))
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| redis_failed("runtime", e))
}

/// A failure of the Redis engine (or its runtime), with every cause once.
fn redis_failed(workload: &'static str, error: impl std::error::Error + 'static) -> BenchError {
    BenchError::Engine {
        workload,
        detail: requeue_redis::error::Chain(&error).to_string(),
    }
}

/// Splits `0..n` into `parts` contiguous ranges.
fn shares(n: u64, parts: usize) -> Vec<std::ops::Range<u64>> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|p| (n * p / parts)..(n * (p + 1) / parts))
        .collect()
}

/// Consumers: take items until `n` were seen, each exactly once.
async fn consume(
    workload: &'static str,
    queue: &RedisQueue<String>,
    n: u64,
    workers: usize,
) -> Result<(), BenchError> {
    let seen = Arc::new(seen::SeenSet::default());
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, seen, count) = (queue.clone(), seen.clone(), count.clone());
            tokio::spawn(async move {
                // The key the last ending took on its way, as a
                // controller's worker takes it.
                let mut next = None;
                loop {
                    let item = match next.take() {
                        Some(item) => item,
                        None => match queue.get().await {
                            Ok(item) => item,
                            Err(QueueError::ShutDown) => return Ok(()),
                            Err(e) => return Err(redis_failed(workload, e)),
                        },
                    };
                    if !seen.insert((*item).clone()) {
                        return Err(BenchError::Duplicate {
                            workload,
                            key: (*item).clone(),
                            detail: "handed out twice".into(),
                        });
                    }
                    let (ended, following) = item.end_then_next(Then::Done).await;
                    ended.map_err(|e| redis_failed(workload, e))?;
                    next = following;
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        queue.shut_down();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| redis_failed(workload, e))??;
    }
    let got = count.load(Ordering::SeqCst);
    if got != n {
        return Err(BenchError::Lost {
            workload,
            expected: n,
            got,
        });
    }
    Ok(())
}

/// Producers: add keys `range` one call at a time.
async fn produce(
    workload: &'static str,
    queue: RedisQueue<String>,
    range: std::ops::Range<u64>,
) -> Result<(), BenchError> {
    for i in range {
        queue
            .add(format!("key-{i}"))
            .await
            .map_err(|e| redis_failed(workload, e))?;
    }
    Ok(())
}

async fn connect(
    workload: &'static str,
    url: &str,
    prefetch: usize,
) -> Result<RedisQueue<String>, BenchError> {
    RedisQueue::builder(url, unique("bench"))
        .prefetch(prefetch)
        .build()
        .await
        .map_err(|e| redis_failed(workload, e))
}

/// An edge of a workload's timed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    /// Right before the clock starts (the queue is connected).
    Start,
    /// Right after the clock stops.
    Stop,
}

/// Called at each [`Edge`] of the timed part, outside the clock (the
/// peers bench reads `INFO commandstats` there); the plain bench's does nothing.
pub(crate) type Window<'a> = &'a mut dyn FnMut(Edge) -> Result<(), BenchError>;

/// W1 on Redis: add `n` distinct keys (`workers` concurrent adders), then
/// `workers` consumers get + done them all. ops = 3N. `prefetch` is the
/// queue's `RedisQueueBuilder::prefetch` (0: off, the default).
pub fn w1_redis(
    url: &str,
    n: u64,
    workers: usize,
    prefetch: usize,
) -> Result<Measurement, BenchError> {
    w1_redis_within(url, n, workers, prefetch, &mut |_| Ok(()))
}

/// [`w1_redis`], calling `window` at the edges of the timed part.
pub(crate) fn w1_redis_within(
    url: &str,
    n: u64,
    workers: usize,
    prefetch: usize,
    window: Window<'_>,
) -> Result<Measurement, BenchError> {
    run_timed("W1", url, n, workers, prefetch, window, false)
}

/// One timed run of W1 (`concurrent`: false, every add before the first
/// get) or W3 (`concurrent`: true): `workers` producers add `0..n`,
/// `workers` consumers take and end them all.
fn run_timed(
    workload: &'static str,
    url: &str,
    n: u64,
    workers: usize,
    prefetch: usize,
    window: Window<'_>,
    concurrent: bool,
) -> Result<Measurement, BenchError> {
    runtime()?.block_on(async {
        let queue = connect(workload, url, prefetch).await?;
        window(Edge::Start)?;
        let start = Instant::now();
        let producers: Vec<_> = shares(n, workers)
            .into_iter()
            .map(|range| tokio::spawn(produce(workload, queue.clone(), range)))
            .collect();
        let joined = async {
            for producer in producers {
                producer.await.map_err(|e| redis_failed(workload, e))??;
            }
            Ok::<(), BenchError>(())
        };
        if concurrent {
            consume(workload, &queue, n, workers).await?;
            joined.await?;
        } else {
            joined.await?;
            consume(workload, &queue, n, workers).await?;
        }
        let wall = start.elapsed();
        window(Edge::Stop)?;
        // W1 counts each add, get and done as an operation; W3 counts items.
        let ops = if concurrent { n } else { 3 * n };
        let name = requeue_redis_name(workers, prefetch > 0);
        Ok(Measurement::new(workload, name, ops, n, wall).with_memory())
    })
}

/// W3 on Redis: `workers` producers add `n` keys in total while `workers`
/// consumers get + done them. items/s = N / wall. `prefetch` as for
/// [`w1_redis`].
pub fn w3_redis(
    url: &str,
    n: u64,
    workers: usize,
    prefetch: usize,
) -> Result<Measurement, BenchError> {
    w3_redis_within(url, n, workers, prefetch, &mut |_| Ok(()))
}

/// [`w3_redis`], calling `window` at the edges of the timed part.
pub(crate) fn w3_redis_within(
    url: &str,
    n: u64,
    workers: usize,
    prefetch: usize,
    window: Window<'_>,
) -> Result<Measurement, BenchError> {
    run_timed("W3", url, n, workers, prefetch, window, true)
}

/// The floor: `n` items through `LPUSH` then `RPOP` by `workers`
/// concurrent tasks on one multiplexed connection (no dedup, no leases).
pub fn floor_redis(
    workload: &'static str,
    url: &str,
    n: u64,
    workers: usize,
) -> Result<Measurement, BenchError> {
    runtime()?.block_on(async {
        let client = redis::Client::open(url).map_err(|e| redis_failed(workload, e))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_failed(workload, e))?;
        let list = unique("floor");
        let start = Instant::now();
        let pushers: Vec<_> = shares(n, workers)
            .into_iter()
            .map(|range| {
                let (mut conn, list) = (conn.clone(), list.clone());
                tokio::spawn(async move {
                    for i in range {
                        let _: u64 = conn.lpush(&list, format!("key-{i}")).await?;
                    }
                    Ok::<_, redis::RedisError>(())
                })
            })
            .collect();
        for pusher in pushers {
            pusher
                .await
                .map_err(|e| redis_failed(workload, e))?
                .map_err(|e| redis_failed(workload, e))?;
        }
        let popped = Arc::new(AtomicU64::new(0));
        let poppers: Vec<_> = (0..workers)
            .map(|_| {
                let (mut conn, list, popped) = (conn.clone(), list.clone(), popped.clone());
                tokio::spawn(async move {
                    loop {
                        let item: Option<String> = conn.rpop(&list, None).await?;
                        if item.is_none() {
                            return Ok::<_, redis::RedisError>(());
                        }
                        popped.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for popper in poppers {
            popper
                .await
                .map_err(|e| redis_failed(workload, e))?
                .map_err(|e| redis_failed(workload, e))?;
        }
        let wall = start.elapsed();
        let got = popped.load(Ordering::SeqCst);
        if got != n {
            return Err(BenchError::Lost {
                workload,
                expected: n,
                got,
            });
        }
        Ok(Measurement::new(workload, redis_engine_name(workers, true), n, n, wall).with_memory())
    })
}

/// The set of items seen, shared by the consumers.
mod seen {
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[derive(Default)]
    pub(super) struct SeenSet(Mutex<HashSet<String>>);

    impl SeenSet {
        /// `false` if `item` was seen before.
        pub(super) fn insert(&self, item: String) -> bool {
            match self.0.lock() {
                Ok(mut set) => set.insert(item),
                Err(poisoned) => poisoned.into_inner().insert(item),
            }
        }
    }
}

/// How long an add takes to reach a getter that waits on an idle queue
/// (see `idle.rs`): the getter blocks on the queue's wake-up marker.
pub fn idle_handout_redis(url: &str, samples: u64) -> Result<Measurement, BenchError> {
    use crate::idle::{WORKLOAD, idle_handout};
    runtime()?.block_on(async {
        let name = unique("bench-idle");
        let build = || async {
            RedisQueue::<String>::builder(url, name.clone())
                .build()
                .await
                .map_err(|e| redis_failed(WORKLOAD, e))
        };
        let (adder, getter) = (build().await?, build().await?);
        idle_handout(&adder, &getter, samples, "requeue-redis idle", |w, e| {
            redis_failed(w, e)
        })
        .await
    })
}
