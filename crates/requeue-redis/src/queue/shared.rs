//! The state one process keeps for a Redis queue: the connection, the
//! leases it holds, and the signals its getters and background tasks
//! wait on. Everything durable lives in Redis; this is only what a
//! process needs to renew its leases and to wait without polling.

use super::connection::Conn;
use crate::keys::QueueKeys;
use crate::ops::{GetArgs, LimiterSpec, Now, Token};
use requeue::clock::SharedClock;
use requeue::engine::QueueError;
use requeue::engine::codec::KeyCodec;
use requeue::engine::remote::LeaseKeeper;
use requeue::limiter::RateLimiter;
use requeue::metrics::QueueMetrics;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Which clock the scripts read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Time {
    /// Redis's `TIME` (production).
    Server,
    /// The queue's (fake) clock, as ms since `epoch` plus a base.
    Fake,
}

/// Counters of what this process saw (for metrics and tests).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) reaped: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    /// Calls sent to Redis (round trips; a pipeline batch is one).
    pub(crate) calls: AtomicU64,
}

/// The process-local side of one queue.
pub(crate) struct Shared<T> {
    pub(crate) name: String,
    /// For logs and `Debug`: without credentials.
    pub(crate) url: crate::redact::RedactedUrl,
    pub(crate) keys: QueueKeys,
    /// The scripts' connection (one server, a cluster, or the sentinels' master).
    pub(crate) conn: Conn,
    pub(crate) codec: Arc<dyn KeyCodec<T>>,
    pub(crate) clock: SharedClock,
    pub(crate) time: Time,
    pub(crate) limiter: LimiterSpec,
    /// A limiter of this process's own (`RedisQueueBuilder::rate_limiter`):
    /// when set, rate-limited adds ask it instead of `limiter`, and its
    /// state (failure counts, bucket) lives here, not in Redis.
    pub(crate) local_limiter: Option<Arc<dyn RateLimiter<T>>>,
    pub(crate) get_args: GetArgs,
    /// The runtime every Redis call runs on (see `RedisQueue`'s docs).
    pub(crate) runtime: tokio::runtime::Handle,
    /// The leases this process holds (one per item: in at hand-out, out
    /// when the item's guard ends the lease, whatever the outcome, or by
    /// `shut_down_and_release`, so the caller's workers bound it; renewals
    /// send it in `MAX_BATCH` chunks), and the connection's health.
    pub(crate) keeper: LeaseKeeper<Token>,
    /// Signalled when items may be ready (marker popped, shutdown).
    pub(crate) ready: Notify,
    /// Getters waiting for an item; the marker waiter only blocks while
    /// there are some, so a wake-up is never spent on a busy process.
    pub(crate) idle: AtomicUsize,
    pub(crate) idle_changed: Notify,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) stats: Stats,
    /// client-go's metrics (plus the lease counters), if a provider was given.
    pub(crate) metrics: Option<QueueMetrics>,
    /// Items fetched ahead for workers about to ask (see `ahead`).
    pub(crate) ahead: super::ahead::Ahead,
    /// Where adds, dones and gets are coalesced; set once when the queue starts.
    pub(crate) pipeline: std::sync::OnceLock<super::pipeline::Pipeline>,
}

/// The fake-time base, so fake ms look like (and sort like) real ones.
const FAKE_BASE_MS: u64 = 1_000_000_000_000;

