//! Peers: other Redis job queues run on the same workloads as
//! `requeue-redis`, against the same server, for `requeue bench --engine
//! redis --peers`. The one Redis peer so far is [BullMQ](BullMq), driven by
//! `peers/bullmq/bench.js` (Node.js) in this crate's directory. The
//! PostgreSQL peers (graphile-worker, pg-boss) are in `pg`, with the
//! `postgres` feature.
//!
//! Three figures per run and system:
//!
//! - items/s, over the timed part (the same clock for both: first add to
//!   the N-th completion stored in Redis);
//! - Redis commands executed per item: the `INFO commandstats` delta over
//!   the timed part ([`CommandCounts`]) divided by the items. Redis counts
//!   the commands a Lua script runs there too, so this is the work Redis
//!   did per item, whichever way it was asked for;
//! - client round trips per item, counted in a separate, smaller, untimed
//!   run with a [`Monitor`] attached: the commands the system's own
//!   connections sent (not those run inside scripts) per item. A pipelined
//!   command counts as one, so this is an upper bound on round trips.
//!
//! Each run frames its timed part on a side connection of its own: `ECHO
//! requeue-peers:TAG:start`, `INFO commandstats`, the timed part, `INFO
//! commandstats`, `ECHO requeue-peers:TAG:stop`. The INFO the delta
//! includes (the first one) is taken off, and the [`Monitor`] counts only
//! what comes between the markers from other connections than the side one.

mod bullmq;
mod commandstats;
mod monitor;
#[cfg(feature = "postgres")]
pub mod pg;

pub use bullmq::{BullMq, MIN_NODE_MAJOR};
pub use commandstats::CommandCounts;
pub use monitor::{Monitor, MonitorCounts};

use crate::redis::{Edge, w1_redis_within, w3_redis_within};
use crate::{BenchError, Measurement};
use std::path::PathBuf;
use std::time::Duration;

/// Why a peers measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Node.js, which runs BullMQ, is missing or does not answer.
    #[error("Node.js is needed to run BullMQ: {detail}")]
    NodeMissing {
        /// What was tried.
        detail: String,
    },
    /// Node.js is older than [`MIN_NODE_MAJOR`].
    #[error(
        "Node.js {version} is too old to run BullMQ's pinned packages (need v{MIN_NODE_MAJOR} or later)"
    )]
    NodeTooOld {
        /// `node --version`.
        version: String,
    },
    /// The driver directory lacks `bench.js` or `package-lock.json`.
    #[error(
        "no BullMQ driver in {} (bench.js and package-lock.json; set REQUEUE_BULLMQ_DIR to \
         requeue-bench's peers/bullmq directory)",
        dir.display()
    )]
    DriverMissing {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// Installing BullMQ's packages failed.
    #[error("cannot install BullMQ's packages in {}: {detail}", dir.display())]
    InstallFailed {
        /// The driver directory (or the file that could not be read).
        dir: PathBuf,
        /// npm's last lines, or what else failed.
        detail: String,
    },
    /// A run of BullMQ's driver failed, or BullMQ broke an invariant.
    #[error("BullMQ {workload} x{workers} failed: {detail}")]
    DriverFailed {
        /// The workload's id.
        workload: &'static str,
        /// Adders and Worker concurrency.
        workers: usize,
        /// The exit status and the driver's last lines.
        detail: String,
    },
    /// The bench's own connection (markers and `INFO`) failed.
    #[error("the bench's side connection to Redis failed: {detail}")]
    Side {
        /// The error and its causes, each once.
        detail: String,
    },
    /// Counting round trips with `MONITOR` failed.
    #[error("MONITOR failed: {detail}")]
    Monitor {
        /// The error and its causes, each once.
        detail: String,
    },
    /// A requeue-redis run failed or broke an invariant.
    #[error(transparent)]
    Bench(#[from] BenchError),
}

/// One timed run of a system: its measurement and what Redis executed
/// during the timed part.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRun {
    /// Items, wall time (and for BullMQ, the Node process's CPU and peak RSS).
    pub measurement: Measurement,
    /// The `INFO commandstats` delta of the timed part, the bench's own
    /// `INFO` taken off.
    pub commands: CommandCounts,
}

