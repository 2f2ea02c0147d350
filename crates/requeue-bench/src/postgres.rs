//! W1 and W3 on the PostgreSQL engine (`requeue-postgres`), with
//! `workers` concurrent tasks, mirroring the Redis ones: producers add
//! distinct keys, consumers get and end them (`end_then_next`, taking the
//! next key in the same trip) until every key was seen, each exactly once.
//!
//! Besides items/s, each run reports the statements the queue sent during
//! the timed part ([`PostgresQueue::statements`]) and, when the database
//! had no other client around the run, the `pg_stat_database` delta
//! ([`ServerCounts`]), read the way the Node.js peers' drivers read it:
//! on fresh side connections once no other client backend is connected,
//! minus the cost of that framing measured with nothing in between.

use crate::{BenchError, Measurement};
use requeue::engine::{QueueError, Then};
use requeue_postgres::PostgresQueue;
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The concurrency levels `requeue bench --engine postgres` runs.
pub const POSTGRES_WORKERS: [usize; 3] = [1, 8, 32];

/// How long the framing waits for the database's other clients to go.
const QUIET_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once a wait for quiet timed out: later runs of this process skip
/// the server counters instead of waiting again (a database other
/// clients use stays busy).
static BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The engine name of a requeue-postgres measurement with `workers` tasks.
pub fn postgres_engine_name(workers: usize) -> &'static str {
    match workers {
        1 => "requeue-postgres x1",
        8 => "requeue-postgres x8",
        32 => "requeue-postgres x32",
        _ => "requeue-postgres",
    }
}

/// The `pg_stat_database` counters of one database (or a delta of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// `xact_commit + xact_rollback`.
    pub xacts: i64,
    /// `xact_rollback`.
    pub rollbacks: i64,
    /// `tup_inserted`.
    pub inserted: i64,
    /// `tup_updated`.
    pub updated: i64,
    /// `tup_deleted`.
    pub deleted: i64,
    /// `tup_returned`.
    pub returned: i64,
    /// `tup_fetched`.
    pub fetched: i64,
}

impl ServerCounts {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &ServerCounts) -> ServerCounts {
        ServerCounts {
            xacts: self.xacts - earlier.xacts,
            rollbacks: self.rollbacks - earlier.rollbacks,
            inserted: self.inserted - earlier.inserted,
            updated: self.updated - earlier.updated,
            deleted: self.deleted - earlier.deleted,
            returned: self.returned - earlier.returned,
            fetched: self.fetched - earlier.fetched,
        }
    }

    /// Transactions per item.
    pub fn xacts_per_item(&self, items: u64) -> f64 {
        self.xacts as f64 / items.max(1) as f64
    }
}

/// One timed run on PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct PgRun {
    /// Items and wall time of the timed part.
    pub measurement: Measurement,
    /// Statements (round trips) the queue sent while the clock ran.
    pub statements: u64,
    /// The `pg_stat_database` delta of the run, framing taken off; `None`
    /// when other clients of the database did not leave within 10 s (then
    /// for every later run of the process too).
    pub server: Option<ServerCounts>,
}

impl PgRun {
    /// Statements sent per item.
    pub fn statements_per_item(&self) -> f64 {
        self.statements as f64 / self.measurement.items.max(1) as f64
    }

    /// Server transactions per item, when they were read.
    pub fn xacts_per_item(&self) -> Option<f64> {
        self.server
            .map(|s| s.xacts_per_item(self.measurement.items))
    }
}

/// A failure of the PostgreSQL engine (or its runtime), with every cause once.
fn pg_failed(workload: &'static str, error: impl std::error::Error + 'static) -> BenchError {
    BenchError::Engine {
        workload,
        detail: requeue_redis::error::Chain(&error).to_string(),
    }
}

fn runtime(workload: &'static str) -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| pg_failed(workload, e))
}

/// W1 on PostgreSQL: `workers` producers add `n` distinct keys, then
/// `workers` consumers take and end them all. ops = 3N.
pub fn w1_postgres(url: &str, n: u64, workers: usize) -> Result<PgRun, BenchError> {
    run_timed("W1", url, n, workers, false)
}

