//! `requeue demo --redis URL [--workers-procs N]`: the same demo on the
//! Redis engine. This process owns the queue `demo-<pid>` and runs the
//! update stream, the resync, the view and the summary; the controller runs
//! here (N = 1) or in N worker processes, which report back on their
//! stdout (see `crew`). The view's depth, in-flight and delayed figures, and the
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
//! | `poll` | the queue's numbers, read from Redis at the view's period; the keys' TTL |
//! | `leftover` | the end: keys still queued, deleting the queue |

mod leftover;
mod poll;
mod server;
pub(super) use server::queue as open;

use super::args::{DemoArgs, RedisTarget};
use super::crew::watched::{Listener, Watched};
use super::crew::{Background, Crew, Engine, Outcome, Spec, conclude, leased_check, run_beside};
use super::events::Events;
use super::fleet::Fleet;
use super::health::{Health, Verdict};
use super::panics::{PanicLog, QuietPanics};
use super::sample::{Probe, Sources, Workers};
use super::summary::Check;
use super::updates::UpdateCounts;
use super::view::View;
use super::{Ended, stall_check};
use anyhow::Context;
use poll::Polled;
use redis::aio::ConnectionManager;
use requeue::metrics::MetricsProvider;
use requeue::wait::Stop;
use requeue_redis::keys::QueueKeys;
use server::Target;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// How long the workers (here, or worker processes after SIGTERM) may take
/// to finish their keys in hand after the stop. A drain takes milliseconds
/// while Redis answers; on a frozen Redis each call would wait for its
/// timeout, and the run must not wait for them all.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// The last reading, the count of keys still queued and the clean-up, all
/// together (with [`DRAIN_GRACE`], the stop takes at most 5 s).
const END_CALLS: Duration = Duration::from_secs(2);

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
    let spec = Spec {
        engine: Engine::Redis,
        url,
        queue: &name,
        args,
        lease: server::LEASE,
    };
    let crew = Crew::start(
        &spec,
        &queue,
        &fleet,
        &events,
        metrics.as_ref(),
        &health,
        &panic_log,
    )?;
    let workers: &dyn Workers = &crew;

    let quiet = QuietPanics::install(live, panic_log.clone());
    let updates = UpdateCounts::default();
    let resyncs = AtomicU64::new(0);
    if let Some(served) = &metrics {
        println!("metrics: http://{}/metrics", served.server.addr());
    }
    let description = crew.description(args);
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

    let (drained, stopped_at) = run_beside(
        &runtime,
        Background {
            queue: &queue,
            crew: &crew,
            fleet: &fleet,
            args,
            updates: &updates,
            resyncs: &resyncs,
            stop: &stop,
        },
        polled.run(conn.clone(), &fleet, period, &stop),
        DRAIN_GRACE,
        || super::watch(&stop, args.duration, start, &mut view, &mut probe, &health),
    )?;
    let procs = crew.procs();
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
    checks.push(leased_check(
        leased,
        &verdict,
        &exits,
        Engine::Redis,
        &mut problems,
    ));
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
    let notes: Vec<String> = if end.read {
        Vec::new()
    } else {
        vec!["Redis did not answer at the end: its figures above (left queued, leases reaped, retries) are as last read".into()]
    };
    if let Some(served) = metrics {
        served.server.stop();
    }
    conclude(
        &crew,
        Outcome {
            sample: &sample,
            fleet: &fleet,
            events: &events,
            exits: &exits,
            problems,
            checks: &checks,
            notes: &notes,
            unreconciled_but_queued: end.unreconciled_but_queued,
            by_signal: signal.is_stopped(),
            stopped_at,
        },
    )
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
