//! `requeue demo --redis URL [--workers-procs N]`: the same demo on the
//! Redis engine. This process owns the queue `demo-<pid>` and runs the
//! update stream, the resync, the view and the summary; the controller runs
//! here (N = 1) or in N worker processes, which report back on their
//! stdout. The view's depth, in-flight and delayed figures are read from
//! Redis itself (one atomic `inspect` per period), not from any process.
//!
//! | file | job |
//! |---|---|
//! | `server` | `--redis URL` or `local`, the queue's settings, one-line errors |
//! | `here` | the controller in this process (N = 1) |
//! | `procs` | the worker processes (N > 1): start, read, stop |
//! | `worker` | the hidden `requeue demo-worker` a worker process runs |
//! | `wire`, `tally` | the line a worker reports, and writing it |
//! | `resync` | the periodic resync, run by this process |
//! | `poll` | the queue's numbers, read from Redis at the view's period |
//! | `leftover` | the end: keys still queued, deleting the queue |

mod here;
mod leftover;
mod poll;
mod procs;
mod resync;
mod server;
mod tally;
mod wire;
pub mod worker;

use super::args::{DemoArgs, RedisTarget};
use super::events::Events;
use super::fleet::Fleet;
use super::metrics::Served;
use super::panics::{PanicLog, QuietPanics};
use super::sample::{Probe, Sample, Sources, Workers};
use super::summary::Report;
use super::updates::{self, UpdateCounts};
use super::view::View;
use anyhow::Context;
use here::Here;
use poll::Polled;
use procs::{Procs, Spec};
use redis::aio::MultiplexedConnection;
use requeue::controller::{ControllerMetrics, Counts, Summary};
use requeue::metrics::MetricsProvider;
use requeue::wait::Stop;
use requeue_redis::RedisQueue;
use requeue_redis::keys::QueueKeys;
use server::Target;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Steady updates per second per worker: a Redis round trip per add and
/// several per reconcile make a worker far slower than in memory, and the
/// stream should stay below what the workers can do.
const STEADY_PER_WORKER: u64 = 250;
/// How long worker processes may take to connect.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long worker processes may take to drain after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Who runs the controller.
enum Crew {
    /// This process (`--workers-procs 1`).
    Here(Here),
    /// Worker processes.
    Procs(Procs),
}