/// W3 on PostgreSQL: `workers` producers add `n` keys while `workers`
/// consumers take and end them. ops = N.
pub fn w3_postgres(url: &str, n: u64, workers: usize) -> Result<PgRun, BenchError> {
    run_timed("W3", url, n, workers, true)
}

/// The statements and wall time of W1 or W3 at `url`, with the server
/// counters read around it.
fn run_timed(
    workload: &'static str,
    url: &str,
    n: u64,
    workers: usize,
    concurrent: bool,
) -> Result<PgRun, BenchError> {
    runtime(workload)?.block_on(async {
        let framing = Framing::start(workload, url).await?;
        let name = format!("bench-{}-{:016x}", std::process::id(), fastrand::u64(..));
        let queue = PostgresQueue::<String>::builder(url, name)
            .build()
            .await
            .map_err(|e| pg_failed(workload, e))?;
        let before = queue.statements();
        let start = Instant::now();
        let producers: Vec<_> = shares(n, workers)
            .into_iter()
            .map(|range| tokio::spawn(produce(workload, queue.clone(), range)))
            .collect();
        let joined = async {
            for producer in producers {
                producer.await.map_err(|e| pg_failed(workload, e))??;
            }
            Ok::<(), BenchError>(())
        };
        if concurrent {
            let (consumed, produced) = tokio::join!(consume(workload, &queue, n, workers), joined);
            consumed?;
            produced?;
        } else {
            joined.await?;
            consume(workload, &queue, n, workers).await?;
        }
        let wall = start.elapsed();
        let statements = queue.statements().saturating_sub(before);
        // The queue's connections close as it goes (the "after" read waits
        // for them, so that their counters reach pg_stat_database).
        drop(queue);
        let server = framing.finish(workload).await?;
        let ops = if concurrent { n } else { 3 * n };
        let measurement =
            Measurement::new(workload, postgres_engine_name(workers), ops, n, wall).with_memory();
        Ok(PgRun {
            measurement,
            statements,
            server,
        })
    })
}

/// Splits `0..n` into `parts` contiguous ranges.
fn shares(n: u64, parts: usize) -> Vec<std::ops::Range<u64>> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|p| (n * p / parts)..(n * (p + 1) / parts))
        .collect()
}

/// Producers: add keys `range` one call at a time.
async fn produce(
    workload: &'static str,
    queue: PostgresQueue<String>,
    range: std::ops::Range<u64>,
) -> Result<(), BenchError> {
    for i in range {
        queue
            .add(format!("key-{i}"))
            .await
            .map_err(|e| pg_failed(workload, e))?;
    }
    Ok(())
}

/// Consumers: take items until `n` were seen, each exactly once.
async fn consume(
    workload: &'static str,
    queue: &PostgresQueue<String>,
    n: u64,
    workers: usize,
) -> Result<(), BenchError> {
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let count = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, seen, count) = (queue.clone(), seen.clone(), count.clone());
            tokio::spawn(async move {
                let mut next = None;
                loop {
                    let item = match next.take() {
                        Some(item) => item,
                        None => match queue.get().await {
                            Ok(item) => item,
                            Err(QueueError::ShutDown) => return Ok(()),
                            Err(e) => return Err(pg_failed(workload, e)),
                        },
                    };
                    let fresh = match seen.lock() {
                        Ok(mut set) => set.insert((*item).clone()),
                        Err(poisoned) => poisoned.into_inner().insert((*item).clone()),
                    };
                    if !fresh {
                        return Err(BenchError::Duplicate {
                            workload,
                            key: (*item).clone(),
                            detail: "handed out twice".into(),
                        });
                    }
                    let (ended, following) = item.end_then_next(Then::Done).await;
                    ended.map_err(|e| pg_failed(workload, e))?;
                    next = following;
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        queue.shut_down();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| pg_failed(workload, e))??;
    }
    let got = count.load(Ordering::SeqCst);
    if got != n {
        return Err(BenchError::Lost {
            workload,
            expected: n,
            got,
        });
    }
    Ok(())
}

/// The server counters around a run: read once the database's other
/// clients are gone, minus what the framing itself costs.
struct Framing {
    url: String,
    /// `None`: other clients stayed; no counters for this run.
    before: Option<ServerCounts>,
    overhead: ServerCounts,
}

