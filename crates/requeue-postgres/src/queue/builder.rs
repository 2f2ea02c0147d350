//! Configuring and connecting a [`PostgresQueue`].

use super::batch::Batcher;
use super::shared::{Shared, Stats, micros};
use super::sql::Sql;
use super::{Engine, PostgresQueue, listen};
use crate::error::Error;
use crate::schema::{SchemaName, migrate};
use requeue::clock::{FakeClock, SharedClock};
use requeue::engine::codec::{DefaultCodec, KeyCodec};
use requeue::engine::remote::{self, LeaseKeeper};
use requeue::limiter::LimiterSpec;
use requeue::metrics::{MetricsProvider, QueueMetrics};
use requeue::queue::Key;
use requeue::redact::RedactedUrl;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The default lease, as the Redis engine's.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The default pool size: the wake-up listener's connection, the
/// batcher's statements in flight, the renewer, and room for the other
/// calls.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// Builds a [`PostgresQueue`]; see [`PostgresQueue::builder`]. Its
/// `Debug` shows the URL without credentials.
pub struct PostgresQueueBuilder<T> {
    url: String,
    pool: Option<PgPool>,
    name: String,
    schema: SchemaName,
    migrate: bool,
    lease: Duration,
    limiter: LimiterSpec,
    codec: Arc<dyn KeyCodec<T>>,
    clock: Option<SharedClock>,
    fake_time: bool,
    batch: u32,
    max_connections: u32,
    connect_timeout: Duration,
    runtime: Option<tokio::runtime::Handle>,
    metrics: Option<Arc<dyn MetricsProvider>>,
    fairness: Option<u32>,
}

