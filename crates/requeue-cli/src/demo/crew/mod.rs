//! Who runs the controller on a shared engine (Redis or PostgreSQL): this
//! process (`--workers-procs 1`), or N worker processes, which are this
//! program started again as the hidden `requeue demo-worker` and report
//! back on their stdout. Nothing here knows which engine it runs on but
//! [`Engine`], which picks how a worker process opens the queue.
//!
//! | file | job |
//! |---|---|
//! | `watched` | a queue with its errors heard (corruption must not pass as idleness) |
//! | `here` | the controller in this process |
//! | `procs` | the worker processes: start, read, stop |
//! | `worker` | the hidden `requeue demo-worker` a worker process runs |
//! | `wire`, `tally` | the line a worker reports, and writing it |
//! | `resync` | the periodic resync, run by the parent |

pub mod here;
pub mod procs;
pub mod resync;
mod tally;
pub mod watched;
mod wire;
pub mod worker;

use super::args::DemoArgs;
use super::events::Events;
use super::fleet::Fleet;
use super::health::{Health, Verdict};
use super::metrics::Served;
use super::panics::PanicLog;
use super::sample::{Sample, Workers};
use super::summary::{Check, Report};
use super::updates::{self, UpdateCounts};
use super::{Ended, ending};
use crate::show::RedisUrl;
use here::Here;
use procs::{Exit, Procs};
use requeue::controller::{ControllerMetrics, Counts, Summary};
use requeue::engine::AsyncQueue;
use requeue::wait::Stop;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How long worker processes may take to connect.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Steady updates per second per worker: a round trip per add and several
/// per reconcile make a worker far slower than in memory, and the stream
/// should stay below what the workers can do.
const STEADY_PER_WORKER: u64 = 250;

/// The engine the worker processes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// `requeue_redis::RedisQueue`.
    Redis,
    /// `requeue_postgres::PostgresQueue`.
    Postgres,
}

impl Engine {
    /// The server's name, as messages say it.
    pub fn server(self) -> &'static str {
        match self {
            Engine::Redis => "Redis",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// What every worker process is started with.
pub struct Spec<'a> {
    /// Where the queue lives.
    pub engine: Engine,
    /// The server's URL (passed in the environment: it may hold a password).
    pub url: &'a RedisUrl,
    /// The queue's name.
    pub queue: &'a str,
    /// The parent's flags (fleet, workers, seed, rates).
    pub args: &'a DemoArgs,
    /// The queue's lease: how long the keys of a worker that dies stay
    /// leased, as the report says.
    pub lease: Duration,
}

/// Who runs the controller, and the source of the workers' numbers.
pub enum Crew<Q: AsyncQueue<String>> {
    /// This process (`--workers-procs 1`), with its panic log.
    Here(Here<Q>, Arc<PanicLog>),
    /// Worker processes.
    Procs(Procs),
}

impl<Q: AsyncQueue<String> + Clone + Send + Sync + 'static> Crew<Q> {
    /// The controller here (`--workers-procs 1`) on `queue`, or N worker
    /// processes, connected and ready. Their Warning events go to
    /// `events`, the errors they report to `health`.
    pub fn start(
        spec: &Spec<'_>,
        queue: &Q,
        fleet: &Arc<Fleet>,
        events: &Events,
        metrics: Option<&Served>,
        health: &Arc<Health>,
        panics: &Arc<PanicLog>,
    ) -> anyhow::Result<Self> {
        if spec.args.workers_procs > 1 {
            let procs = Procs::spawn(spec, fleet, &events.recorder(), health)?;
            procs.wait_ready(READY_TIMEOUT)?;
            return Ok(Crew::Procs(procs));
        }
        let controller_metrics =
            metrics.map(|m| Arc::new(m.controller.clone()) as Arc<dyn ControllerMetrics>);
        let odds = super::reconcile::Odds {
            fail_rate: spec.args.fail_rate,
            panic_rate: spec.args.panic_rate,
            seed: spec.args.seed,
        };
        let here = Here::new(
            queue,
            fleet,
            odds,
            spec.args.workers,
            events.recorder(),
            controller_metrics,
        );
        Ok(Crew::Here(here, panics.clone()))
    }

    /// Runs the controller here until `stop` fires and it has drained; at
    /// once for worker processes (they run on their own).
    pub async fn run_here(&self, stop: &Stop) {
        if let Crew::Here(here, _) = self {
            here.run(stop).await;
        }
    }

    /// The worker processes, if the controller runs in them.
    pub fn procs(&self) -> Option<&Procs> {
        match self {
            Crew::Procs(procs) => Some(procs),
            Crew::Here(..) => None,
        }
    }

