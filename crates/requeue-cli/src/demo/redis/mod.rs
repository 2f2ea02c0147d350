//! `requeue demo --redis URL [--workers-procs N]`: the same demo on the
//! Redis engine. This process owns the queue `demo-<pid>` and runs the
//! update stream, the resync, the view and the summary; the controller runs
//! here (N = 1) or in N worker processes, which report back on their
//! stdout. The view's depth, in-flight and delayed figures, and the
//! summary's counts of reaped leases and retries, are read from Redis
//! itself (one atomic `inspect` per period), not from any process.
//!
//! Redis may fail under the run: this process's own connection reconnects
//! by itself and each of its calls gives up after 2 s; an outage, a corrupt
//! key and a stall are told as they happen (see `health`) and decide the
//! exit code. The stop is bounded whatever Redis does: the workers get
//! [`DRAIN_GRACE`] to finish their keys, the last reading and the clean-up
//! [`END_CALLS`]. The queue's keys carry a TTL throughout, so that a run
//! that cannot delete them leaves them only for a minute.
//!
//! | file | job |
//! |---|---|
//! | `server` | `--redis URL` or `local`, the queue's settings, this process's connection, one-line errors |
//! | `watched` | the queue, with its errors heard (corruption must not pass as idleness) |
//! | `here` | the controller in this process (N = 1) |
//! | `procs` | the worker processes (N > 1): start, read, stop |
//! | `worker` | the hidden `requeue demo-worker` a worker process runs |
//! | `wire`, `tally` | the line a worker reports, and writing it |
//! | `resync` | the periodic resync, run by this process |
//! | `poll` | the queue's numbers, read from Redis at the view's period; the keys' TTL |
//! | `leftover` | the end: keys still queued, deleting the queue |

pub(super) mod here;
mod leftover;
mod poll;
mod procs;
mod resync;
pub(super) use resync::run as resync_run;
mod server;
mod tally;
pub(super) mod watched;
mod wire;
pub mod worker;

use super::args::{DemoArgs, RedisTarget};
use super::events::Events;
use super::fleet::Fleet;
use super::health::{Health, Verdict};
use super::metrics::Served;
use super::panics::{PanicLog, QuietPanics};
use super::sample::{Probe, Sample, Sources, Workers};
use super::summary::{Check, Report};
use super::updates::{self, UpdateCounts};
use super::view::View;
use super::{Ended, ending, stall_check};
use anyhow::Context;
use here::Here;
use poll::Polled;
use procs::{Procs, Spec};
use redis::aio::ConnectionManager;
use requeue::controller::{ControllerMetrics, Counts, Summary};
use requeue::metrics::MetricsProvider;
use requeue::wait::Stop;
use requeue_redis::RedisQueue;
use requeue_redis::keys::QueueKeys;
use server::Target;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use watched::{Listener, Watched};

/// The queue every part of the Redis demo uses: errors heard.
pub type DemoQueue = Watched<RedisQueue<String>>;

/// Steady updates per second per worker: a Redis round trip per add and
/// several per reconcile make a worker far slower than in memory, and the
/// stream should stay below what the workers can do.
const STEADY_PER_WORKER: u64 = 250;
/// How long worker processes may take to connect.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the workers (here, or worker processes after SIGTERM) may take
/// to finish their keys in hand after the stop. A drain takes milliseconds
/// while Redis answers; on a frozen Redis each call would wait for its
/// timeout, and the run must not wait for them all.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// The last reading, the count of keys still queued and the clean-up, all
/// together (with [`DRAIN_GRACE`], the stop takes at most 5 s).
const END_CALLS: Duration = Duration::from_secs(2);

/// Who runs the controller.
enum Crew {
    /// This process (`--workers-procs 1`).
    Here(Here),
    /// Worker processes.
    Procs(Procs),
}

/// What the end of the run found.
struct End {
    /// The last reading succeeded (the numbers are Redis' at the end).
    read: bool,
    /// Never-reconciled keys still queued (0 if unknown).
    unreconciled_but_queued: usize,
    /// The queue's keys: deleted, kept, or why not deleted.
    deleted: Result<bool, String>,
}

