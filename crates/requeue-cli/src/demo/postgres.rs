//! `requeue demo --postgres URL|local`: the demo on the PostgreSQL engine.
//! This process owns the queue `demo-<pid>` and runs everything: the
//! update stream, the resync, the controller (tasks on
//! `Controller::run_async`, as `--redis` with one process), the view and
//! the summary. The view's depth, in-flight and delayed figures, and the
//! summary's counts of reaped leases and retries, are read from the
//! database (one read per period), not from the process. At the end the
//! queue's rows are deleted; `local` servers are removed whole.

use super::args::{DemoArgs, PgTarget};
use super::events::Events;
use super::fleet::Fleet;
use super::health::Health;
use super::panics::{PanicLog, QuietPanics};
use super::redis::here::Here;
use super::redis::watched::{Listener, Watched};
use super::sample::{Gauge, Probe, Sources, TOP, Workers};
use super::summary::{Check, Report};
use super::updates::{self, UpdateCounts};
use super::view::View;
use super::{Ended, ending, stall_check};
use crate::show::PgUrl;
use anyhow::Context;
use requeue::controller::ControllerMetrics;
use requeue::limiter::{Exponential, LimiterSpec};
use requeue::metrics::MetricsProvider;
use requeue::queue::QueueSnapshot;
use requeue::wait::Stop;
use requeue_postgres::PostgresQueue;
use requeue_postgres::local_server::{BIN_DIR_ENV, LocalServer};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The queue every part of the PostgreSQL demo uses: errors heard.
type PgDemoQueue = Watched<PostgresQueue<String>>;

/// The lease, as the Redis demo's: far above a reconcile.
const LEASE: Duration = Duration::from_secs(5);
/// Steady updates per second per worker (each add is a statement, though
/// the queue batches them).
const STEADY_PER_WORKER: u64 = 250;
/// How long the workers may take to finish their keys after the stop.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How long the last reading and the clean-up may take together.
const END_CALLS: Duration = Duration::from_secs(5);
/// The schema of the queue's tables (the builder's default).
const SCHEMA: &str = "requeue";

