//! The benchmark workloads of requeue's work queue, in one place.
//!
//! Eight workloads (W1–W8, defined in `docs/benchmarks.md` in the
//! repository) are run the same way on every implementation, so that
//! figures compare side by side with the real client-go work queue. This
//! crate is their only
//! implementation: the criterion benches (`benches/workloads.rs`), the
//! `report` example and the `requeue bench` command all call the functions
//! below.
//!
//! | id | function | what is timed |
//! |----|----------|---------------|
//! | W1 | [`w1_fifo_single`] | one thread: add N distinct keys, then N × (get, done); ops = 3N |
//! | W2 | [`w2_dedup`] | one thread: 1,000 keys added 1,000 times, then drained; exactly 1,000 gets |
//! | W3 | [`w3_mpmc`], [`w3_mpmc_tasks`] | 2 producers add N keys, 2 consumers get+done them; items/s |
//! | W4 | [`w4_mpmc_oversub`], [`w4_mpmc_oversub_tasks`] | W3 with 8 producers and 8 consumers |
//! | W5 | [`w5_hot_requeue`], [`w5_hot_requeue_tasks`] | 1 producer re-adds 1,000 keys for 2 s; 2 consumers spin 10 µs per item |
//! | W6 | [`w6_delayed`] | `add_after` N keys with 0–1000 ms delays; adds/s and lateness |
//! | W7 | [`w7_limiter_when`] | item-exponential limiter: when, when, forget on N keys; ops = 3N |
//! | W8 | [`w8_ratelimited_queue`] | 10,000 keys, each retried 3 times with backoff then forgotten |
//!
//! W1, W3 and W4 also run through an unbounded `crossbeam-channel`
//! ([`floor_w1`], [`floor_w3`], [`floor_w4`]), the floor that requeue is
//! compared with, and W1 and W3 with a cheap atomic metrics provider
//! attached ([`w1_fifo_single_metered`], [`w3_mpmc_metered`],
//! [`CounterMetrics`]) to measure what metrics cost.
//!
//! W3, W4 and W5 also run as tokio tasks on a multi-thread runtime with
//! [`TASK_WORKERS`] = 2 worker threads, the counterpart of client-go's
//! goroutines on GOMAXPROCS=2 ([`w3_mpmc_tasks`], [`w4_mpmc_oversub_tasks`],
//! [`w5_hot_requeue_tasks`]): consumers take items with
//! `WorkQueue::get_async`, producers make plain `add` calls and yield to
//! the scheduler after every [`TASK_BATCH`] adds, since a task, unlike a
//! goroutine, is never preempted.
//!
//! [`ClientGo`] runs the real client-go work queue on the same workloads
//! (a `wqbench` binary built from the client-go reference harness) and
//! reads its figures into [`Measurement`]s, so that `requeue bench
//! --client-go PATH` can compare both in one run, on each workload's
//! [`Figure`]s.
//!
//! Every workload checks its invariants and returns a [`BenchError`] when
//! the queue breaks one (a lost item, an item handed out twice, a hang).
//!
//! ```
//! use requeue_bench::{Case, Scale};
//!
//! let m = requeue_bench::w1_fifo_single(1_000).expect("no invariant broken");
//! assert_eq!(m.ops, 3_000);
//! // The same, by name, as the CLI and the report run it:
//! let case = Case::parse("W1/floor").expect("a known case");
//! let floor = case.run(&Scale::quick()).expect("no invariant broken");
//! assert_eq!(floor.engine, "crossbeam-channel");
//! ```
#![deny(missing_docs)]

mod catalog;
mod clientgo;
mod crew;
mod delayed;
mod figure;
mod hot;
#[cfg(feature = "redis")]
mod idle;
mod latency;
mod measure;
mod metrics;
mod mpmc;
#[cfg(feature = "redis")]
pub mod peers;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
pub mod report;
mod retry;
mod single;
mod sys;
mod tasks;
#[cfg(test)]
mod workload_tests;