impl<T> std::fmt::Debug for PostgresQueueBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresQueueBuilder")
            .field("url", &RedactedUrl::new(&self.url))
            .field("name", &self.name)
            .field("schema", &self.schema.as_str())
            .field("lease", &self.lease)
            .field("limiter", &self.limiter)
            .field("fake_time", &self.fake_time)
            .field("batch", &self.batch)
            .field("max_connections", &self.max_connections)
            .field("own_pool", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Key> PostgresQueue<T> {
    /// A builder for the queue `name` in the database at `url`
    /// (`postgres://user:password@host:port/database`, any URL sqlx
    /// accepts), with `T`'s natural codec. The queue's `Debug`, errors and
    /// log lines show the URL without its credentials.
    pub fn builder(url: impl Into<String>, name: impl Into<String>) -> PostgresQueueBuilder<T>
    where
        T: DefaultCodec,
    {
        PostgresQueueBuilder {
            url: url.into(),
            pool: None,
            name: name.into(),
            schema: SchemaName::default(),
            migrate: true,
            lease: DEFAULT_LEASE,
            limiter: LimiterSpec::default_controller(),
            codec: T::default_codec(),
            clock: None,
            fake_time: false,
            batch: 100,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Duration::from_secs(5),
            runtime: None,
            metrics: None,
            fairness: Some(requeue::queue::DEFAULT_FAIRNESS),
        }
    }

    /// A builder for the queue `name` on the program's own pool (with its
    /// TLS, credentials and limits). The queue's statements then run on
    /// that pool: size it for the queue's wake-up listener (which keeps
    /// one of its connections), its statements in flight (two), its
    /// renewer, and the program's own use.
    pub fn builder_with_pool(pool: PgPool, name: impl Into<String>) -> PostgresQueueBuilder<T>
    where
        T: DefaultCodec,
    {
        let mut builder = Self::builder(String::new(), name);
        builder.pool = Some(pool);
        builder
    }
}

impl<T: Key> PostgresQueueBuilder<T> {
    /// The schema of the queue's tables (default `requeue`).
    pub fn schema(mut self, schema: SchemaName) -> Self {
        self.schema = schema;
        self
    }

    /// Whether `build` applies the embedded migrations (default yes;
    /// turn it off when the application runs [`schema::MIGRATIONS`](crate::schema::MIGRATIONS)
    /// through its own migration tool).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The lease: how long a process that stopped renewing keeps an item
    /// before another may take it (default 30 s, at least 30 ms). Held
    /// items are renewed each third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The rate limiter of `add_rate_limited`, shared by every process
    /// (failure counts in the items' rows, the bucket in the queue's
    /// limiter row). Default: client-go's controller limiter. Its
    /// exponential part also paces reaped leases.
    pub fn limiter(mut self, limiter: LimiterSpec) -> Self {
        self.limiter = limiter;
        self
    }

    /// The codec between items and the stored text (which must be UTF-8
    /// without NUL bytes: requeue's JSON and UTF-8 codecs are).
    pub fn codec(mut self, codec: Arc<dyn KeyCodec<T>>) -> Self {
        self.codec = codec;
        self
    }

    /// The clock of this process's timers (lease deadlines, renewals,
    /// waits for delayed items). Default: the real clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// **Tests only**: statements read `clock`'s time instead of the
    /// server's, so `FakeClock::advance` drives delays and lease expiry in
    /// a real database deterministically. Never in production: each
    /// process would bring its own time.
    pub fn fake_time(mut self, clock: FakeClock) -> Self {
        self.clock = Some(Arc::new(clock));
        self.fake_time = true;
        self
    }

    /// At most this many expired leases reaped and due items promoted per
    /// statement (default 100).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// The pool's size when the queue makes its own (default
    /// [`DEFAULT_MAX_CONNECTIONS`]; at least 2).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The anti-starvation budget for priorities, as the in-memory queue's
    /// ([`WorkQueueBuilder::fairness`](requeue::queue::WorkQueueBuilder::fairness)):
    /// after `n` consecutive hand-outs that passed over an older,
    /// lower-priority item, the oldest ready item goes next. `None`:
    /// strict priority order. Default `Some(32)`. Each process counts its
    /// own hand-outs.
    pub fn fairness(mut self, n: Option<u32>) -> Self {
        self.fairness = n;
        self
    }

    /// Reports client-go's workqueue metrics (label `name` = the queue) and
    /// the lease counters to `provider`.
    pub fn metrics(mut self, provider: Arc<dyn MetricsProvider>) -> Self {
        self.metrics = Some(provider);
        self
    }

    /// Runs the queue's statements and background tasks on `runtime`
    /// instead of a small runtime of its own (see the Redis engine's
    /// builder for the trade-off: a handler that blocks that runtime
    /// delays lease renewals).
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Connects, applies the migrations (unless told not to), opens the
    /// queue (creating its row on first use) and starts this process's
    /// renewer, batcher and wake-up listener.
    pub async fn build(self) -> Result<PostgresQueue<T>, Error> {
        let runtime = self.validate()?;
        let started = runtime.handle().spawn(self.connect()).await;
        let connected = started
            .map_err(|e| Error::InvalidConfig(format!("the connecting task failed: {e}")))?;
        Ok(PostgresQueue::start(runtime, connected?))
    }

    /// As [`build`](PostgresQueueBuilder::build), for a thread without an
    /// async runtime: returns the blocking facade.
    pub fn build_blocking(self) -> Result<super::BlockingPostgresQueue<T>, Error> {
        let runtime = self.validate()?;
        let connected = runtime.handle().block_on(self.connect())?;
        Ok(requeue::engine::Blocking::from_async(PostgresQueue::start(
            runtime, connected,
        )))
    }

    /// Checks the settings and makes (or borrows) the queue's runtime.
    fn validate(&self) -> Result<OwnedRuntime, Error> {
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(Error::InvalidQueueName(self.name.clone()));
        }
        if self.lease < Duration::from_millis(30) {
            return Err(Error::InvalidConfig(format!(
                "the lease must be at least 30 ms (got {:?})",
                self.lease
            )));
        }
        if self.batch == 0 {
            return Err(Error::InvalidConfig("the batch must be at least 1".into()));
        }
        if self.max_connections < 2 {
            return Err(Error::InvalidConfig(
                "the pool needs at least 2 connections".into(),
            ));
        }
        Ok(match &self.runtime {
            Some(handle) => OwnedRuntime::Borrowed(handle.clone()),
            None => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("requeue-postgres")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::InvalidConfig(format!("cannot start the queue's runtime: {e}"))
                    })?;
                OwnedRuntime::Owned(Some(runtime))
            }
        })
    }

    async fn connect(self) -> Result<Arc<Shared<T>>, Error> {
        let url = RedactedUrl::new(&self.url);
        let refused = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        let pool = match self.pool {
            Some(pool) => pool,
            None => PgPoolOptions::new()
                .max_connections(self.max_connections)
                .acquire_timeout(self.connect_timeout)
                // No ping before each statement: a dead connection fails its
                // statement, which every caller retries or reports anyway.
                .test_before_acquire(false)
                .connect(&self.url)
                .await
                .map_err(refused)?,
        };
        if self.migrate {
            let mut conn = pool.acquire().await.map_err(refused)?;
            migrate(&mut conn, &self.schema).await?;
        }
        let sql = Sql::new(&self.schema);
        let queue_id: i32 = sqlx::query_scalar(&sql.open_queue)
            .bind(&self.name)
            .fetch_one(&pool)
            .await?;
        let clock = self.clock.unwrap_or_else(requeue::clock::real);
        // A reaped item backs off as a failure would; without a per-item
        // limiter, with the default controller's 5 ms .. 1000 s.
        let reap = self
            .limiter
            .exponential
            .or(LimiterSpec::default_controller().exponential)
            .map_or((0, 0), |e| {
                (
                    micros(Duration::from_millis(e.base_ms)),
                    micros(Duration::from_millis(e.max_ms)),
                )
            });
        let keeper = LeaseKeeper::new(self.name.clone(), self.lease, clock.clone())
            .with_endpoint(url.to_string());
        Ok(Arc::new(Shared {
            name: self.name.clone(),
            url,
            queue_id,
            sql,
            pool,
            codec: self.codec,
            clock,
            fake_time: self.fake_time,
            limiter: self.limiter,
            reap_backoff: reap,
            batch_limit: i32::try_from(self.batch).unwrap_or(i32::MAX),
            runtime: tokio::runtime::Handle::current(),
            keeper,
            ready: Notify::new(),
            shutting_down: AtomicBool::new(false),
            stats: Stats::default(),
            metrics: self
                .metrics
                .as_deref()
                .map(|p| QueueMetrics::with_leases(p, &self.name)),
            batcher: std::sync::OnceLock::new(),
            last_reap_ms: AtomicU64::new(0),
            force_reap: AtomicBool::new(false),
            nonce: fastrand::i64(..),
            last_renewed_ms: AtomicU64::new(0),
            fairness: self.fairness.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            passed_over: std::sync::atomic::AtomicU32::new(0),
            channel: self.schema.as_str().to_owned(),
        }))
    }
}

