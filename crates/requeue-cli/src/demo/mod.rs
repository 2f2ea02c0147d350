//! `requeue demo`: a simulated controller reconciling a fleet of objects,
//! shown live — deduplicated adds, per-key backoff, contained panics,
//! periodic resync, correlated Warning events, and a clean drain on ctrl-c.
//!
//! Three engines: the in-memory `WorkQueue` (the default: the controller's
//! threads in this process), Redis with `--redis URL` and PostgreSQL with
//! `--postgres URL` (the controller here with `Controller::run_async`, or
//! in `--workers-procs N` worker processes; see `crew`). The handler, the
//! update stream, the numbers and the report are shared: what differs is
//! behind `sample::Workers` (the controller here, or the worker processes'
//! reports) and `sample::Gauge` (the `WorkQueue`'s snapshot, or the
//! server's numbers as last polled).
//!
//! | file | job |
//! |---|---|
//! | `args` | the flags, validated by clap |
//! | `fleet` | the keys and what happened to each |
//! | `reconcile` | the simulated handler (blocking, and async on any engine) |
//! | `updates` | the update stream (hot keys, rollouts), blocking and async |
//! | `events` | broadcaster → correlator → memory sink (the last 10,000 events) |
//! | `health` | stalls, Redis outages, corruption: told when they happen, and the exit code |
//! | `panics` | a quiet panic hook for the simulated panics |
//! | `metrics` | `--metrics-addr`: the registry and its HTTP server |
//! | `sample`, `view` | the numbers, live or one line per second |
//! | `summary` | the final report and its invariants |
//! | `crew/` | who runs the controller on a shared engine: this process or `--workers-procs N` worker processes (the hidden `demo-worker`) |
//! | `redis/` | `--redis`: the Redis engine's run |
//! | `postgres/` | `--postgres`: the PostgreSQL engine's run |

mod args;
mod crew;
mod events;
mod fleet;
mod health;
mod metrics;
mod panics;
mod postgres;
mod reconcile;
mod redis;
mod sample;
mod summary;
mod updates;
mod view;

pub use args::DemoArgs;
pub use crew::worker::{WorkerArgs, run as run_worker};

use events::Events;
use fleet::Fleet;
use health::{Health, Verdict};
use panics::{PanicLog, QuietPanics};
use reconcile::Reconciler;
use requeue::controller::{Controller, stop_on_signals};
use requeue::limiter::ItemExponential;
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use sample::{InProcess, Probe, Sources};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use summary::{Check, Report};
use updates::UpdateCounts;
use view::View;

/// The queue's (and the metrics') name.
const NAME: &str = "fleet";

/// Exit code of a run that ended unhealthy (documented in `--help`).
pub const UNHEALTHY: i32 = 3;

/// How a run that printed its report ended (a violated invariant is an
/// error: exit code 1).
enum Ended {
    Clean,
    /// Exit code [`UNHEALTHY`], for these reasons.
    Unhealthy(Vec<String>),
}

/// Runs the demo until `--duration` passes or ctrl-c/SIGTERM arrives.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Err(usage) = args.check() {
        usage.exit(); // as clap does for any other usage error
    }
    let live = !args.plain && std::io::stdout().is_terminal();
    let signal = stop_on_signals()?;
    let ended = match (&args.postgres, &args.redis) {
        (Some(target), _) => postgres::run(&args, target, live, &signal)?,
        (None, Some(target)) => redis::run(&args, target, live, &signal)?,
        (None, None) => in_memory(&args, live, &signal)?,
    };
    if let Ended::Unhealthy(why) = ended {
        // Everything the run owned is dropped by now (a throwaway
        // redis-server stopped), so exiting here skips nothing.
        let _ = std::io::stdout().flush();
        eprintln!("error: the run was unhealthy: {}", why.join("; "));
        std::process::exit(UNHEALTHY);
    }
    Ok(())
}