/// Runs the demo on Redis until `--duration` passes or `signal` fires.
pub fn run(args: &DemoArgs, target: &RedisTarget, live: bool, signal: &Stop) -> anyhow::Result<()> {
    let stop = signal.child();
    let target = Target::resolve(target)?;
    let url = &target.url;
    // Per process, so that runs sharing a Redis never meet.
    let name = format!("demo-{}", std::process::id());
    let keys = QueueKeys::new(&name)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo")
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let metrics = args
        .metrics_addr
        .map(|addr| super::metrics::serve(addr, &name))
        .transpose()?;
    let provider = metrics
        .as_ref()
        .map(|m| m.queue.clone() as Arc<dyn MetricsProvider>);
    let queue = runtime.block_on(server::queue(url, &name, provider))?;
    let mut conn = runtime.block_on(server::connection(url))?;

    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));
    let events = Events::start()?;
    let panic_log = Arc::new(PanicLog::default());
    let procs_n = args.workers_procs as usize;
    let crew = start_crew(args, url, &name, &queue, &fleet, &events, metrics.as_ref())?;
    let in_process;
    let workers: &dyn Workers = match &crew {
        Crew::Here(here) => {
            in_process = here.workers(&panic_log);
            &in_process
        }
        Crew::Procs(procs) => procs,
    };

    let quiet = QuietPanics::install(live, panic_log.clone());
    let updates = UpdateCounts::default();
    let resyncs = AtomicU64::new(0);
    let polled = Polled::new(keys.clone());
    if let Some(served) = &metrics {
        println!("metrics: http://{}/metrics", served.server.addr());
    }
    let description = if procs_n > 1 {
        format!("{procs_n} processes × {} workers", args.workers)
    } else {
        format!(
            "{} worker{}",
            args.workers,
            super::plural(args.workers as usize)
        )
    };
    // Above the view (the live view's title is cut at the terminal's width).
    let throwaway = if target.local { " (throwaway)" } else { "" };
    println!(
        "redis: {url}{throwaway}, queue {name}, lease {:?}",
        server::LEASE
    );
    let header = super::describe("requeue demo on Redis", args, &fleet, &description);
    let mut view = View::new(live, &header, args.duration);
    let period = view.period();
    let start = Instant::now();
    let mut probe = Probe::new(
        Sources {
            workers,
            queue: &polled,
            fleet: &fleet,
            updates: &updates,
            resyncs: &resyncs,
            events: &events,
        },
        start,
    );
    let rate = STEADY_PER_WORKER * u64::from(args.workers) * procs_n as u64;

    std::thread::scope(|s| {
        let background = s.spawn(|| {
            runtime.block_on(async {
                tokio::join!(
                    updates::run_async(&fleet, &queue, rate, args.seed, &updates, &stop),
                    resync::run(&queue, &fleet, args.resync, &resyncs, &stop),
                    polled.run(conn.clone(), &fleet, period, &stop),
                    async {
                        if let Crew::Here(here) = &crew {
                            here.run(&stop).await;
                        }
                    },
                )
            })
        });
        super::watch(&stop, args.duration, start, &mut view, &mut probe);
        background.join()
    })
    .map_err(|_| anyhow::anyhow!("the update stream or the controller panicked"))?;
    let procs = match &crew {
        Crew::Procs(procs) => Some(procs),
        Crew::Here(_) => None,
    };
    let exits = procs.map(|p| p.stop(STOP_GRACE)).unwrap_or_default();
    events.shutdown(); // deliver the queued events before counting them
    drop(quiet);
    view.finish();

    // The last numbers, read after every worker stopped.
    let _ = runtime.block_on(polled.read(&mut conn, &fleet));
    let sample = probe.sample();
    let summary = summary_of(&workers.counts(), &sample);
    let unreconciled_but_queued = runtime.block_on(clean_up(&mut conn, &keys, &fleet));
    let problems: Vec<String> = exits
        .iter()
        .filter(|e| !e.clean())
        .map(procs::Exit::describe)
        .collect();
    let report = Report {
        summary: &summary,
        sample: &sample,
        attempted: procs.map_or_else(|| fleet.total_attempts(), Procs::attempted),
        unreconciled_but_queued,
        stopped_by: if signal.is_stopped() {
            "ctrl-c/SIGTERM"
        } else {
            "--duration"
        },
        events: &events,
        fleet: &fleet,
        processes: procs.map_or(0, Procs::len),
        problems: &problems,
    };
    report.print();
    if let Some(served) = metrics {
        served.server.stop();
    }
    // A worker that died first: its in-flight keys then upset the counts.
    anyhow::ensure!(report.no_worker_lost(), "a worker process failed");
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(())
}

/// The controller here (N = 1) or N worker processes, connected and ready.
fn start_crew(
    args: &DemoArgs,
    url: &crate::show::RedisUrl,
    name: &str,
    queue: &RedisQueue<String>,
    fleet: &Arc<Fleet>,
    events: &Events,
    metrics: Option<&Served>,
) -> anyhow::Result<Crew> {
    if args.workers_procs > 1 {
        let spec = Spec {
            url,
            queue: name,
            args,
        };
        let procs = Procs::spawn(&spec, fleet, &events.recorder())?;
        procs.wait_ready(READY_TIMEOUT)?;
        return Ok(Crew::Procs(procs));
    }
    let controller_metrics =
        metrics.map(|m| Arc::new(m.controller.clone()) as Arc<dyn ControllerMetrics>);
    Ok(Crew::Here(Here::new(
        queue,
        fleet,
        args,
        events.recorder(),
        controller_metrics,
    )))
}

/// The run's summary from the workers' counts and the last sample.
fn summary_of(counts: &Counts, sample: &Sample) -> Summary {
    Summary {
        succeeded: counts.succeeded,
        failed: counts.failed,
        panicked: counts.panicked,
        requeued: counts.requeued,
        requeues_refused: counts.requeues_refused,
        lease_lost: counts.lease_lost,
        left_queued: sample.queue.ready,
        // Redis keeps delayed keys for the next worker: none are withdrawn.
        withdrawn: 0,
    }
}

/// Counts the never-reconciled keys still queued, then deletes the queue.
/// Failures are warnings: the report is still worth printing, and its
/// invariant says whether a key went missing.
async fn clean_up(conn: &mut MultiplexedConnection, keys: &QueueKeys, fleet: &Fleet) -> usize {
    let never: Vec<&str> = fleet.unreconciled().collect();
    let queued = leftover::still_queued(conn, keys, &never)
        .await
        .unwrap_or_else(|error| {
            eprintln!("warning: cannot read queue {}: {error}", keys.name());
            0
        });
    if let Err(error) = leftover::delete(conn, keys).await {
        eprintln!("warning: cannot delete queue {}: {error}", keys.name());
    }
    queued
}