impl Framing {
    async fn start(workload: &'static str, url: &str) -> Result<Framing, BenchError> {
        let quiet = |url| async move { wait_quiet(url).await };
        // The framing alone, measured right before: wait, read, wait, read.
        let mut overhead = ServerCounts::default();
        let mut before = None;
        if !BUSY.load(Ordering::Relaxed) && quiet(url).await.map_err(|e| pg_failed(workload, e))? {
            let a = read_counters(url)
                .await
                .map_err(|e| pg_failed(workload, e))?;
            if quiet(url).await.map_err(|e| pg_failed(workload, e))? {
                let b = read_counters(url)
                    .await
                    .map_err(|e| pg_failed(workload, e))?;
                overhead = b.since(&a);
                if quiet(url).await.map_err(|e| pg_failed(workload, e))? {
                    before = Some(
                        read_counters(url)
                            .await
                            .map_err(|e| pg_failed(workload, e))?,
                    );
                }
            }
        }
        Ok(Framing {
            url: url.to_string(),
            before,
            overhead,
        })
    }

    async fn finish(self, workload: &'static str) -> Result<Option<ServerCounts>, BenchError> {
        let Some(before) = self.before else {
            return Ok(None);
        };
        if !wait_quiet(&self.url)
            .await
            .map_err(|e| pg_failed(workload, e))?
        {
            return Ok(None);
        }
        let after = read_counters(&self.url)
            .await
            .map_err(|e| pg_failed(workload, e))?;
        Ok(Some(after.since(&before).since(&self.overhead)))
    }
}

/// Waits (at most [`QUIET_TIMEOUT`]) until no other client backend is
/// connected to the database; `false` if some stayed.
async fn wait_quiet(url: &str) -> Result<bool, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let deadline = Instant::now() + QUIET_TIMEOUT;
    let quiet = loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .fetch_one(&mut conn)
        .await?;
        if others == 0 {
            break true;
        }
        if Instant::now() > deadline {
            BUSY.store(true, Ordering::Relaxed);
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    conn.close().await?;
    Ok(quiet)
}

/// The database's `pg_stat_database` counters, on a fresh connection.
async fn read_counters(url: &str) -> Result<ServerCounts, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT xact_commit + xact_rollback, xact_rollback, tup_inserted, tup_updated, \
         tup_deleted, tup_returned, tup_fetched \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    let (xacts, rollbacks, inserted, updated, deleted, returned, fetched) = row;
    Ok(ServerCounts {
        xacts,
        rollbacks,
        inserted,
        updated,
        deleted,
        returned,
        fetched,
    })
}

/// How long an add takes to reach a getter that waits on an idle queue
/// (see `idle.rs`): the getter waits for the queue's NOTIFY.
pub fn idle_handout_postgres(url: &str, samples: u64) -> Result<Measurement, BenchError> {
    use crate::idle::{WORKLOAD, idle_handout};
    runtime(WORKLOAD)?.block_on(async {
        let name = format!("bench-idle-{}-{}", std::process::id(), fastrand::u32(..));
        let build = || async {
            PostgresQueue::<String>::builder(url, name.clone())
                .build()
                .await
                .map_err(|e| pg_failed(WORKLOAD, e))
        };
        let (adder, getter) = (build().await?, build().await?);
        idle_handout(&adder, &getter, samples, "requeue-postgres idle", |w, e| {
            pg_failed(w, e)
        })
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use requeue_postgres::local_server::LocalServer;

    /// W3 on a throwaway server: every key seen exactly once (the workload
    /// checks it), and the counts add up. Correctness only, never timing.
    #[test]
    fn w3_hands_out_every_key_once_on_a_local_server() {
        let server = match LocalServer::start() {
            Ok(server) => server,
            Err(e) => panic!("cannot start a local PostgreSQL: {e}"),
        };
        for workers in [1, 8] {
            let run = w3_postgres(&server.url(), 500, workers).expect("W3 on PostgreSQL");
            assert_eq!(run.measurement.items, 500);
            assert_eq!(run.measurement.ops, 500);
            assert!(run.statements > 0, "{run:?}");
        }
        let run = w1_postgres(&server.url(), 300, 8).expect("W1 on PostgreSQL");
        assert_eq!(run.measurement.ops, 900);
        let server_counts = run.server.expect("nothing else uses the database");
        assert!(server_counts.inserted >= 300, "{server_counts:?}");
    }
}
