//! The state one process keeps for a PostgreSQL queue: the pool, the
//! leases it holds, and the signals its getters wait on. Everything
//! durable lives in the database; this is only what a process needs to
//! renew its leases and to wait without polling.

use super::batch::Batcher;
use super::sql::Sql;
use crate::error::Error;
use requeue::clock::SharedClock;
use requeue::engine::QueueError;
use requeue::engine::codec::KeyCodec;
use requeue::engine::remote::LeaseKeeper;
use requeue::limiter::LimiterSpec;
use requeue::metrics::QueueMetrics;
use requeue::redact::RedactedUrl;
use sqlx::PgPool;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A lease's fencing token: the database sequence's number (monotonic,
/// what [`Item::token`](requeue::queue::Item::token) shows) and the
/// random nonce the claiming process drew when its queue was built
/// (which tells two leases apart should a failover to a standby that
/// missed the last claims hand a number out twice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PgToken {
    /// The sequence number: larger for every later lease of a key.
    pub token: i64,
    /// The claiming call's nonce.
    pub nonce: i64,
}

impl fmt::Display for PgToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.token)
    }
}

/// Counters of what this process saw (for tests and `Debug`).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Statements sent (round trips; one batch counts once), renewals excluded.
    pub(crate) calls: AtomicU64,
    /// Expired leases (of any process) this process's batches reaped.
    pub(crate) reaped: AtomicU64,
}

/// The fake-time base in µs, so fake times look like (and sort like) real ones.
const FAKE_BASE_US: i64 = 1_000_000_000_000_000;