/// Runs the demo on Redis until `--duration` passes or `signal` fires.
pub fn run(
    args: &DemoArgs,
    target: &RedisTarget,
    live: bool,
    signal: &Stop,
) -> anyhow::Result<Ended> {
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
    let health = Arc::new(Health::new());
    let listener: Listener = {
        let health = health.clone();
        Arc::new(move |error| health.queue_error(error))
    };
    let queue = Watched::new(
        runtime.block_on(server::queue(url, &name, provider))?,
        listener,
    );
    let conn = runtime.block_on(server::connection(url))?;

    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));
    let events = Events::start()?;
    let panic_log = Arc::new(PanicLog::default());
    let procs_n = args.workers_procs as usize;
    let crew = start_crew(
        args,
        url,
        &name,
        &queue,
        &fleet,
        &events,
        metrics.as_ref(),
        &health,
    )?;
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
        "redis: {}{throwaway}, queue {name}, lease {:?}",
        url,
        server::LEASE
    );
    let header = super::describe("requeue demo on Redis", args, &fleet, &description);
    let mut view = View::new(live, &header, args.duration);
    let period = view.period();
    let start = Instant::now();
    health.begin(start);
    let polled = Polled::new(keys.clone(), health.clone(), start + args.duration);
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

    let mut stopped_at = Duration::ZERO;
    let drained = std::thread::scope(|s| {
        let background = s.spawn(|| {
            runtime.block_on(async {
                let work = async {
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
                };
                let grace = async {
                    stop.stopped().await;
                    tokio::time::sleep(DRAIN_GRACE).await;
                };
                tokio::select! {
                    _ = work => true,
                    _ = grace => false,
                }
            })
        });
        stopped_at = super::watch(&stop, args.duration, start, &mut view, &mut probe, &health);
        background.join()
    })
    .map_err(|_| anyhow::anyhow!("the update stream or the controller panicked"))?;
    let procs = match &crew {
        Crew::Procs(procs) => Some(procs),
        Crew::Here(_) => None,
    };
    let exits = procs.map(|p| p.stop(DRAIN_GRACE)).unwrap_or_default();
    events.shutdown(); // deliver the queued events before counting them
    drop(quiet);
    view.finish();

    // The last numbers, read after every worker stopped, and the clean-up.
    let end = runtime.block_on(finish(&polled, conn, &keys, &fleet, args.keep_queue));
    let leased = if end.read { polled.leased() } else { None };
    tell_clean_up(&end, &name);
    for line in health.take_notices() {
        eprintln!("{line}");
    }
    let sample = probe.sample();
    let summary = summary_of(&workers.counts(), &sample);
    let lost: Vec<String> = exits
        .iter()
        .filter(|e| !e.clean())
        .map(procs::Exit::describe)
        .collect();
    let verdict = health.verdict();
    let mut problems = verdict.problems();
    let mut checks = vec![stall_check(&verdict), reachable_check(&verdict)];
    checks.push(Check::new(
        "queue state sound",
        verdict.corrupt.clone().unwrap_or_else(|| "yes".into()),
        verdict.corrupt.is_none(),
    ));
    if !drained && procs.is_none() {
        problems.push(format!(
            "the workers did not finish their keys within {DRAIN_GRACE:?} of the stop"
        ));
    }
    match leased {
        Some(0) => checks.push(Check::new(
            "no key left leased at the end",
            "0 leased",
            true,
        )),
        // A get whose reply was lost with the connection leased a key to
        // no one, and a worker process that died leaves its keys leased:
        // they return when their lease runs out. Expected after a break
        // or a death (itself told), a bug without one.
        Some(n) if verdict.outages + verdict.cuts > 0 => checks.push(Check::new(
            "no key left leased at the end",
            format!(
                "{n} leased to no one (replies lost with the connection; back after the lease)"
            ),
            true,
        )),
        Some(n) if !lost.is_empty() => checks.push(Check::new(
            "no key left leased at the end",
            format!("{n} leased by the worker processes that did not drain"),
            true,
        )),
        Some(n) => {
            problems.push(format!("{n} keys left leased after every worker stopped"));
            checks.push(Check::new(
                "no key left leased at the end",
                format!("{n} leased"),
                false,
            ));
        }
        None => {
            problems.push("the queue could not be read at the end".into());
            checks.push(Check::new(
                "no key left leased at the end",
                "unknown: Redis did not answer",
                false,
            ));
        }
    }
    match &end.deleted {
        Ok(true) => checks.push(Check::new("queue deleted", "yes", true)),
        Ok(false) => checks.push(Check::new("queue deleted", "kept (--keep-queue)", true)),
        Err(_) => {
            problems
                .push("the queue's keys could not be deleted (they expire on their own)".into());
            checks.push(Check::new(
                "queue deleted",
                "no: they expire on their own",
                false,
            ));
        }
    }
    // Worker processes that did not drain are listed apart (exit code 1).
    let mut headline = problems.clone();
    if !lost.is_empty() {
        headline.push(format!(
            "{} of {} worker processes did not drain (see below)",
            lost.len(),
            exits.len()
        ));
    }
    let ending = ending(&headline);
    let notes: Vec<String> = if end.read {
        Vec::new()
    } else {
        vec!["Redis did not answer at the end: its figures above (left queued, leases reaped, retries) are as last read".into()]
    };
    let report = Report {
        summary: &summary,
        sample: &sample,
        attempted: procs.map_or_else(|| fleet.total_attempts(), Procs::attempted),
        unreconciled_but_queued: end.unreconciled_but_queued,
        stopped_by: if signal.is_stopped() {
            "ctrl-c/SIGTERM"
        } else {
            "--duration"
        },
        events: &events,
        fleet: &fleet,
        processes: procs.map_or(0, Procs::len),
        problems: &lost,
        ending: &ending,
        checks: &checks,
        notes: &notes,
        stopped_at,
    };
    report.print();
    if let Some(served) = metrics {
        served.server.stop();
    }
    if !problems.is_empty() {
        return Ok(Ended::Unhealthy(problems));
    }
    // A worker that died first: its in-flight keys then upset the counts.
    anyhow::ensure!(report.no_worker_lost(), "a worker process failed");
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(Ended::Clean)
}