pub use catalog::{Case, Engine, Target, Workload};
pub use clientgo::{
    CLIENT_GO, ClientGo, ClientGoError, GO_CHANNEL, GoCase, WQBENCH_N, parse_wqbench,
};
pub use delayed::{w6_delayed, w6_delays_ms};
pub use figure::Figure;
pub use hot::{HOT_KEYS, HOT_SPIN, w5_hot_requeue, w5_hot_requeue_tasks};
pub use latency::{LatencyHistogram, LatencySummary};
pub use measure::{BenchError, Measurement};
pub use metrics::{CounterMetrics, QueueCounters};
pub use mpmc::{
    floor_w3, floor_w4, w3_mpmc, w3_mpmc_metered, w3_mpmc_tasks, w4_mpmc_oversub,
    w4_mpmc_oversub_tasks,
};
#[cfg(feature = "postgres")]
pub use postgres::{
    POSTGRES_WORKERS, PgRun, ServerCounts, idle_handout_postgres, postgres_engine_name,
    w1_postgres, w3_postgres,
};
#[cfg(feature = "redis")]
pub use redis::{
    REDIS_WORKERS, floor_redis, idle_handout_redis, redis_engine_name, requeue_redis_name,
    w1_redis, w3_redis,
};
pub use retry::{W8_ATTEMPTS, w8_ratelimited_queue};
pub use single::{floor_w1, w1_fifo_single, w1_fifo_single_metered, w2_dedup, w7_limiter_when};
pub use sys::{cpu_time, current_rss_bytes, idle_fraction, peak_rss_bytes};
pub use tasks::{TASK_BATCH, TASK_WORKERS};

use std::time::Duration;

/// The default item count of W1, W3, W4, W6 and W7.
pub const DEFAULT_N: usize = 1_000_000;

/// How long a blocked workload may run before it is declared hung: the
/// queue is then shut down and the workload fails with [`BenchError::Hang`].
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// The key of item `i`, shaped like a Kubernetes object key: `ns-{i % 100}/obj-{i}`.
pub fn key(i: usize) -> String {
    format!("ns-{}/obj-{i}", i % 100)
}

/// Keys `0..n` ([`key`]), built before a workload starts its clock.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(key).collect()
}

/// The index `i` of a key made by [`key`] (the number after `obj-`).
pub fn key_index(key: &str) -> Option<usize> {
    let (_, index) = key.rsplit_once("/obj-")?;
    index.parse().ok()
}

/// The splitmix64 generator of W6's delays (docs/benchmarks.md §2.5).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed` (W6 uses [`W6_SEED`]).
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next value (all arithmetic wrapping).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The seed of W6's delays.
pub const W6_SEED: u64 = 0x5EED;

/// The sizes the workloads run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// N: items of W1, W3, W4, W6 and W7.
    pub n: usize,
    /// W2: distinct keys.
    pub dedup_keys: usize,
    /// W2: rounds of adding every key.
    pub dedup_rounds: usize,
    /// W5: how long the producer re-adds keys.
    pub hot_duration: Duration,
    /// W8: keys added up front.
    pub retry_keys: usize,
}

impl Scale {
    /// The full sizes (docs/benchmarks.md §1): N = 1,000,000, W2 1,000 ×
    /// 1,000, W5 2 s, W8 10,000 keys.
    pub const FULL: Scale = Scale {
        n: DEFAULT_N,
        dedup_keys: 1_000,
        dedup_rounds: 1_000,
        hot_duration: Duration::from_secs(2),
        retry_keys: 10_000,
    };

    /// Small sizes for tests and CI smoke runs (each workload well under a second).
    pub const fn quick() -> Scale {
        Scale {
            n: 20_000,
            dedup_keys: 1_000,
            dedup_rounds: 20,
            hot_duration: Duration::from_millis(100),
            retry_keys: 500,
        }
    }

    /// [`Scale::FULL`] with N read from the `REQUEUE_BENCH_N` environment
    /// variable when it holds a number (W2, W5 and W8 keep their sizes).
    pub fn from_env() -> Scale {
        let n = std::env::var("REQUEUE_BENCH_N")
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse().ok())
            .filter(|&n: &usize| n > 0);
        Scale {
            n: n.unwrap_or(DEFAULT_N),
            ..Scale::FULL
        }
    }
}

impl Default for Scale {
    fn default() -> Self {
        Scale::FULL
    }
}
