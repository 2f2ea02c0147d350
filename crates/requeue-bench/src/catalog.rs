//! The workloads by name: their one-line definitions, client-go's reference
//! figures, requeue's targets, the figures compared with client-go, and the
//! runnable cases (workload × engine).

use crate::{BenchError, Figure, Measurement, Scale};
use std::time::Duration;

/// One of the benchmark workloads (docs/benchmarks.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// fifo-single.
    W1,
    /// dedup.
    W2,
    /// mpmc.
    W3,
    /// mpmc-oversub.
    W4,
    /// hot-requeue.
    W5,
    /// delayed.
    W6,
    /// limiter-when.
    W7,
    /// ratelimited-queue.
    W8,
}

/// What requeue must reach on a workload (this machine, release build, metrics off).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Target {
    /// Minimum [`Measurement::ops_per_sec`].
    pub min_ops_per_sec: Option<f64>,
    /// Maximum RSS in MiB ([`Measurement::rss_bytes`] for W7, else the peak).
    pub max_rss_mib: Option<u64>,
    /// Maximum lateness p99 (W6).
    pub max_p99: Option<Duration>,
    /// Maximum CPU time (W8).
    pub max_cpu: Option<Duration>,
}

impl Target {
    /// Whether `m` meets every part of the target that it has a figure for
    /// (`None` if it has none of them).
    pub fn met_by(&self, m: &Measurement) -> Option<bool> {
        let rss = if m.workload == "W7" {
            m.rss_bytes
        } else {
            m.peak_rss_bytes
        };
        let checks = [
            self.min_ops_per_sec.map(|min| m.ops_per_sec() >= min),
            self.max_rss_mib
                .zip(rss)
                .map(|(max, rss)| rss <= max * 1024 * 1024),
            self.max_p99.zip(m.latency).map(|(max, l)| l.p99 <= max),
            self.max_cpu.zip(m.cpu).map(|(max, cpu)| cpu <= max),
        ];
        checks.into_iter().flatten().reduce(|a, b| a && b)
    }
}

