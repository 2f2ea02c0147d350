//! `requeue demo --postgres URL|local [--workers-procs N]`: the demo on the
//! PostgreSQL engine. This process owns the queue `demo-<pid>` and runs
//! the update stream, the resync, the view and the summary; the
//! controller runs here (N = 1, tasks on `Controller::run_async`) or in N
//! worker processes sharing the queue, which report back on their stdout
//! (see `crew`). The view's depth, in-flight and delayed figures, and the
//! summary's counts of reaped leases and retries, are read from the
//! database (one read per period), not from any process. At the end the
//! queue's rows are deleted; a `local` server is removed whole.
//!
//! | file | job |
//! |---|---|
//! | `server` | `--postgres URL` or `local`, and the queue's settings |
//! | `polled` | the queue's numbers, read from its tables; the end of the run |

mod polled;
mod server;
pub(super) use server::open;

use super::args::{DemoArgs, PgTarget};
use super::crew::watched::{Listener, Watched};
use super::crew::{Background, Crew, Engine, Outcome, Spec, conclude, leased_check, run_beside};
use super::events::Events;
use super::fleet::Fleet;
use super::health::Health;
use super::panics::{PanicLog, QuietPanics};
use super::sample::{Probe, Sources, Workers};
use super::summary::Check;
use super::updates::UpdateCounts;
use super::view::View;
use super::{Ended, stall_check};
use anyhow::Context;
use polled::{End, Polled, finish};
use requeue::metrics::MetricsProvider;
use requeue::wait::Stop;
use server::{LEASE, SCHEMA, Target};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// How long the workers (here, or worker processes after SIGTERM) may take
/// to finish their keys after the stop.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How long the last reading and the clean-up may take together.
const END_CALLS: Duration = Duration::from_secs(5);

/// Runs the demo on PostgreSQL until `--duration` passes or `signal` fires.
pub fn run(args: &DemoArgs, target: &PgTarget, live: bool, signal: &Stop) -> anyhow::Result<Ended> {
    let stop = signal.child();
    let target = Target::resolve(target)?;
    let url = &target.url;
    // Per process, so that runs sharing a database never meet.
    let name = format!("demo-{}", std::process::id());
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
    let health = Arc::new(Health::new());
    let listener: Listener = {
        let health = health.clone();
        Arc::new(move |error| health.queue_error(error))
    };
    let provider = metrics
        .as_ref()
        .map(|m| m.queue.clone() as Arc<dyn MetricsProvider>);
    let inner = runtime.block_on(open(url, &name, provider))?;
    let pool = inner.pool().clone();
    let queue = Watched::new(inner, listener);
    let polled = runtime
        .block_on(Polled::new(pool.clone(), &name, health.clone()))
        .context("cannot read the queue's id")?;

    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));
    let events = Events::start()?;
    let panic_log = Arc::new(PanicLog::default());
    let spec = Spec {
        engine: Engine::Postgres,
        url,
        queue: &name,
        args,
        lease: LEASE,
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
    let throwaway = if target.local.is_some() {
        " (throwaway, fsync on)"
    } else {
        ""
    };
    let here = if crew.procs().is_some() {
        "worker processes"
    } else {
        "workers in this process"
    };
    println!("postgres: {url}{throwaway}, queue {name} (schema {SCHEMA}), lease {LEASE:?}, {here}");
    let description = crew.description(args);
    let header = super::describe("requeue demo on PostgreSQL", args, &fleet, &description);
    let mut view = View::new(live, &header, args.duration);
    let period = view.period();
    let start = Instant::now();
    health.begin(start);
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
        polled.run(&fleet, period, &stop),
        DRAIN_GRACE,
        || super::watch(&stop, args.duration, start, &mut view, &mut probe, &health),
    )?;
    let procs = crew.procs();
    let exits = procs.map(|p| p.stop(DRAIN_GRACE)).unwrap_or_default();
    events.shutdown(); // deliver the queued events before counting them
    drop(quiet);
    view.finish();

    // The last numbers, read after every worker stopped, and the clean-up.
    let end = runtime.block_on(async {
        tokio::time::timeout(END_CALLS, finish(&polled, &fleet, args.keep_queue))
            .await
            .unwrap_or_else(|_| End {
                read: false,
                unreconciled_but_queued: 0,
                deleted: Err(format!("no answer within {END_CALLS:?}")),
            })
    });
    if let Err(error) = &end.deleted {
        eprintln!("error: cannot delete queue {name}'s rows from PostgreSQL ({error})");
    }
    for line in health.take_notices() {
        eprintln!("{line}");
    }
    let sample = probe.sample();
    let verdict = health.verdict();
    let mut problems = verdict.problems();
    let mut checks = vec![stall_check(&verdict)];
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
    let leased = if end.read { polled.leased() } else { None };
    checks.push(leased_check(
        leased,
        &verdict,
        &exits,
        Engine::Postgres,
        &mut problems,
    ));
    match &end.deleted {
        Ok(true) => checks.push(Check::new("queue deleted", "yes", true)),
        Ok(false) => checks.push(Check::new("queue deleted", "kept (--keep-queue)", true)),
        Err(_) => {
            problems.push("the queue's rows could not be deleted".into());
            checks.push(Check::new("queue deleted", "no", false));
        }
    }
    let notes: Vec<String> = if end.read {
        Vec::new()
    } else {
        vec!["PostgreSQL did not answer at the end: its figures above are as last read".into()]
    };
    if let Some(served) = metrics {
        served.server.stop();
    }
    let ended = conclude(
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
    );
    // The queue's connections close before a throwaway server stops.
    drop(crew);
    drop(queue);
    runtime.block_on(pool.close());
    ended
}