/// Whether Redis answered at the end, and the outages on the way.
fn reachable_check(verdict: &Verdict) -> Check {
    let label = "Redis reachable at the end";
    if let Some(since) = verdict.down_since {
        return Check::new(
            label,
            format!("no: unreachable since t={:.1}s", since.as_secs_f64()),
            false,
        );
    }
    let seen = match verdict.outages {
        0 => "yes".to_string(),
        n => format!(
            "yes; {n} outage{} of {:.1} s in all",
            super::plural(n as usize),
            verdict.outage_time.as_secs_f64()
        ),
    };
    Check::new(label, seen, true)
}

/// Reads the queue one last time, counts the never-reconciled keys still
/// in it, and deletes it (unless `keep`): within [`END_CALLS`] in all.
async fn finish(
    polled: &Polled,
    mut conn: ConnectionManager,
    keys: &QueueKeys,
    fleet: &Fleet,
    keep: bool,
) -> End {
    let deadline = tokio::time::Instant::now() + END_CALLS;
    let late = || format!("no answer within {END_CALLS:?}");
    let read = tokio::time::timeout_at(deadline, polled.read(&conn, fleet))
        .await
        .unwrap_or(false);
    let never: Vec<&str> = fleet.unreconciled().collect();
    let unreconciled_but_queued = if never.is_empty() {
        0
    } else {
        match tokio::time::timeout_at(deadline, leftover::still_queued(&mut conn, keys, &never))
            .await
        {
            Ok(Ok(n)) => n,
            // Unknown: the invariant then counts these keys as lost, which
            // the report explains by the unreachable Redis.
            _ => 0,
        }
    };
    let deleted = if keep {
        Ok(false)
    } else {
        let delete = async {
            match leftover::delete(&mut conn, keys).await {
                // Cut since the reading: once more, on a new connection.
                Err(e) if e.is_connection_dropped() => leftover::delete(&mut conn, keys).await,
                other => other,
            }
        };
        match tokio::time::timeout_at(deadline, delete).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(late()),
        }
    };
    End {
        read,
        unreconciled_but_queued,
        deleted,
    }
}

/// Says what became of the queue's keys if they were not deleted (without
/// the URL, which may carry a password).
fn tell_clean_up(end: &End, name: &str) {
    let ttl = leftover::TTL_MARGIN.as_secs();
    match &end.deleted {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "note: queue {name} kept in Redis (--keep-queue); its keys expire {ttl} s after the planned end"
        ),
        Err(error) => eprintln!(
            "error: cannot delete queue {name} from Redis ({error}); its keys expire on their own {ttl} s after the planned end"
        ),
    }
}

/// The controller here (N = 1) or N worker processes, connected and ready.
#[allow(clippy::too_many_arguments)] // the run's parts, each used once
fn start_crew(
    args: &DemoArgs,
    url: &crate::show::RedisUrl,
    name: &str,
    queue: &DemoQueue,
    fleet: &Arc<Fleet>,
    events: &Events,
    metrics: Option<&Served>,
    health: &Arc<Health>,
) -> anyhow::Result<Crew> {
    if args.workers_procs > 1 {
        let spec = Spec {
            url,
            queue: name,
            args,
        };
        let procs = Procs::spawn(&spec, fleet, &events.recorder(), health)?;
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
pub(super) fn summary_of(counts: &Counts, sample: &Sample) -> Summary {
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