    /// "N processes × M workers" or "M workers", for the header.
    pub fn description(&self, args: &DemoArgs) -> String {
        match self {
            Crew::Procs(procs) => format!("{} processes × {} workers", procs.len(), args.workers),
            Crew::Here(..) => format!(
                "{} worker{}",
                args.workers,
                super::plural(args.workers as usize)
            ),
        }
    }

    /// Handler calls, counted by the reconcilers (here: by the fleet).
    pub fn attempted(&self, fleet: &Fleet) -> u64 {
        self.procs()
            .map_or_else(|| fleet.total_attempts(), Procs::attempted)
    }
}

impl<Q: AsyncQueue<String> + Sync> Workers for Crew<Q> {
    fn counts(&self) -> Counts {
        match self {
            Crew::Here(here, panics) => here.workers(panics).counts(),
            Crew::Procs(procs) => procs.counts(),
        }
    }

    fn requeued_after(&self) -> u64 {
        match self {
            Crew::Here(here, panics) => here.workers(panics).requeued_after(),
            Crew::Procs(procs) => procs.requeued_after(),
        }
    }

    fn last_panic(&self) -> Option<String> {
        match self {
            Crew::Here(here, panics) => here.workers(panics).last_panic(),
            Crew::Procs(procs) => procs.last_panic(),
        }
    }

    fn processes(&self) -> Vec<(u64, bool)> {
        match self {
            Crew::Here(..) => Vec::new(),
            Crew::Procs(procs) => procs.processes(),
        }
    }
}

/// What runs in the background of a run on a shared engine.
pub struct Background<'a, Q: AsyncQueue<String>> {
    pub queue: &'a Q,
    pub crew: &'a Crew<Q>,
    pub fleet: &'a Fleet,
    pub args: &'a DemoArgs,
    pub updates: &'a UpdateCounts,
    pub resyncs: &'a AtomicU64,
    pub stop: &'a Stop,
}

/// Runs the update stream, the resync, `poll` (the server's numbers) and
/// the controller if it runs here, on `runtime`, while `watch` shows the
/// view on this thread until the stop. After the stop the background
/// gets `grace` to finish. Returns whether it finished in time (the
/// workers here drained their keys) and what `watch` returned.
pub fn run_beside<Q, P, W>(
    runtime: &tokio::runtime::Runtime,
    parts: Background<'_, Q>,
    poll: P,
    grace: Duration,
    watch: W,
) -> anyhow::Result<(bool, Duration)>
where
    Q: AsyncQueue<String> + Clone + Send + Sync + 'static,
    P: Future<Output = ()> + Send,
    W: FnOnce() -> Duration,
{
    let Background {
        queue,
        crew,
        fleet,
        args,
        updates,
        resyncs,
        stop,
    } = parts;
    let rate = STEADY_PER_WORKER * u64::from(args.workers) * u64::from(args.workers_procs);
    std::thread::scope(|s| {
        let background = s.spawn(|| {
            runtime.block_on(async {
                let work = async {
                    tokio::join!(
                        updates::run_async(fleet, queue, rate, args.seed, updates, stop),
                        resync::run(queue, fleet, args.resync, resyncs, stop),
                        poll,
                        crew.run_here(stop),
                    )
                };
                let grace = async {
                    stop.stopped().await;
                    tokio::time::sleep(grace).await;
                };
                tokio::select! {
                    _ = work => true,
                    _ = grace => false,
                }
            })
        });
        let stopped_at = watch();
        background.join().map(|drained| (drained, stopped_at))
    })
    .map_err(|_| anyhow::anyhow!("the update stream or the controller panicked"))
}

/// The check that no key is left leased once every worker stopped, from
/// the count read at the end (`None`: the server did not answer). Keys
/// left leased are expected after a connection break (a get whose reply
/// was lost leased a key to no one) or a worker process that did not
/// drain (its keys return when their lease runs out), both told apart;
/// without either they are a bug, and a problem of the run.
pub fn leased_check(
    leased: Option<usize>,
    verdict: &Verdict,
    exits: &[Exit],
    engine: Engine,
    problems: &mut Vec<String>,
) -> Check {
    let label = "no key left leased at the end";
    let undrained = exits.iter().filter(|e| !e.clean()).count();
    match leased {
        Some(0) => Check::new(label, "0 leased", true),
        Some(n) if verdict.outages + verdict.cuts > 0 => Check::new(
            label,
            format!(
                "{n} leased to no one (replies lost with the connection; back after the lease)"
            ),
            true,
        ),
        Some(n) if undrained > 0 => Check::new(
            label,
            format!("{n} leased by the worker processes that did not drain"),
            true,
        ),
        Some(n) => {
            problems.push(format!("{n} keys left leased after every worker stopped"));
            Check::new(label, format!("{n} leased"), false)
        }
        None => {
            problems.push("the queue could not be read at the end".into());
            Check::new(
                label,
                format!("unknown: {} did not answer", engine.server()),
                false,
            )
        }
    }
}

