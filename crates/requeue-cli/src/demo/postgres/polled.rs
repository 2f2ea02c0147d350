//! The queue's numbers, read from its tables at the view's period (the
//! depth, in-flight and delayed figures, the reaped leases and retries),
//! and the end of the run: the last reading, the never-reconciled keys
//! still queued, and deleting the queue's rows.

use super::super::fleet::Fleet;
use super::super::health::Health;
use super::super::sample::{Gauge, TOP};
use super::server::SCHEMA;
use requeue::queue::QueueSnapshot;
use requeue::wait::Stop;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the end of the run found.
pub struct End {
    /// The last reading succeeded (the numbers are the database's at the end).
    pub read: bool,
    /// Never-reconciled keys still queued (0 if unknown).
    pub unreconciled_but_queued: usize,
    /// The queue's rows: deleted, kept, or why not deleted.
    pub deleted: Result<bool, String>,
}

/// Reads the queue once more, counts the never-reconciled keys still in
/// it, and deletes its rows (unless `keep`).
pub async fn finish(polled: &Polled, fleet: &Fleet, keep: bool) -> End {
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
pub struct Polled {
    pool: sqlx::PgPool,
    queue_id: i32,
    latest: Mutex<Reading>,
    health: Arc<Health>,
}

impl Polled {
    /// Reads the queue `name` through `pool`; tells its failures to `health`.
    pub async fn new(
        pool: sqlx::PgPool,
        name: &str,
        health: Arc<Health>,
    ) -> Result<Self, sqlx::Error> {
        let queue_id: i32 =
            sqlx::query_scalar(&format!("SELECT id FROM {SCHEMA}.queues WHERE name = $1"))
                .bind(name)
                .fetch_one(&pool)
                .await?;
        Ok(Polled {
            pool,
            queue_id,
            latest: Mutex::default(),
            health,
        })
    }

    /// Keys leased as last read (`None` before a reading succeeded).
    pub fn leased(&self) -> Option<usize> {
        self.lock().snapshot.map(|s| s.processing)
    }

    /// Reads every `period` until `stop` fires.
    pub async fn run(&self, fleet: &Fleet, period: Duration, stop: &Stop) {
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