impl<T: Key> PostgresQueue<T> {
    /// Starts the background tasks on `runtime` and wraps up.
    fn start(runtime: OwnedRuntime, shared: Arc<Shared<T>>) -> Self {
        let cancel = CancellationToken::new();
        let handle = runtime.handle();
        handle.spawn(remote::renew(shared.clone(), cancel.clone()));
        let (batcher, coalescing) = Batcher::new(shared.clone(), cancel.clone());
        handle.spawn(coalescing);
        // Set once, here, before the queue is handed to anyone.
        let _ = shared.batcher.set(batcher);
        handle.spawn(listen::listen(
            shared.clone(),
            shared.channel.clone(),
            cancel.clone(),
        ));
        if shared.metrics.is_some() {
            handle.spawn(remote::report_unfinished_work(
                shared.clone(),
                cancel.clone(),
            ));
        }
        PostgresQueue {
            shared,
            engine: Arc::new(Engine {
                _runtime: runtime,
                cancel,
            }),
        }
    }
}

/// The runtime the queue runs on: its own (shut down in the background
/// when the last clone goes, from any context), or the caller's.
pub(super) enum OwnedRuntime {
    /// Started for the queue; `None` only while being dropped.
    Owned(Option<tokio::runtime::Runtime>),
    /// The caller's; left running.
    Borrowed(tokio::runtime::Handle),
}

impl OwnedRuntime {
    pub(super) fn handle(&self) -> tokio::runtime::Handle {
        match self {
            OwnedRuntime::Owned(Some(runtime)) => runtime.handle().clone(),
            OwnedRuntime::Owned(None) => unreachable!("the runtime is only taken on drop"),
            OwnedRuntime::Borrowed(handle) => handle.clone(),
        }
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let OwnedRuntime::Owned(runtime) = self
            && let Some(runtime) = runtime.take()
        {
            runtime.shutdown_background();
        }
    }
}