/// Runs the demo on PostgreSQL until `--duration` passes or `signal` fires.
pub fn run(args: &DemoArgs, target: &PgTarget, live: bool, signal: &Stop) -> anyhow::Result<Ended> {
    let stop = signal.child();
    let (url, _server) = match target {
        PgTarget::Url(url) => (url.clone(), None),
        PgTarget::Local => {
            let server = LocalServer::start().with_context(|| {
                format!(
                    "--postgres local: cannot start a PostgreSQL server (are initdb and postgres \
                     installed? set {BIN_DIR_ENV} to their directory)"
                )
            })?;
            (PgUrl::from(server.url()), Some(server))
        }
    };
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
    let mut builder = PostgresQueue::<String>::builder(url.expose(), &name)
        .lease(LEASE)
        .limiter(LimiterSpec {
            // Per-key backoff as the other engines' demo, without the
            // shared 10/s bucket.
            exponential: Some(Exponential {
                base_ms: 5,
                max_ms: 60_000,
            }),
            ..LimiterSpec::default()
        })
        .connect_timeout(Duration::from_secs(3));
    if let Some(served) = &metrics {
        builder = builder.metrics(served.queue.clone() as Arc<dyn MetricsProvider>);
    }
    let inner = runtime
        .block_on(builder.build())
        .with_context(|| format!("cannot open queue {name} in PostgreSQL at {url}"))?;
    let pool = inner.pool().clone();
    let queue: PgDemoQueue = Watched::new(inner, listener);
    let queue_id: i32 = runtime
        .block_on(
            sqlx::query_scalar(&format!("SELECT id FROM {SCHEMA}.queues WHERE name = $1"))
                .bind(&name)
                .fetch_one(&pool),
        )
        .context("cannot read the queue's id")?;

    let fleet = Arc::new(Fleet::new(args.objects as usize, args.fail_rate, args.seed));
    let events = Events::start()?;
    let panic_log = Arc::new(PanicLog::default());
    let controller_metrics = metrics
        .as_ref()
        .map(|m| Arc::new(m.controller.clone()) as Arc<dyn ControllerMetrics>);
    let here = Here::new(&queue, &fleet, args, events.recorder(), controller_metrics);
    let workers = here.workers(&panic_log);

    let quiet = QuietPanics::install(live, panic_log.clone());
    let updates = UpdateCounts::default();
    let resyncs = AtomicU64::new(0);
    if let Some(served) = &metrics {
        println!("metrics: http://{}/metrics", served.server.addr());
    }
    let throwaway = if _server.is_some() {
        " (throwaway, fsync on)"
    } else {
        ""
    };
    println!(
        "postgres: {url}{throwaway}, queue {name} (schema {SCHEMA}), lease {LEASE:?}, workers in this process"
    );
    let description = format!(
        "{} worker{}",
        args.workers,
        super::plural(args.workers as usize)
    );
    let header = super::describe("requeue demo on PostgreSQL", args, &fleet, &description);
    let mut view = View::new(live, &header, args.duration);
    let period = view.period();
    let start = Instant::now();
    health.begin(start);
    let polled = Polled {
        pool: pool.clone(),
        queue_id,
        latest: Mutex::default(),
        health: health.clone(),
    };
    let mut probe = Probe::new(
        Sources {
            workers: &workers,
            queue: &polled,
            fleet: &fleet,
            updates: &updates,
            resyncs: &resyncs,
            events: &events,
        },
        start,
    );
    let rate = STEADY_PER_WORKER * u64::from(args.workers);

    let mut stopped_at = Duration::ZERO;
    let drained = std::thread::scope(|s| {
        let background = s.spawn(|| {
            runtime.block_on(async {
                let work = async {
                    tokio::join!(
                        updates::run_async(&fleet, &queue, rate, args.seed, &updates, &stop),
                        super::redis::resync_run(&queue, &fleet, args.resync, &resyncs, &stop),
                        polled.run(&fleet, period, &stop),
                        here.run(&stop),
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
    events.shutdown();
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
    let summary = super::redis::summary_of(&workers.counts(), &sample);
    let verdict = health.verdict();
    let mut problems = verdict.problems();
    let mut checks = vec![stall_check(&verdict)];
    if !drained {
        problems.push(format!(
            "the workers did not finish their keys within {DRAIN_GRACE:?} of the stop"
        ));
    }
    let label = "no key left leased at the end";
    if end.read {
        let leased = polled.snapshot().processing;
        checks.push(Check::new(label, format!("{leased} leased"), leased == 0));
        if leased > 0 {
            problems.push(format!(
                "{leased} keys left leased after every worker stopped"
            ));
        }
    } else {
        problems.push("the queue could not be read at the end".into());
        checks.push(Check::new(
            label,
            "unknown: PostgreSQL did not answer",
            false,
        ));
    }
    match &end.deleted {
        Ok(true) => checks.push(Check::new("queue deleted", "yes", true)),
        Ok(false) => checks.push(Check::new("queue deleted", "kept (--keep-queue)", true)),
        Err(_) => {
            problems.push("the queue's rows could not be deleted".into());
            checks.push(Check::new("queue deleted", "no", false));
        }
    }
    let ending = ending(&problems);
    let notes: Vec<String> = if end.read {
        Vec::new()
    } else {
        vec!["PostgreSQL did not answer at the end: its figures above are as last read".into()]
    };
    let report = Report {
        summary: &summary,
        sample: &sample,
        attempted: fleet.total_attempts(),
        unreconciled_but_queued: end.unreconciled_but_queued,
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
        notes: &notes,
        stopped_at,
    };
    report.print();
    if let Some(served) = metrics {
        served.server.stop();
    }
    // The queue's connections close before a throwaway server stops.
    drop(here);
    drop(queue);
    runtime.block_on(pool.close());
    if !problems.is_empty() {
        return Ok(Ended::Unhealthy(problems));
    }
    anyhow::ensure!(report.counts_add_up(), "the counts do not add up");
    anyhow::ensure!(report.no_key_lost(), "a key was lost");
    Ok(Ended::Clean)
}

/// What the end of the run found.
struct End {
    read: bool,
    unreconciled_but_queued: usize,
    deleted: Result<bool, String>,
}

/// Reads the queue once more, counts the never-reconciled keys still in
/// it, and deletes its rows (unless `keep`).
async fn finish(polled: &Polled, fleet: &Fleet, keep: bool) -> End {
    let read = polled.read(fleet).await;
    let never: Vec<String> = fleet.unreconciled().map(str::to_string).collect();
    let unreconciled_but_queued = if never.is_empty() {
        0
    } else {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM {SCHEMA}.items WHERE queue_id = $1 AND key = ANY($2) \
             AND state IN ('q', 'd')"
        ))
        .bind(polled.queue_id)
        .bind(&never)
        .fetch_one(&polled.pool)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    };
    let deleted = if keep {
        Ok(false)
    } else {
        delete(&polled.pool, polled.queue_id)
            .await
            .map(|()| true)
            .map_err(|e| e.to_string())
    };
    End {
        read,
        unreconciled_but_queued,
        deleted,
    }
}

/// Deletes every row of the queue, in one transaction.
async fn delete(pool: &sqlx::PgPool, queue_id: i32) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for table in ["items", "limiters", "stats", "queues"] {
        let column = if table == "queues" { "id" } else { "queue_id" };
        sqlx::query(&format!("DELETE FROM {SCHEMA}.{table} WHERE {column} = $1"))
            .bind(queue_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// The latest reading.
#[derive(Debug, Default)]
struct Reading {
    snapshot: Option<QueueSnapshot>,
    reaped: u64,
    retries: u64,
    requeues: HashMap<String, u32>,
}

/// The queue's numbers, read from its tables at the view's period.
struct Polled {
    pool: sqlx::PgPool,
    queue_id: i32,
    latest: Mutex<Reading>,
    health: Arc<Health>,
}

impl Polled {
    /// Reads every `period` until `stop` fires.
    async fn run(&self, fleet: &Fleet, period: Duration, stop: &Stop) {
        loop {
            let round = async {
                self.read(fleet).await;
                tokio::time::sleep(period).await;
            };
            tokio::select! {
                biased;
                _ = stop.stopped() => return,
                _ = round => {}
            }
        }
    }

    /// One reading (the previous one stays on an error, told once).
    async fn read(&self, fleet: &Fleet) -> bool {
        match tokio::time::timeout(Duration::from_secs(2), self.read_once(fleet)).await {
            Ok(Ok(reading)) => {
                *self.lock() = reading;
                true
            }
            Ok(Err(error)) => {
                self.health
                    .warn_once(format!("warning: cannot read the queue's numbers: {error}"));
                false
            }
            Err(_) => {
                self.health.warn_once(
                    "warning: cannot read the queue's numbers: no answer within 2 s".into(),
                );
                false
            }
        }
    }

    async fn read_once(&self, fleet: &Fleet) -> Result<Reading, sqlx::Error> {
        let (ready, processing, parked, delayed): (i64, i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE state = 'q'), count(*) FILTER (WHERE state = 'p'), \
                        count(*) FILTER (WHERE state = 'p' AND dirty), \
                        count(*) FILTER (WHERE due_us IS NOT NULL) \
                 FROM {SCHEMA}.items WHERE queue_id = $1"
        ))
        .bind(self.queue_id)
        .fetch_one(&self.pool)
        .await?;
        let (reaped, retries): (i64, i64) = sqlx::query_as(&format!(
            "SELECT coalesce(sum(lease_expired_total), 0)::bigint, \
                    coalesce(sum(retries_total), 0)::bigint \
             FROM {SCHEMA}.stats WHERE queue_id = $1"
        ))
        .bind(self.queue_id)
        .fetch_one(&self.pool)
        .await?;
        let top: Vec<String> = fleet
            .most_retried(TOP)
            .into_iter()
            .map(|(key, _)| key.to_string())
            .collect();
        let failures: Vec<(String, i32)> = sqlx::query_as(&format!(
            "SELECT key, failures FROM {SCHEMA}.items WHERE queue_id = $1 AND key = ANY($2)"
        ))
        .bind(self.queue_id)
        .bind(&top)
        .fetch_all(&self.pool)
        .await?;
        let size = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(Reading {
            snapshot: Some(QueueSnapshot {
                ready: size(ready),
                processing: size(processing),
                added_while_processing: size(parked),
                delayed: size(delayed),
                waiting_gets: 0,
                shutting_down: false,
            }),
            reaped: u64::try_from(reaped).unwrap_or(0),
            retries: u64::try_from(retries).unwrap_or(0),
            requeues: failures
                .into_iter()
                .map(|(key, n)| (key, u32::try_from(n).unwrap_or(0)))
                .collect(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Gauge for Polled {
    fn snapshot(&self) -> QueueSnapshot {
        self.lock().snapshot.unwrap_or(QueueSnapshot {
            ready: 0,
            processing: 0,
            added_while_processing: 0,
            delayed: 0,
            waiting_gets: 0,
            shutting_down: false,
        })
    }

    fn num_requeues(&self, key: &str) -> u32 {
        self.lock().requeues.get(key).copied().unwrap_or(0)
    }

    fn server_name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn redis_counters(&self) -> Option<(u64, u64)> {
        let reading = self.lock();
        Some((reading.reaped, reading.retries))
    }
}
