//! What a workload run measured, and how it can fail.

use crate::LatencySummary;
use std::time::Duration;

/// The result of one workload run on one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The workload's id, `"W1"` to `"W8"`.
    pub workload: &'static str,
    /// What carried the traffic: an [`Engine`](crate::Engine)'s name
    /// (`"requeue"`, `"requeue-tasks"`, `"requeue+metrics"`,
    /// `"crossbeam-channel"`), or for wqbench's figures
    /// [`CLIENT_GO`](crate::CLIENT_GO) or [`GO_CHANNEL`](crate::GO_CHANNEL).
    pub engine: &'static str,
    /// The operations the rate counts, as docs/benchmarks.md §2 defines them
    /// (W1: 3N; W3/W4: N items; W5: items processed; W6: adds; W8: keys).
    pub ops: u64,
    /// Distinct items moved through the engine (compares an engine with the floor).
    pub items: u64,
    /// Wall time of the timed part.
    pub wall: Duration,
    /// CPU time of the whole process (every live thread) during the timed
    /// part, where `/proc` tells it.
    pub cpu: Option<Duration>,
    /// W6: how late delayed items were handed out.
    pub latency: Option<LatencySummary>,
    /// Resident set size at the workload's measuring point (W7: while N
    /// keys are tracked; others: at the end of the timed part).
    pub rss_bytes: Option<u64>,
    /// Peak resident set size of the process so far (VmHWM): per workload
    /// only when each workload runs in its own process.
    pub peak_rss_bytes: Option<u64>,
}

impl Measurement {
    /// A measurement with no CPU, latency or memory figures yet.
    pub fn new(
        workload: &'static str,
        engine: &'static str,
        ops: u64,
        items: u64,
        wall: Duration,
    ) -> Self {
        Measurement {
            workload,
            engine,
            ops,
            items,
            wall,
            cpu: None,
            latency: None,
            rss_bytes: None,
            peak_rss_bytes: None,
        }
    }

    /// `ops / wall`.
    pub fn ops_per_sec(&self) -> f64 {
        per_sec(self.ops, self.wall)
    }

    /// `items / wall`.
    pub fn items_per_sec(&self) -> f64 {
        per_sec(self.items, self.wall)
    }

    /// This engine's item rate relative to `floor`'s (requeue / floor).
    pub fn ratio_to(&self, floor: &Measurement) -> f64 {
        self.items_per_sec() / floor.items_per_sec()
    }

    /// Fills in the process's current and peak RSS (if not set yet).
    pub(crate) fn with_memory(mut self) -> Self {
        if self.rss_bytes.is_none() {
            self.rss_bytes = crate::current_rss_bytes();
        }
        self.peak_rss_bytes = crate::peak_rss_bytes();
        self
    }

    /// One line of whitespace-separated fields, read back by [`Measurement::decode`]
    /// (how a parent process collects a child's result).
    pub fn encode(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let lat = self.latency;
        format!(
            "{} {} {} {} {} {} {} {} {} {} {}",
            self.workload,
            self.engine,
            self.ops,
            self.items,
            nanos(self.wall),
            opt(self.cpu.map(nanos)),
            opt(lat.map(|l| nanos(l.p50))),
            opt(lat.map(|l| nanos(l.p99))),
            opt(lat.map(|l| nanos(l.max))),
            opt(self.rss_bytes),
            opt(self.peak_rss_bytes),
        )
    }

    /// Reads a line made by [`Measurement::encode`]; `None` if it is not one.
    pub fn decode(line: &str) -> Option<Measurement> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            workload,
            engine,
            ops,
            items,
            wall,
            cpu,
            p50,
            p99,
            max,
            rss,
            peak,
        ] = f[..]
        else {
            return None;
        };
        let workload = crate::Workload::parse(workload)?.id();
        let engine = crate::Engine::parse(engine)?.name();
        let opt = |s: &str| -> Option<Option<u64>> {
            match s {
                "-" => Some(None),
                s => s.parse().ok().map(Some),
            }
        };
        let dur = |s: &str| opt(s).map(|v| v.map(Duration::from_nanos));
        let latency = match (dur(p50)?, dur(p99)?, dur(max)?) {
            (Some(p50), Some(p99), Some(max)) => Some(LatencySummary { p50, p99, max }),
            _ => None,
        };
        Some(Measurement {
            workload,
            engine,
            ops: ops.parse().ok()?,
            items: items.parse().ok()?,
            wall: Duration::from_nanos(wall.parse().ok()?),
            cpu: dur(cpu)?,
            latency,
            rss_bytes: opt(rss)?,
            peak_rss_bytes: opt(peak)?,
        })
    }
}

fn per_sec(count: u64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        f64::INFINITY
    }
}

/// A workload found the engine breaking one of its invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    /// The workload did not finish within [`WATCHDOG`](crate::WATCHDOG).
    #[error("{workload} hung: {detail}")]
    Hang {
        /// The workload's id.
        workload: &'static str,
        /// What was seen when the watchdog fired.
        detail: String,
    },
    /// Fewer items came out than went in.
    #[error("{workload} lost items: expected {expected}, got {got}")]
    Lost {
        /// The workload's id.
        workload: &'static str,
        /// Items that should have come out.
        expected: u64,
        /// Items that came out.
        got: u64,
    },
    /// An item came out more often than it should have, or was held by two
    /// consumers at once.
    #[error("{workload} handed out {key} twice: {detail}")]
    Duplicate {
        /// The workload's id.
        workload: &'static str,
        /// The offending key.
        key: String,
        /// How it was seen.
        detail: String,
    },
    /// The engine under test failed (Redis unreachable, a script error, …).
    #[error("{workload}: the engine failed: {detail}")]
    Engine {
        /// The workload's id.
        workload: &'static str,
        /// The error and its causes, each once.
        detail: String,
    },
    /// Any other broken invariant.
    #[error("{workload} broke an invariant: {detail}")]
    Invariant {
        /// The workload's id.
        workload: &'static str,
        /// What was expected and what was seen.
        detail: String,
    },
    /// A workload thread panicked or could not be started.
    #[error("{workload} thread failed: {detail}")]
    Thread {
        /// The workload's id.
        workload: &'static str,
        /// The panic message or spawn error.
        detail: String,
    },
}

/// Checks that `got == expected` items came out.
pub(crate) fn expect_count(
    workload: &'static str,
    expected: u64,
    got: u64,
) -> Result<(), BenchError> {
    match got.cmp(&expected) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(BenchError::Lost {
            workload,
            expected,
            got,
        }),
        std::cmp::Ordering::Greater => Err(BenchError::Duplicate {
            workload,
            key: "(some key)".into(),
            detail: format!("{got} items came out of {expected} distinct keys"),
        }),
    }
}