/// The in-memory demo: the controller's threads in this process.
fn in_memory(args: &DemoArgs, live: bool, signal: &Stop) -> anyhow::Result<Ended> {
    let stop = signal.child();
    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));

    // Per-key exponential backoff, without the default limiter's shared
    // 10/s token bucket: at thousands of reconciles a second that bucket
    // would push every retry minutes out and hide the per-key story.
    let mut builder = WorkQueue::builder()
        .name(NAME)
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(5),
            Duration::from_secs(60),
        ));
    let metrics = args
        .metrics_addr
        .map(|addr| metrics::serve(addr, NAME))
        .transpose()?;
    if let Some(served) = &metrics {
        builder = builder.metrics(served.queue.clone());
    }
    let queue = builder.build();

    let events = Events::start()?;
    let resyncs = Arc::new(AtomicU64::new(0));
    let mut controller = Controller::new(queue.clone(), args.workers as usize)
        .record_errors(events.recorder(), |key: &String| fleet::object_of(key))
        .resync(args.resync, {
            let (fleet, resyncs) = (fleet.clone(), resyncs.clone());
            move || {
                resyncs.fetch_add(1, Ordering::Relaxed);
                fleet.keys().to_vec()
            }
        });
    if let Some(served) = &metrics {
        controller = controller.metrics(Arc::new(served.controller.clone()));
    }

    let panic_log = Arc::new(PanicLog::default());
    let quiet = QuietPanics::install(live, panic_log.clone());
    let reconciler = Reconciler {
        fleet: &fleet,
        queue: &queue,
        fail_rate: args.fail_rate,
        panic_rate: args.panic_rate,
        seed: args.seed,
        requeued_after: AtomicU64::new(0),
    };
    let updates = UpdateCounts::default();
    if let Some(served) = &metrics {
        println!("metrics: http://{}/metrics", served.server.addr());
    }
    let mut view = View::new(live, &header(args, &fleet), args.duration);
    let start = Instant::now();
    let health = Health::new();
    health.begin(start);
    let workers = InProcess {
        controller: &controller,
        requeued_after: &reconciler.requeued_after,
        panics: &panic_log,
    };
    let mut probe = Probe::new(
        Sources {
            workers: &workers,
            queue: &queue,
            fleet: &fleet,
            updates: &updates,
            resyncs: &resyncs,
            events: &events,
        },
        start,
    );

    let mut stopped_at = Duration::ZERO;
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |key: &String| reconciler.reconcile(key)));
        s.spawn(|| updates::run(&fleet, &queue, args.workers, args.seed, &updates, &stop));
        stopped_at = watch(&stop, args.duration, start, &mut view, &mut probe, &health);
        // The runner lets every worker finish its key, then shuts the queue down.
        run.join()
    })
    .map_err(|_| anyhow::anyhow!("the controller's runner panicked"))?;
    events.shutdown(); // deliver the queued events before counting them
    drop(quiet);
    view.finish();
    for line in health.take_notices() {
        eprintln!("{line}");
    }

    let sample = probe.sample();
    let left = drain(&queue);
    let verdict = health.verdict();
    let problems = verdict.problems();
    let ending = ending(&problems);
    let checks = [stall_check(&verdict)];
    let report = Report {
        summary: &summary,
        sample: &sample,
        attempted: fleet.total_attempts(),
        unreconciled_but_queued: fleet.unreconciled().filter(|k| left.contains(*k)).count(),
        stopped_by: if signal.is_stopped() {
            "ctrl-c/SIGTERM"
        } else {
            "--duration"
        },
        events: &events,
        fleet: &fleet,
        processes: 0,
        problems: &[],
        ending: &ending,
        checks: &checks,
        notes: &[],
        stopped_at,
    };
    report.print();
    if let Some(served) = metrics {
        served.server.stop();
    }
    if !problems.is_empty() {
        return Ok(Ended::Unhealthy(problems));
    }
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(Ended::Clean)
}

/// Shows samples until `duration` has passed since `start` (then fires
/// `stop`) or `stop` fires; watches them for a stall and prints what
/// `health` has to tell. Returns the run time at the stop.
fn watch(
    stop: &Stop,
    duration: Duration,
    start: Instant,
    view: &mut View,
    probe: &mut Probe<'_>,
    health: &Health,
) -> Duration {
    // If this loop panics (stdout closed, say), the caller waits for the
    // workers: stop them, or it waits forever.
    let _stop_on_unwind = StopOnDrop(stop);
    loop {
        let remaining = duration.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            stop.stop();
        }
        if stop.wait_timeout(view.period().min(remaining)) {
            return start.elapsed();
        }
        let sample = probe.sample();
        health.observe(&sample);
        for line in health.take_notices() {
            view.notice(&line);
        }
        view.show(&sample);
    }
}

/// The summary's headline after "stopped by …": what went wrong, or that
/// all went well.
fn ending(problems: &[String]) -> String {
    if problems.is_empty() {
        "workers drained their keys in hand".to_string()
    } else {
        problems.join("; ")
    }
}

/// Whether processing stalled, and whether it recovered.
fn stall_check(verdict: &Verdict) -> Check {
    let label = format!(
        "no stall ({} s with keys waiting, none done)",
        health::STALL_WINDOW.as_secs()
    );
    match (verdict.stalled_since, verdict.stalls) {
        (Some(since), _) => Check::new(
            &label,
            format!("stalled since t={:.1}s", since.as_secs_f64()),
            false,
        ),
        (None, 0) => Check::new(&label, "none", true),
        (None, n) => Check::new(
            &label,
            format!("{n} stall{}, recovered", plural(n as usize)),
            true,
        ),
    }
}

/// The keys still queued after the stop (the queue is shut down, so this ends).
fn drain(queue: &WorkQueue<String>) -> HashSet<String> {
    std::iter::from_fn(|| queue.try_get().ok())
        .map(|item| (*item).clone())
        .collect()
}

/// The line above the live view (or the plain lines).
fn header(args: &DemoArgs, fleet: &Fleet) -> String {
    let workers = format!("{} worker{}", args.workers, plural(args.workers as usize));
    describe("requeue demo", args, fleet, &workers)
}

/// `title: <the fleet>, <workers>, <the odds>`.
fn describe(title: &str, args: &DemoArgs, fleet: &Fleet, workers: &str) -> String {
    format!(
        "{title}: {} object{} in {} namespace{}, {workers}, fail {}%, panic {}%, resync {:?}, seed {}",
        sample::thousands(fleet.len() as u64),
        plural(fleet.len()),
        fleet.namespaces(),
        plural(fleet.namespaces()),
        args.fail_rate * 100.0,
        args.panic_rate * 100.0,
        args.resync,
        args.seed
    )
}

/// "s" unless there is exactly one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Fires a stop signal when dropped.
struct StopOnDrop<'a>(&'a Stop);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}