impl PeerRun {
    /// Redis commands executed per item.
    pub fn commands_per_item(&self) -> f64 {
        self.commands.per_item(self.measurement.items)
    }
}

/// The engine name of a BullMQ measurement with `workers` adders and
/// Worker concurrency.
pub fn bullmq_engine_name(workers: usize) -> &'static str {
    match workers {
        1 => "bullmq x1",
        8 => "bullmq x8",
        32 => "bullmq x32",
        _ => "bullmq",
    }
}

/// The operations of `n` items of `workload`: W1 counts add, get and done
/// (3N), W3 items.
fn ops(workload: &str, n: u64) -> u64 {
    if workload == "W1" { 3 * n } else { n }
}

/// A tag no other run of this process or another uses.
pub fn new_tag() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
}

/// One timed run of `workload` (`"W1"` or `"W3"`) on requeue-redis, the
/// same as [`w1_redis`](crate::w1_redis) and [`w3_redis`](crate::w3_redis),
/// framed by `tag`'s markers and `INFO commandstats` reads.
pub fn requeue_run(
    url: &str,
    workload: &'static str,
    n: u64,
    workers: usize,
    prefetch: usize,
    tag: &str,
) -> Result<PeerRun, PeerError> {
    let side_failed = |e: redis::RedisError| PeerError::Side {
        detail: requeue_redis::error::Chain(&e).to_string(),
    };
    let client = redis::Client::open(url).map_err(side_failed)?;
    let mut side = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(side_failed)?;
    let mut before = CommandCounts::default();
    let mut after = CommandCounts::default();
    let mut side_error = None;
    let mut window = |edge: Edge| {
        let result = match edge {
            Edge::Start => echo(&mut side, &monitor::marker(tag, "start"))
                .and_then(|()| info(&mut side))
                .map(|counts| before = counts),
            Edge::Stop => info(&mut side)
                .map(|counts| after = counts)
                .and_then(|()| echo(&mut side, &monitor::marker(tag, "stop"))),
        };
        result.map_err(|e| {
            let detail = requeue_redis::error::Chain(&e).to_string();
            side_error = Some(detail.clone());
            BenchError::Engine {
                workload,
                detail: format!("the bench's side connection failed: {detail}"),
            }
        })
    };
    let measured = match workload {
        "W1" => w1_redis_within(url, n, workers, prefetch, &mut window),
        _ => w3_redis_within(url, n, workers, prefetch, &mut window),
    };
    let measurement = match (measured, side_error) {
        (Ok(m), _) => m,
        (Err(_), Some(detail)) => return Err(PeerError::Side { detail }),
        (Err(e), None) => return Err(e.into()),
    };
    Ok(PeerRun {
        measurement,
        commands: after.since(&before).without_one("info"),
    })
}

fn echo(conn: &mut redis::Connection, text: &str) -> redis::RedisResult<()> {
    redis::cmd("ECHO").arg(text).query::<String>(conn).map(drop)
}

fn info(conn: &mut redis::Connection) -> redis::RedisResult<CommandCounts> {
    let text: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    Ok(CommandCounts::parse(&text))
}

/// Runs `run` with a [`Monitor`] on `url` attached, giving it a fresh tag;
/// returns its result and what the monitor counted between its markers.
pub fn monitored<T>(
    url: &str,
    run: impl FnOnce(&str) -> Result<T, PeerError>,
) -> Result<(T, MonitorCounts), PeerError> {
    let tag = new_tag();
    let monitor = Monitor::start(url, &tag)?;
    let value = run(&tag)?;
    let counts = monitor.finish(Duration::from_secs(60))?;
    Ok((value, counts))
}