/// The process-local side of one queue.
pub(crate) struct Shared<T> {
    pub(crate) name: String,
    /// For logs and `Debug`: without credentials.
    pub(crate) url: RedactedUrl,
    /// The queue's row id.
    pub(crate) queue_id: i32,
    /// The statements, with the schema in them.
    pub(crate) sql: Sql,
    pub(crate) pool: PgPool,
    pub(crate) codec: Arc<dyn KeyCodec<T>>,
    pub(crate) clock: SharedClock,
    /// Statements read the queue's (fake) clock instead of the server's.
    pub(crate) fake_time: bool,
    pub(crate) limiter: LimiterSpec,
    /// A reaped lease's backoff: (base, max) in µs.
    pub(crate) reap_backoff: (i64, i64),
    /// How many expired leases one batch reaps, and due items it promotes.
    pub(crate) batch_limit: i32,
    /// The runtime every statement runs on (see `PostgresQueue`'s docs).
    pub(crate) runtime: tokio::runtime::Handle,
    /// The leases this process holds (one per item: in at hand-out, out
    /// when the item's guard ends the lease, so the caller's workers
    /// bound it), and the connection's health.
    pub(crate) keeper: LeaseKeeper<PgToken>,
    /// Signalled when items may be ready (a NOTIFY for this queue, the
    /// listener reconnecting, shutdown).
    pub(crate) ready: Notify,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) stats: Stats,
    pub(crate) metrics: Option<QueueMetrics>,
    /// Where adds, dones and gets are coalesced; set once when the queue starts.
    pub(crate) batcher: std::sync::OnceLock<Batcher>,
    /// Local ms of the last batch that reaped (see `Shared::reap_now`).
    pub(crate) last_reap_ms: AtomicU64,
    /// This process's nonce, in every lease it claims (see `PgToken`): a
    /// batch spares this nonce's expired leases while the renewer is
    /// behind (see `renewed_lately`).
    pub(crate) nonce: i64,
    /// The fairness budget between priorities (`None`: strict order).
    pub(crate) fairness: Option<i32>,
    /// Consecutive hand-outs of this process that passed over an older,
    /// lower-priority item (see `claim_fair` in migration 0003).
    pub(crate) passed_over: std::sync::atomic::AtomicU32,
    /// Local ms at which the renewer's last successful round was sent.
    pub(crate) last_renewed_ms: AtomicU64,
    /// Set by `try_get`: the next batch reaps whatever has expired.
    pub(crate) force_reap: AtomicBool,
    /// The schema's NOTIFY channel (its plain name).
    pub(crate) channel: String,
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// The `p_now` argument of the next statement: `None` (the server's
    /// clock) unless the queue runs on fake time.
    pub(crate) fn now(&self) -> Option<i64> {
        self.fake_time.then(|| {
            let us = i64::try_from(self.keeper.local_ms())
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000);
            FAKE_BASE_US.saturating_add(us)
        })
    }

    /// Whether the next batch should reap expired leases: at most every
    /// eighth of a lease (a dead holder's items come back within a lease
    /// and an eighth), or when `try_get` asked for it.
    pub(crate) fn reap_now(&self) -> bool {
        let now = self.keeper.local_ms();
        let last = self.last_reap_ms.load(Ordering::Relaxed);
        let period = u64::try_from(self.keeper.lease().as_millis() / 8).unwrap_or(u64::MAX);
        let forced = self.force_reap.swap(false, Ordering::Relaxed);
        if forced || now.saturating_sub(last) >= period || last == 0 {
            self.last_reap_ms.store(now.max(1), Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Whether the renewer's last success was sent less than half a lease
    /// ago, so every lease in the table runs for at least half a lease
    /// more (the renewer runs each third of a lease).
    pub(crate) fn renewed_lately(&self) -> bool {
        let last = self.last_renewed_ms.load(Ordering::Relaxed);
        let half = u64::try_from(self.keeper.lease().as_millis() / 2).unwrap_or(u64::MAX);
        self.keeper.local_ms().saturating_sub(last) < half
    }

    /// Whether this process has stopped taking work.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// The key as the `text` the table stores: the codec's bytes, which
    /// must be UTF-8 without NUL (requeue's JSON and UTF-8 codecs are).
    pub(crate) fn key_text(&self, item: &T) -> Result<String, QueueError> {
        text_of(self.codec.encode(item))
    }

    /// Runs `call` on the queue's runtime, so callers on any executor (or
    /// a blocked thread) can await it. A connection failure marks the
    /// connection unhealthy and wakes the renewer.
    pub(crate) async fn call<R, F, Fut>(self: &Arc<Self>, call: F) -> Result<R, QueueError>
    where
        R: Send + 'static,
        F: FnOnce(Arc<Self>) -> Fut,
        Fut: Future<Output = Result<R, sqlx::Error>> + Send + 'static,
    {
        let fut = call(self.clone());
        let result = match self.runtime.spawn(fut).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => return Err(QueueError::backend("the queue's engine has stopped")),
        };
        self.outcome(result)
    }

    /// Counts a statement and turns its error into the engine's words.
    pub(crate) fn outcome<R>(&self, result: Result<R, sqlx::Error>) -> Result<R, QueueError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        result.map_err(|error| {
            if is_connection_error(&error) {
                self.keeper.connection_failed();
            }
            QueueError::backend(Error::Db(error))
        })
    }

    /// Reports to the metrics, if any.
    pub(crate) fn report(&self, f: impl FnOnce(&QueueMetrics)) {
        if let Some(metrics) = &self.metrics {
            f(metrics);
        }
    }

    /// The coalescing batcher (set when the queue starts).
    pub(crate) fn batcher(&self) -> Result<&Batcher, QueueError> {
        self.batcher
            .get()
            .ok_or_else(|| QueueError::backend("the queue's engine has not started"))
    }

    /// The lease duration in µs.
    pub(crate) fn lease_us(&self) -> i64 {
        micros(self.keeper.lease())
    }
}

/// A key's bytes as PostgreSQL text, or why they cannot be.
pub(crate) fn text_of(raw: Vec<u8>) -> Result<String, QueueError> {
    let text = String::from_utf8(raw)
        .map_err(|_| QueueError::backend(Error::KeyNotText("it is not UTF-8")))?;
    if text.contains('\0') {
        return Err(QueueError::backend(Error::KeyNotText(
            "it contains a NUL byte",
        )));
    }
    Ok(text)
}

/// A duration in whole µs, rounded up so a delay is never shortened, and
/// clamped to what a bigint holds.
pub(crate) fn micros(delay: Duration) -> i64 {
    i64::try_from(delay.as_nanos().div_ceil(1_000)).unwrap_or(i64::MAX)
}

/// Whether an error means the connection (not the statement) failed:
/// the server is gone, restarting, or terminated our backend. Leases are
/// renewed first once it answers again.
pub(crate) fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01..03: admin shutdown, crash
            // shutdown, cannot connect now (pg_terminate_backend, restarts).
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}
