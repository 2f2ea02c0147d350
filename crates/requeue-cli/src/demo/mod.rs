//! `requeue demo`: a simulated controller reconciling a fleet of objects,
//! shown live — deduplicated adds, per-key backoff, contained panics,
//! periodic resync, correlated Warning events, and a clean drain on ctrl-c.
//!
//! | file | job |
//! |---|---|
//! | `args` | the flags, validated by clap |
//! | `fleet` | the keys and what happened to each |
//! | `reconcile` | the simulated handler |
//! | `updates` | the update stream (hot keys, rollouts) |
//! | `events` | broadcaster → correlator → memory sink |
//! | `panics` | a quiet panic hook for the simulated panics |
//! | `sample`, `view` | the numbers, live or one line per second |
//! | `summary` | the final report and its invariants |

mod args;
mod events;
mod fleet;
mod panics;
mod reconcile;
mod sample;
mod summary;
mod updates;
mod view;

pub use args::DemoArgs;

use events::Events;
use fleet::Fleet;
use panics::{PanicLog, QuietPanics};
use prometheus_client::registry::Registry;
use reconcile::Reconciler;
use requeue::controller::{Controller, stop_on_signals};
use requeue::limiter::ItemExponential;
use requeue::metrics::{PrometheusControllerMetrics, PrometheusMetrics, serve_metrics};
use requeue::queue::WorkQueue;
use requeue::wait::Stop;
use sample::{Probe, Sources};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use summary::Report;
use updates::UpdateCounts;
use view::View;

/// The queue's (and the metrics') name.
const NAME: &str = "fleet";

/// Runs the demo until `--duration` passes or ctrl-c/SIGTERM arrives.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let live = !args.plain && std::io::stdout().is_terminal();
    let signal = stop_on_signals()?;
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
    let mut metrics = None;
    if let Some(addr) = args.metrics_addr {
        let mut registry = Registry::default();
        builder = builder.metrics(Arc::new(PrometheusMetrics::new(&mut registry)));
        let controller_metrics = PrometheusControllerMetrics::new(&mut registry, NAME);
        let server = serve_metrics(addr, Arc::new(Mutex::new(registry)))
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        metrics = Some((server, controller_metrics));
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
    if let Some((_, controller_metrics)) = &metrics {
        controller = controller.metrics(Arc::new(controller_metrics.clone()));
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
    if let Some((server, _)) = &metrics {
        println!("metrics: http://{}/metrics", server.addr());
    }
    let mut view = View::new(live, &header(&args, &fleet), args.duration);
    let start = Instant::now();
    let mut probe = Probe::new(
        Sources {
            controller: &controller,
            fleet: &fleet,
            updates: &updates,
            requeued_after: &reconciler.requeued_after,
            resyncs: &resyncs,
            events: &events,
            panics: &panic_log,
        },
        start,
    );

    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| controller.run(&stop, |key: &String| reconciler.reconcile(key)));
        s.spawn(|| updates::run(&fleet, &queue, args.workers, args.seed, &updates, &stop));
        // If this loop panics (stdout closed, say), the scope waits for the
        // threads above: stop them, or it waits forever.
        let _stop_on_unwind = StopOnDrop(&stop);
        loop {
            let remaining = args.duration.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                stop.stop();
            }
            if stop.wait_timeout(view.period().min(remaining)) {
                break;
            }
            view.show(&probe.sample());
        }
        // The runner lets every worker finish its key, then shuts the queue down.
        run.join()
    })
    .map_err(|_| anyhow::anyhow!("the controller's runner panicked"))?;
    events.shutdown(); // deliver the queued events before counting them
    drop(quiet);
    view.finish();

    let sample = probe.sample();
    let left = drain(&queue);
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
    };
    report.print();
    if let Some((server, _)) = metrics {
        server.stop();
    }
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(())
}

/// The keys still queued after the stop (the queue is shut down, so this ends).
fn drain(queue: &WorkQueue<String>) -> HashSet<String> {
    std::iter::from_fn(|| queue.try_get().ok())
        .map(|item| (*item).clone())
        .collect()
}

/// The line above the live view (or the plain lines).
fn header(args: &DemoArgs, fleet: &Fleet) -> String {
    format!(
        "requeue demo: {} object{} in {} namespace{}, {} worker{}, fail {}%, panic {}%, resync {:?}, seed {}",
        sample::thousands(fleet.len() as u64),
        plural(fleet.len()),
        fleet.namespaces(),
        plural(fleet.namespaces()),
        args.workers,
        plural(args.workers as usize),
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