impl<T: Send + Sync + 'static> Shared<T> {
    /// The local limiter's delay for re-adding `item` rate-limited, if
    /// this queue has one (a remote limiter answers in the script).
    pub(crate) fn local_delay(&self, item: &T) -> Option<Duration> {
        self.local_limiter
            .as_ref()
            .map(|limiter| limiter.when(item))
    }

    /// Clears `item`'s history in the local limiter, if any.
    pub(crate) fn local_forget(&self, item: &T) {
        if let Some(limiter) = &self.local_limiter {
            limiter.forget(item);
        }
    }

    /// Milliseconds on the queue's clock since the queue was built.
    pub(crate) fn local_ms(&self) -> u64 {
        self.keeper.local_ms()
    }

    /// The `now` argument of the next script call.
    pub(crate) fn now(&self) -> Now {
        match self.time {
            Time::Server => Now::Server,
            Time::Fake => Now::Fake(FAKE_BASE_MS + self.local_ms()),
        }
    }

    /// Whether this process has stopped taking work.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Runs `call` with a connection, on the queue's runtime, so callers on
    /// any executor (or a blocked thread) can await it. A failure marks the
    /// connection unhealthy and wakes the renewer.
    pub(crate) async fn call<R, F, Fut>(self: &Arc<Self>, call: F) -> Result<R, QueueError>
    where
        R: Send + 'static,
        F: FnOnce(Conn, Arc<Self>) -> Fut,
        Fut: Future<Output = Result<R, crate::error::Error>> + Send + 'static,
    {
        let fut = call(self.conn.clone(), self.clone());
        let result = match self.runtime.spawn(fut).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => return Err(QueueError::backend("the queue's engine has stopped")),
        };
        self.outcome(result)
    }

    /// As [`call`](Shared::call), for a caller already running on the
    /// queue's runtime (the pipeline's tasks): no hop to another task.
    pub(crate) async fn call_here<R, F, Fut>(self: &Arc<Self>, call: F) -> Result<R, QueueError>
    where
        F: FnOnce(Conn, Arc<Self>) -> Fut,
        Fut: Future<Output = Result<R, crate::error::Error>>,
    {
        let result = call(self.conn.clone(), self.clone()).await;
        self.outcome(result)
    }

    /// Counts a call and turns its error into the engine's words; a
    /// connection error marks the connection unhealthy and wakes the renewer.
    fn outcome<R>(&self, result: Result<R, crate::error::Error>) -> Result<R, QueueError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        result.map_err(|error| {
            self.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
            if is_connection_error(&error) {
                self.keeper.connection_failed();
            }
            match error {
                crate::error::Error::Corrupt {
                    key,
                    field,
                    problem,
                } => QueueError::Corrupt {
                    key,
                    field,
                    problem,
                },
                error => QueueError::backend(error),
            }
        })
    }

    /// Reports to the metrics, if any.
    pub(crate) fn report(&self, f: impl FnOnce(&QueueMetrics)) {
        if let Some(metrics) = &self.metrics {
            f(metrics);
        }
    }

    /// The coalescing pipeline (set when the queue starts).
    pub(crate) fn pipeline(&self) -> Result<&super::pipeline::Pipeline, QueueError> {
        self.pipeline
            .get()
            .ok_or_else(|| QueueError::backend("the queue's engine has not started"))
    }

    /// Gives fetched-ahead items back to the head of the queue (in the
    /// background; if that fails their leases run out).
    pub(crate) fn give_back_ahead(self: &Arc<Self>, items: Vec<super::ahead::Fetched>)
    where
        T: requeue::queue::Key,
    {
        if items.is_empty() {
            return;
        }
        let pairs: Vec<_> = items
            .into_iter()
            .map(|fetched| {
                self.keeper
                    .forget(&fetched.leased.item, fetched.leased.token);
                (fetched.leased.item, fetched.leased.token)
            })
            .collect();
        let shared = self.clone();
        self.runtime.spawn(async move {
            for (raw, token) in pairs {
                let released =
                    requeue::engine::remote::LeaseEngine::release(shared.clone(), raw, token).await;
                if let Err(error) = released {
                    tracing::debug!(queue = %shared.name, %error, "cannot give back an item fetched ahead; it comes back when its lease expires");
                }
            }
        });
    }

    /// Counts what a batch reported: reaped leases and the depth.
    pub(crate) fn observe_batch(&self, reply: &crate::ops::BatchReply) {
        self.stats.reaped.fetch_add(reply.reaped, Ordering::Relaxed);
        self.report(|m| {
            for _ in 0..reply.reaped {
                m.lease_expired.inc();
            }
            if let Some(depth) = reply.depth {
                m.depth.set_value(i64::try_from(depth).unwrap_or(i64::MAX));
            }
        });
    }

    /// Reports the queue depth a script returned.
    pub(crate) fn report_depth(&self, depth: u64) {
        self.report(|m| m.depth.set_value(i64::try_from(depth).unwrap_or(i64::MAX)));
    }
}

/// Whether an error means the connection (not the request) failed, or the
/// deployment cannot serve the queue for now: a failover or a slot
/// migration in progress (which the cluster and sentinel connections
/// retry for a while before giving up), or a master refusing writes
/// because too few replicas are connected (`min-replicas-to-write`).
/// Either way leases are renewed first once it serves again.
pub(crate) fn is_connection_error(error: &crate::error::Error) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    match error {
        crate::error::Error::Redis(e) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || matches!(
                    e.kind(),
                    ErrorKind::Server(
                        ServerErrorKind::TryAgain
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::ReadOnly
                            | ServerErrorKind::BusyLoading
                    )
                )
                || e.code() == Some("NOREPLICAS")
        }
        crate::error::Error::Connect { .. } => true,
        _ => false,
    }
}
