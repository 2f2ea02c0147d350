//! The queue's numbers on Redis: a task reads them at the view's period on
//! a connection of its own — one atomic `inspect` (depth, parked, delayed,
//! leases in flight, Redis' counters of reaped leases and retries) plus
//! the retry counts of the keys the view lists — and the view takes the
//! latest reading without waiting. The same task keeps a TTL on the
//! queue's keys, and tells [`Health`] whether Redis answers: the
//! connection reconnects by itself, and each reading gives up after
//! [`CALL_TIMEOUT`](super::server::CALL_TIMEOUT), so neither a restart nor
//! a frozen server freezes the view.

use super::super::fleet::Fleet;
use super::super::health::Health;
use super::super::sample::{Gauge, TOP};
use super::leftover;
use super::server;
use redis::aio::ConnectionManager;
use requeue::queue::QueueSnapshot;
use requeue::wait::Stop;
use requeue_redis::error::Error;
use requeue_redis::inspect::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::ops;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The latest reading.
#[derive(Debug, Default)]
struct Reading {
    snapshot: Option<QueueSnapshot>,
    reaped: u64,
    retries: u64,
    /// At most [`TOP`] keys: replaced whole at each reading.
    requeues: HashMap<String, u32>,
}

/// The Redis queue's numbers as last read.
#[derive(Debug)]
pub struct Polled {
    keys: QueueKeys,
    latest: Mutex<Reading>,
    health: Arc<Health>,
    /// When the run is planned to end: the keys' TTL runs to then plus
    /// [`leftover::TTL_MARGIN`].
    end: Instant,
}

impl Polled {
    /// Nothing read yet: the view shows zeros until the first reading.
    pub fn new(keys: QueueKeys, health: Arc<Health>, end: Instant) -> Self {
        Polled {
            keys,
            latest: Mutex::default(),
            health,
            end,
        }
    }

    /// Reads the queue once (within the call timeout) and tells
    /// [`Health`] how it went. On an error the previous reading stays.
    pub async fn read(&self, conn: &ConnectionManager, fleet: &Fleet) -> bool {
        self.call(|| {
            let mut conn = conn.clone();
            async move { self.read_once(&mut conn, fleet).await }
        })
        .await
    }

    /// Sets the keys' TTL once (within the call timeout).
    pub async fn expire(&self, conn: &ConnectionManager) -> bool {
        let ttl = self.end.saturating_duration_since(Instant::now()) + leftover::TTL_MARGIN;
        self.call(|| {
            let mut conn = conn.clone();
            async move {
                leftover::expire(&mut conn, &self.keys, ttl)
                    .await
                    .map_err(Error::from)
            }
        })
        .await
    }

    /// Makes a call (within the call timeout) and tells [`Health`] how it
    /// went. A call that meets a dropped connection (`CLIENT KILL`, a
    /// restarted server) is made once more at once, on the connection the
    /// manager makes anew: only if that fails too is Redis unreachable.
    async fn call<Fut>(&self, call: impl Fn() -> Fut) -> bool
    where
        Fut: Future<Output = Result<(), Error>>,
    {
        let began = Instant::now();
        let result = match server::within(call()).await {
            Err(Error::Redis(e)) if e.is_connection_dropped() => {
                let again = server::within(call()).await;
                if again.is_ok() {
                    self.health.connection_cut();
                }
                again
            }
            other => other,
        };
        match &result {
            Ok(()) => self.health.redis_ok(),
            Err(error @ Error::Corrupt { .. }) => self.health.corrupt(&error.to_string(), None),
            Err(error) if server::is_unreachable(error) => {
                self.health.redis_failed(&error.to_string(), began);
            }
            Err(error) => self
                .health
                .warn_once(format!("warning: cannot read the queue's numbers: {error}")),
        }
        result.is_ok()
    }

    async fn read_once(&self, conn: &mut ConnectionManager, fleet: &Fleet) -> Result<(), Error> {
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
            retries: state.retries_total,
            requeues,
        };
        Ok(())
    }

    /// Sets the keys' TTL and reads the queue every `period` until `stop`
    /// fires (a call under way when it fires is dropped). The scripts
    /// delete a key that empties (the leases' two keys, say, whenever no
    /// key is in flight) and make it anew without a TTL, so the TTL is set
    /// at every round: a key goes without one for at most a period.
    pub async fn run(&self, conn: ConnectionManager, fleet: &Fleet, period: Duration, stop: &Stop) {
        loop {
            let round = async {
                self.expire(&conn).await;
                // A failed read keeps the previous numbers; the next may succeed.
                self.read(&conn, fleet).await;
                tokio::time::sleep(period).await;
            };
            tokio::select! {
                biased;
                _ = stop.stopped() => return,
                _ = round => {}
            }
        }
    }

    /// Leases held in Redis as last read.
    pub fn leased(&self) -> Option<usize> {
        self.lock().snapshot.map(|s| s.processing)
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

    fn redis_counters(&self) -> Option<(u64, u64)> {
        let reading = self.lock();
        Some((reading.reaped, reading.retries))
    }
}