const fn rate(min: f64) -> Option<f64> {
    Some(min)
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 8] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W7,
        Workload::W8,
    ];

    /// `"W1"` … `"W8"`.
    pub const fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
            Workload::W8 => "W8",
        }
    }

    /// The id (`W3`, case-insensitive) or the name (`mpmc`) of a workload.
    pub fn parse(s: &str) -> Option<Workload> {
        Self::ALL
            .into_iter()
            .find(|w| w.id().eq_ignore_ascii_case(s) || w.name() == s)
    }

    /// The workload's short name (docs/benchmarks.md §2).
    pub const fn name(self) -> &'static str {
        match self {
            Workload::W1 => "fifo-single",
            Workload::W2 => "dedup",
            Workload::W3 => "mpmc",
            Workload::W4 => "mpmc-oversub",
            Workload::W5 => "hot-requeue",
            Workload::W6 => "delayed",
            Workload::W7 => "limiter-when",
            Workload::W8 => "ratelimited-queue",
        }
    }

    /// What is timed, in one line.
    pub const fn definition(self) -> &'static str {
        match self {
            Workload::W1 => "one thread: add N distinct keys, then N x (get, done); ops = 3N",
            Workload::W2 => {
                "one thread: 1,000 keys added in each of 1,000 rounds, then drained with get+done \
                 (exactly 1,000 gets); ops = adds + gets + dones"
            }
            Workload::W3 => {
                "2 producers add N distinct keys (N/2 contiguous each); 2 consumers get+done until N seen; items/s"
            }
            Workload::W4 => "W3 with 8 producers and 8 consumers; items/s",
            Workload::W5 => {
                "1 producer re-adds keys 0..999 round-robin for 2 s; 2 consumers get, mark, spin 10 us, \
                 unmark, done; processed/s (limit 200k/s)"
            }
            Workload::W6 => {
                "1 producer add_after N keys, delays splitmix64(0x5EED) % 1001 ms; 2 consumers record \
                 lateness = get time - due; adds/s, lateness p50/p99/max"
            }
            Workload::W7 => {
                "item-exponential(5 ms, 1000 s): when() on N keys, when() again, forget all; ops = 3N"
            }
            Workload::W8 => {
                "item-exponential(1 ms, 10 ms), 10,000 keys up front; 2 consumers: attempts 1-3 \
                 add_rate_limited + done, attempt 4 forget + done; wall and CPU"
            }
        }
    }

    /// What the rate counts (the unit of [`Measurement::ops_per_sec`]).
    pub const fn unit(self) -> &'static str {
        match self {
            Workload::W1 | Workload::W2 | Workload::W7 => "ops/s",
            Workload::W3 | Workload::W4 => "items/s",
            Workload::W5 => "processed/s",
            Workload::W6 => "adds/s",
            Workload::W8 => "keys/s",
        }
    }

    /// The real client-go work queue's median on this machine (v0.30.14,
    /// Go 1.19), as stored when the targets were set (docs/benchmarks.md §6):
    /// a reference figure, not one
    /// measured here (`requeue bench --client-go PATH` measures it).
    pub const fn client_go(self) -> &'static str {
        match self {
            Workload::W1 => "3.58 M ops/s, peak RSS 203 MiB (Go channel floor 24.9 M items/s)",
            Workload::W2 => "37.7 M ops/s",
            Workload::W3 => "1.55 M items/s, RSS 145 MiB (Go channel floor 12.2 M items/s)",
            Workload::W4 => "1.48 M items/s (Go channel floor 12.4 M items/s)",
            Workload::W5 => "176 k processed/s (88 % of the limit)",
            Workload::W6 => "444 k adds/s; lateness p50 95-307 ms, p99 290-470 ms; RSS 219 MiB",
            Workload::W7 => "3.07 M ops/s; RSS 177 MiB",
            Workload::W8 => "0.042 s wall, 0.051 s CPU",
        }
    }

    /// The figures compared with client-go when `requeue bench --client-go`
    /// measures it in the same run (each workload's headline figure first).
    pub const fn compared_figures(self) -> &'static [Figure] {
        match self {
            Workload::W1 | Workload::W7 => &[Figure::Rate, Figure::PeakRss],
            Workload::W2 | Workload::W4 | Workload::W5 => &[Figure::Rate],
            Workload::W3 => &[Figure::Rate, Figure::PeakRss],
            Workload::W6 => &[
                Figure::Rate,
                Figure::LatencyP50,
                Figure::LatencyP99,
                Figure::PeakRss,
            ],
            Workload::W8 => &[Figure::Cpu, Figure::Wall],
        }
    }

    /// requeue's target, in words (docs/benchmarks.md §6).
    pub const fn target_text(self) -> &'static str {
        match self {
            Workload::W1 => ">= 18 M ops/s (5x client-go), peak RSS <= 110 MiB",
            Workload::W2 => ">= 75 M ops/s",
            Workload::W3 => ">= 5 M items/s",
            Workload::W4 => ">= 4 M items/s",
            Workload::W5 => ">= 190 k processed/s (95 % of the limit)",
            Workload::W6 => ">= 2 M adds/s; lateness p99 <= 2 ms; RSS <= 120 MiB",
            Workload::W7 => ">= 10 M ops/s; RSS <= 90 MiB",
            Workload::W8 => "CPU <= 0.02 s",
        }
    }

    /// requeue's target, checkable against a [`Measurement`].
    pub const fn target(self) -> Target {
        let none = Target {
            min_ops_per_sec: None,
            max_rss_mib: None,
            max_p99: None,
            max_cpu: None,
        };
        match self {
            Workload::W1 => Target {
                min_ops_per_sec: rate(18e6),
                max_rss_mib: Some(110),
                ..none
            },
            Workload::W2 => Target {
                min_ops_per_sec: rate(75e6),
                ..none
            },
            Workload::W3 => Target {
                min_ops_per_sec: rate(5e6),
                ..none
            },
            Workload::W4 => Target {
                min_ops_per_sec: rate(4e6),
                ..none
            },
            Workload::W5 => Target {
                min_ops_per_sec: rate(190e3),
                ..none
            },
            Workload::W6 => Target {
                min_ops_per_sec: rate(2e6),
                max_rss_mib: Some(120),
                max_p99: Some(Duration::from_millis(2)),
                ..none
            },
            Workload::W7 => Target {
                min_ops_per_sec: rate(10e6),
                max_rss_mib: Some(90),
                ..none
            },
            Workload::W8 => Target {
                max_cpu: Some(Duration::from_millis(20)),
                ..none
            },
        }
    }

    /// Whether this workload also runs through the channel floor
    /// (docs/benchmarks.md §3.3).
    pub const fn has_floor(self) -> bool {
        matches!(self, Workload::W1 | Workload::W3 | Workload::W4)
    }

    /// Whether the workload also runs as tokio tasks ([`Engine::RequeueTasks`]).
    pub const fn has_tasks(self) -> bool {
        matches!(self, Workload::W3 | Workload::W4 | Workload::W5)
    }
}