/// The run's summary from the workers' counts and the last sample.
pub fn summary_of(counts: &Counts, sample: &Sample) -> Summary {
    Summary {
        succeeded: counts.succeeded,
        failed: counts.failed,
        panicked: counts.panicked,
        requeued: counts.requeued,
        requeues_refused: counts.requeues_refused,
        lease_lost: counts.lease_lost,
        left_queued: sample.queue.ready,
        // The shared engines keep delayed keys for the next worker: none
        // are withdrawn.
        withdrawn: 0,
    }
}

/// How a run on a shared engine ended, as the report tells it.
pub struct Outcome<'a> {
    /// The last sample, taken after every worker stopped.
    pub sample: &'a Sample,
    pub fleet: &'a Fleet,
    pub events: &'a Events,
    /// How each worker process ended (empty: the workers ran here).
    pub exits: &'a [Exit],
    /// What went wrong with the run itself (the exit code is 1 if any).
    pub problems: Vec<String>,
    /// The checks under "invariants".
    pub checks: &'a [Check],
    /// Said under the figures.
    pub notes: &'a [String],
    /// Never-reconciled keys still queued at the end.
    pub unreconciled_but_queued: usize,
    /// ctrl-c or SIGTERM stopped the run (rather than `--duration`).
    pub by_signal: bool,
    /// The run time when the stop fired.
    pub stopped_at: Duration,
}

/// Prints the report and decides how the run ended: a problem of the run
/// first; then a worker process that did not drain, counts that do not
/// add up or a key lost, each an error.
pub fn conclude<Q>(crew: &Crew<Q>, outcome: Outcome<'_>) -> anyhow::Result<Ended>
where
    Q: AsyncQueue<String> + Clone + Send + Sync + 'static,
{
    let summary = summary_of(&crew.counts(), outcome.sample);
    let lost: Vec<String> = outcome
        .exits
        .iter()
        .filter(|e| !e.clean())
        .map(Exit::describe)
        .collect();
    // Worker processes that did not drain are listed apart (exit code 1).
    let mut headline = outcome.problems.clone();
    if !lost.is_empty() {
        headline.push(format!(
            "{} of {} worker processes did not drain (see below)",
            lost.len(),
            outcome.exits.len()
        ));
    }
    let ending = ending(&headline);
    let report = Report {
        summary: &summary,
        sample: outcome.sample,
        attempted: crew.attempted(outcome.fleet),
        unreconciled_but_queued: outcome.unreconciled_but_queued,
        stopped_by: if outcome.by_signal {
            "ctrl-c/SIGTERM"
        } else {
            "--duration"
        },
        events: outcome.events,
        fleet: outcome.fleet,
        processes: crew.procs().map_or(0, Procs::len),
        problems: &lost,
        ending: &ending,
        checks: outcome.checks,
        notes: outcome.notes,
        stopped_at: outcome.stopped_at,
    };
    report.print();
    if !outcome.problems.is_empty() {
        return Ok(Ended::Unhealthy(outcome.problems));
    }
    // A worker that died first: its in-flight keys then upset the counts.
    anyhow::ensure!(report.no_worker_lost(), "a worker process failed");
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(Ended::Clean)
}

/// Per-key exponential backoff like the in-memory demo's (5 ms doubling
/// to a minute), without the default limiter's shared 10/s bucket, which
/// would push every retry minutes out at the demo's rate. The parent and
/// every worker process open the queue with it.
pub fn limiter() -> requeue::limiter::LimiterSpec {
    requeue::limiter::LimiterSpec {
        exponential: Some(requeue::limiter::Exponential {
            base_ms: 5,
            max_ms: 60_000,
        }),
        ..requeue::limiter::LimiterSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_per_key_only() {
        let spec = limiter();
        assert!(spec.bucket.is_none() && spec.fast_slow.is_none());
        assert_eq!(spec.exponential.map(|e| e.max_ms), Some(60_000));
    }

    #[test]
    fn a_worker_is_told_its_engine_as_clap_spells_it() {
        assert_eq!(procs::engine_flag(Engine::Redis), "redis");
        assert_eq!(procs::engine_flag(Engine::Postgres), "postgres");
    }
}
