//! The queue's numbers on Redis: a task reads them at the view's period on
//! a connection of its own — one atomic `inspect` (depth, parked, delayed,
//! leases in flight, reaped ever) plus the retry counts of the keys the
//! view lists — and the view takes the latest reading without waiting.

use super::super::fleet::Fleet;
use super::super::sample::{Gauge, TOP};
use redis::aio::MultiplexedConnection;
use requeue::queue::QueueSnapshot;
use requeue::wait::Stop;
use requeue_redis::inspect::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::ops;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The latest reading.
#[derive(Debug, Default)]
struct Reading {
    snapshot: Option<QueueSnapshot>,
    reaped: u64,
    requeues: HashMap<String, u32>,
}

/// The Redis queue's numbers as last read.
#[derive(Debug)]
pub struct Polled {
    keys: QueueKeys,
    latest: Mutex<Reading>,
}

impl Polled {
    /// Nothing read yet: the view shows zeros until the first reading.
    pub fn new(keys: QueueKeys) -> Self {
        Polled {
            keys,
            latest: Mutex::default(),
        }
    }

    /// Reads the queue once. On an error the previous reading stays.
    pub async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        fleet: &Fleet,
    ) -> Result<(), requeue_redis::error::Error> {
        let state = inspect(conn, &self.keys, 0).await?;
        let mut requeues = HashMap::new();
        for (key, _) in fleet.most_retried(TOP) {
            let n = ops::num_requeues(conn, &self.keys, key.as_bytes()).await?;
            requeues.insert(key.to_string(), u32::try_from(n).unwrap_or(u32::MAX));
        }
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let snapshot = QueueSnapshot {
            ready: size(state.depth),
            processing: size(state.processing_count),
            added_while_processing: size(state.parked),
            delayed: size(state.delayed),
            // Redis keeps no count of waiting getters.
            waiting_gets: 0,
            shutting_down: false,
        };
        *self.lock() = Reading {
            snapshot: Some(snapshot),
            reaped: state.lease_expired_total,
            requeues,
        };
        Ok(())
    }

    /// Reads every `period` until `stop` fires.
    pub async fn run(
        &self,
        mut conn: MultiplexedConnection,
        fleet: &Fleet,
        period: Duration,
        stop: &Stop,
    ) {
        loop {
            // A failed read keeps the previous numbers; the next may succeed.
            let _ = self.read(&mut conn, fleet).await;
            tokio::select! {
                biased;
                _ = stop.stopped() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
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

    fn leases_reaped(&self) -> Option<u64> {
        Some(self.lock().reaped)
    }
}
