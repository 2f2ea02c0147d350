//! `requeue demo-worker` (hidden): one worker process of
//! `requeue demo --redis URL|--postgres URL --workers-procs N`. It runs the
//! simulated controller over the shared queue with `Controller::run_async`
//! and reports on stdout (see [`wire`](super::wire)) until SIGTERM, ctrl-c
//! or the end of its stdin (the parent is gone) stops it; then its workers
//! finish the keys in hand and it prints its last line.

use super::super::fleet::Fleet;
use super::super::panics::{PanicLog, QuietPanics};
use super::super::reconcile::Odds;
use super::super::{postgres, redis};
use super::Engine;
use super::here::Here;
use super::tally::{Forwarder, Parts, Reporter};
use super::watched::Watched;
use clap::Args;
use requeue::controller::stop_on_signals;
use requeue::engine::AsyncQueue;
use requeue::wait::Stop;
use std::sync::Arc;
use std::time::Duration;

/// How often a worker reports.
const REPORT_EVERY: Duration = Duration::from_millis(200);
/// The variable the parent passes the server's URL in: the environment,
/// not the arguments, because `ps` shows arguments and the URL may hold a
/// password.
pub const URL_ENV: &str = "REQUEUE_DEMO_URL";

/// Flags of `requeue demo-worker`, set by the parent `requeue demo`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Where the queue lives.
    #[arg(long, value_enum)]
    pub engine: Engine,
    /// The server's URL (the parent passes it as `REQUEUE_DEMO_URL`).
    #[arg(long, env = URL_ENV, hide_env_values = true)]
    pub url: crate::show::RedisUrl,
    /// The queue name.
    #[arg(long)]
    pub queue: String,
    /// Objects in the fleet (the same fleet as the parent's: same seed).
    #[arg(long)]
    pub objects: u32,
    /// Controller workers (tokio tasks).
    #[arg(long)]
    pub workers: u32,
    /// The parent's `--seed` (the fleet and the draws).
    #[arg(long)]
    pub seed: u64,
    /// The parent's `--fail-rate`.
    #[arg(long)]
    pub fail_rate: f64,
    /// The parent's `--panic-rate`.
    #[arg(long)]
    pub panic_rate: f64,
}

/// Runs the worker until stopped; prints its lines on stdout.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let stop = stop_on_signals()?;
    watch_stdin(&stop)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo-worker")
        .enable_all()
        .build()?;
    match args.engine {
        Engine::Redis => {
            let queue = runtime.block_on(redis::open(&args.url, &args.queue, None))?;
            serve(&runtime, queue, &args, &stop)
        }
        Engine::Postgres => {
            let queue = runtime.block_on(postgres::open(&args.url, &args.queue, None))?;
            let pool = queue.pool().clone();
            serve(&runtime, queue, &args, &stop)?;
            // Its connections close before the process ends, so that the
            // server does not log them as lost.
            runtime.block_on(pool.close());
            Ok(())
        }
    }
}

/// Runs the controller over `queue` until `stop` fires and its workers
/// have drained; reports as it goes.
fn serve<Q>(
    runtime: &tokio::runtime::Runtime,
    queue: Q,
    args: &WorkerArgs,
    stop: &Stop,
) -> anyhow::Result<()>
where
    Q: AsyncQueue<String> + Clone + Send + Sync + 'static,
{
    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));
    let events = Forwarder::start(fleet.clone())?;
    let queue = Watched::new(queue, events.listener());
    let panic_log = Arc::new(PanicLog::default());
    // Always quiet: this process's stderr is only read when it fails.
    let quiet = QuietPanics::install(true, panic_log.clone());
    let odds = Odds {
        fail_rate: args.fail_rate,
        panic_rate: args.panic_rate,
        seed: args.seed,
    };
    let here = Here::new(&queue, &fleet, odds, args.workers, events.recorder(), None);
    let parts = Parts {
        controller: here.controller(),
        reconciler: here.reconciler(),
        panics: &panic_log,
        events: &events,
    };
    let mut reporter = Reporter::new(fleet.len());
    reporter.emit(&parts, false); // connected: the parent may start
    runtime.block_on(async {
        let run = here.run(stop);
        tokio::pin!(run);
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = &mut run => break,
                _ = every.tick() => reporter.emit(&parts, false),
            }
        }
    });
    events.shutdown(); // every recorded event into the last line
    drop(quiet);
    reporter.emit(&parts, true);
    Ok(())
}

/// Stops the worker when its stdin ends: the parent holds the other end,
/// so a parent that dies (even by SIGKILL) leaves no worker behind.
fn watch_stdin(stop: &Stop) -> std::io::Result<()> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("demo-worker-stdin".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            stop.stop();
        })
        .map(drop)
}