/// What carries a workload's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    /// requeue's `WorkQueue`, metrics off, producers and consumers on threads.
    Requeue,
    /// requeue's `WorkQueue`, metrics off, producers and consumers as tokio
    /// tasks on a multi-thread runtime with 2 worker threads (W3, W4, W5).
    RequeueTasks,
    /// requeue's `WorkQueue` with [`CounterMetrics`](crate::CounterMetrics) attached.
    RequeueMetrics,
    /// An unbounded `crossbeam-channel`: the floor, with no dedup.
    Channel,
}

impl Engine {
    /// The name in [`Measurement::engine`].
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Requeue => "requeue",
            Engine::RequeueTasks => "requeue-tasks",
            Engine::RequeueMetrics => "requeue+metrics",
            Engine::Channel => "crossbeam-channel",
        }
    }

    /// An engine by [`name`](Engine::name), or by its short form in a [`Case`] id.
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "requeue" => Some(Engine::Requeue),
            "requeue-tasks" | "tasks" => Some(Engine::RequeueTasks),
            "requeue+metrics" | "metrics" => Some(Engine::RequeueMetrics),
            "crossbeam-channel" | "floor" => Some(Engine::Channel),
            _ => None,
        }
    }
}

/// A runnable pair of a workload and an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Case {
    /// The workload.
    pub workload: Workload,
    /// The engine.
    pub engine: Engine,
}

impl Case {
    /// Every case, in report order: each workload on requeue, then its
    /// floor, task and metered variants where they exist.
    pub fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for workload in Workload::ALL {
            for engine in [
                Engine::Requeue,
                Engine::Channel,
                Engine::RequeueTasks,
                Engine::RequeueMetrics,
            ] {
                let case = Case { workload, engine };
                if case.exists() {
                    cases.push(case);
                }
            }
        }
        cases
    }

    fn exists(self) -> bool {
        match self.engine {
            Engine::Requeue => true,
            Engine::Channel => self.workload.has_floor(),
            Engine::RequeueTasks => self.workload.has_tasks(),
            Engine::RequeueMetrics => matches!(self.workload, Workload::W1 | Workload::W3),
        }
    }

    /// `"W3"`, `"W3/floor"`, `"W3/tasks"` or `"W3/metrics"`.
    pub fn id(self) -> String {
        match self.engine {
            Engine::Requeue => self.workload.id().to_string(),
            Engine::RequeueTasks => format!("{}/tasks", self.workload.id()),
            Engine::Channel => format!("{}/floor", self.workload.id()),
            Engine::RequeueMetrics => format!("{}/metrics", self.workload.id()),
        }
    }

    /// A case by [`id`](Case::id); `None` for unknown or unsupported pairs.
    pub fn parse(s: &str) -> Option<Case> {
        let (workload, engine) = match s.split_once('/') {
            Some((w, e)) => (Workload::parse(w)?, Engine::parse(e)?),
            None => (Workload::parse(s)?, Engine::Requeue),
        };
        let case = Case { workload, engine };
        case.exists().then_some(case)
    }

    /// Runs the case once at `scale` (W3 with 2 producers and 2 consumers).
    pub fn run(self, scale: &Scale) -> Result<Measurement, BenchError> {
        use Engine::*;
        use Workload::*;
        let n = scale.n;
        match (self.workload, self.engine) {
            // W1 has no task flavour: a single thread has nothing to schedule.
            (W1, Requeue | RequeueTasks) => crate::w1_fifo_single(n),
            (W1, RequeueMetrics) => crate::w1_fifo_single_metered(n),
            (W1, Channel) => crate::floor_w1(n),
            (W2, _) => crate::w2_dedup(scale.dedup_keys, scale.dedup_rounds),
            (W3, Requeue) => crate::w3_mpmc(n, 2, 2),
            (W3, RequeueTasks) => crate::w3_mpmc_tasks(n, 2, 2),
            (W3, RequeueMetrics) => crate::w3_mpmc_metered(n),
            (W3, Channel) => crate::floor_w3(n),
            (W4, Channel) => crate::floor_w4(n),
            (W4, RequeueTasks) => crate::w4_mpmc_oversub_tasks(n),
            (W4, _) => crate::w4_mpmc_oversub(n),
            (W5, RequeueTasks) => crate::w5_hot_requeue_tasks(scale.hot_duration),
            (W5, _) => crate::w5_hot_requeue(scale.hot_duration),
            (W6, _) => crate::w6_delayed(n),
            (W7, _) => crate::w7_limiter_when(n),
            (W8, _) => crate::w8_ratelimited_queue(scale.retry_keys),
        }
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}
