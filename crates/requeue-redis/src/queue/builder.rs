//! Configuring and connecting a [`RedisQueue`].

use super::connection::{Connector, Timeouts};
use super::deployment::Deployment;
use super::pipeline::Pipeline;
use super::shared::{Shared, Stats, Time};
use super::{Engine, RedisQueue, background};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::ops::{GetArgs, LimiterSpec};
use crate::redact::RedactedUrl;
use crate::scripts::Scripts;
use requeue::clock::{FakeClock, SharedClock};
use requeue::engine::codec::{DefaultCodec, KeyCodec};
use requeue::engine::remote::{self, LeaseKeeper};
use requeue::limiter::RateLimiter;
use requeue::metrics::{MetricsProvider, QueueMetrics};
use requeue::queue::Key;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The default lease: as BullMQ's `lockDuration`, asynq's and NATS's.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Builds a [`RedisQueue`]; see [`RedisQueue::builder`]. Its `Debug`
/// shows the URL without credentials.
pub struct RedisQueueBuilder<T> {
    /// What messages call the deployment: the URL, the caller's client's
    /// address, or the cluster nodes' URLs joined by commas. Always shown
    /// redacted.
    url: String,
    /// Where to connect (see `Target`).
    target: Target,
    name: String,
    lease: Duration,
    limiter: LimiterSpec,
    local_limiter: Option<Arc<dyn RateLimiter<T>>>,
    codec: Arc<dyn KeyCodec<T>>,
    clock: Option<SharedClock>,
    fake_time: bool,
    batch: u32,
    prefetch: usize,
    response_timeout: Duration,
    connect_timeout: Duration,
    tls: Option<redis::TlsCertificates>,
    /// The caller's runtime (`runtime`), used instead of an owned one.
    runtime: Option<tokio::runtime::Handle>,
    metrics: Option<Arc<dyn MetricsProvider>>,
}

impl<T> std::fmt::Debug for RedisQueueBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueueBuilder")
            .field("url", &RedactedUrl::new(&self.url))
            .field("name", &self.name)
            .field("lease", &self.lease)
            .field("limiter", &self.limiter)
            .field("local_limiter", &self.local_limiter.is_some())
            .field("fake_time", &self.fake_time)
            .field("batch", &self.batch)
            .field("prefetch", &self.prefetch)
            .field("tls", &self.tls.is_some())
            .field("own_client", &matches!(self.target, Target::Client(_)))
            .field("caller_runtime", &self.runtime.is_some())
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Key> RedisQueue<T> {
    /// A builder for the queue `name` on the Redis at `url`, with `T`'s
    /// natural codec. The queue's `Debug`, errors and log lines show the
    /// URL without its credentials. The URL also says which kind of
    /// deployment it is:
    ///
    /// | URL | deployment |
    /// |---|---|
    /// | `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), `redis+unix:///path` | one server |
    /// | `redis+cluster://[user:password@]host:port[,host:port…]`, `rediss+cluster://…` | a Redis Cluster, discovered from any of the listed nodes (as [`cluster_builder`](Self::cluster_builder)) |
    /// | `redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[/db]`, `rediss+sentinel://…` | the master the listed sentinels (port 26379 when left out) monitor under that name; after a failover the queue asks them again |
    ///
    /// The user and password of a cluster or sentinel URL are the data
    /// nodes'; sentinels with a password of their own take
    /// `?sentinel_username=…&sentinel_password=…`. Parts are
    /// percent-decoded. See the repository's `docs/redis.md` §10 for what
    /// each deployment guarantees.
    pub fn builder(url: impl Into<String>, name: impl Into<String>) -> RedisQueueBuilder<T>
    where
        T: DefaultCodec,
    {
        Self::builder_with_codec(url, name, T::default_codec())
    }

    /// A builder for the queue `name` on the Redis that `client` connects
    /// to: the program's own client, with whatever TLS, credentials or
    /// connection settings it was made with. Messages name its address
    /// (never its credentials).
    ///
    /// It takes a client rather than a connection because the queue opens
    /// two of its own: a multiplexed one for its scripts, with its
    /// response timeout and reconnection, and one that blocks in
    /// `BZPOPMIN` while getters wait. That blocking wait on a connection
    /// the program shares would hold up every command the program sends
    /// on it.
    pub fn builder_with_client(
        client: redis::Client,
        name: impl Into<String>,
    ) -> RedisQueueBuilder<T>
    where
        T: DefaultCodec,
    {
        let address = client.get_connection_info().addr().to_string();
        let mut builder = Self::builder_with_codec(address, name, T::default_codec());
        builder.target = Target::Client(Box::new(client));
        builder
    }

    /// A builder for the queue `name` on the Redis Cluster that `nodes`
    /// belong to: the URLs (`redis://[user:password@]host:port`, or
    /// `rediss://` over TLS) of one or more of its nodes, all with the same
    /// credentials; the rest of the cluster is discovered from them.
    ///
    /// The queue's keys share one hash tag, so the whole queue lives in
    /// one slot and every script runs on the node that owns it. The
    /// connection follows `MOVED` and `ASK` redirects and retries
    /// `TRYAGAIN` (a slot being migrated) with short waits for up to twice
    /// the [`response_timeout`](RedisQueueBuilder::response_timeout),
    /// after which the queue's own retries take over; scripts missing on
    /// a node (`NOSCRIPT`, after a failover or a new node) are loaded
    /// again. The same is reached with a `redis+cluster://` URL in
    /// [`builder`](Self::builder).
    pub fn cluster_builder<S: Into<String>>(
        nodes: impl IntoIterator<Item = S>,
        name: impl Into<String>,
    ) -> RedisQueueBuilder<T>
    where
        T: DefaultCodec,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut builder = Self::builder_with_codec(nodes.join(","), name, T::default_codec());
        builder.target = Target::ClusterNodes(nodes);
        builder
    }

    /// A builder with an explicit codec (e.g. [`Json`](super::Json) for serde types).
    pub fn builder_with_codec(
        url: impl Into<String>,
        name: impl Into<String>,
        codec: Arc<dyn KeyCodec<T>>,
    ) -> RedisQueueBuilder<T> {
        RedisQueueBuilder {
            url: url.into(),
            target: Target::Url,
            name: name.into(),
            lease: DEFAULT_LEASE,
            limiter: LimiterSpec::default_controller(),
            local_limiter: None,
            codec,
            clock: None,
            fake_time: false,
            batch: GetArgs::default().batch,
            prefetch: super::ahead::DEFAULT_PREFETCH,
            response_timeout: Duration::from_secs(5),
            tls: None,
            runtime: None,
            connect_timeout: Duration::from_secs(2),
            metrics: None,
        }
    }
}

impl<T: Key> RedisQueueBuilder<T> {
    /// How long a hand-out stays leased without renewal (default 30 s).
    /// This process renews every lease each third of it; a holder that
    /// stops renewing loses its items after at most one lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The rate limiter of `add_rate_limited` and of reaped leases
    /// (default: client-go's default controller limiter).
    pub fn limiter(mut self, limiter: LimiterSpec) -> Self {
        self.limiter = limiter;
        self
    }

    /// A rate limiter of this process's own for `add_rate_limited` (and
    /// retries), instead of the shared [`limiter`](Self::limiter): any
    /// [`RateLimiter`], client-go's or yours. Its state (failure counts, a
    /// bucket) lives in this process, so processes do not share it;
    /// `num_requeues` and `forget` use it too. Reaped leases still back off
    /// by the shared limiter's exponential part, evaluated in Redis.
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<T> + 'static) -> Self {
        self.local_limiter = Some(Arc::new(limiter));
        self
    }

    /// The codec between items and Redis bytes.
    pub fn codec(mut self, codec: Arc<dyn KeyCodec<T>>) -> Self {
        self.codec = codec;
        self
    }

    /// The clock for this process's timers (lease deadlines, renewals,
    /// waiting for delayed items). Default: the real clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// **Tests only**: the scripts read `clock`'s time instead of the
    /// server's, so `FakeClock::advance` drives delays and lease expiry in
    /// a real Redis deterministically. Never use it in production: each
    /// process would bring its own time.
    pub fn fake_time(mut self, clock: FakeClock) -> Self {
        self.clock = Some(Arc::new(clock));
        self.fake_time = true;
        self
    }

    /// At most this many expired leases are reaped and due items promoted
    /// per `get` (default 100): bounds the work of one script call.
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch;
        self
    }

    /// Fetch ahead for workers that are about to ask (default off: 0).
    ///
    /// When a worker of this process ends an item, the call that ends it
    /// also leases the next item for it, so that its next `get` needs no
    /// round trip. At most `items` are held this way, each under its own
    /// lease (renewed like any other); one nobody claims within a quarter
    /// of a lease is given back, and shutting down gives back all of them.
    /// If the process dies they come back after one lease, like any held
    /// item.
    ///
    /// The price, and why it is off by default: in Redis an item fetched
    /// ahead is being processed, so an add of it before a worker takes it
    /// parks it ([`Added::AfterDone`](requeue::queue::Added::AfterDone):
    /// it is processed once more afterwards) where client-go would merge
    /// it into the queued one. Nothing is lost and no key is processed
    /// twice at once. It also trades a little fairness between processes
    /// (a busy process keeps its own workers fed first) for throughput.
    pub fn prefetch(mut self, items: usize) -> Self {
        self.prefetch = items;
        self
    }

    /// Reports client-go's workqueue metrics (label `name` = the queue) and
    /// `workqueue_lease_expired_total` / `workqueue_lease_lost_total` to
    /// `provider`. Each process reports what it saw: sum the counters
    /// across processes; the depth is the queue's (take the max).
    pub fn metrics(mut self, provider: Arc<dyn MetricsProvider>) -> Self {
        self.metrics = Some(provider);
        self
    }

    /// Runs the queue's Redis calls and background tasks (the renewer, the
    /// wake-up waiter, the coalescing pipeline) on `runtime`, the program's
    /// own, instead of a small runtime the queue starts for itself (the
    /// default). It saves a thread and a hop between runtimes per call;
    /// the price is that a handler which blocks that runtime's threads
    /// (CPU-bound work, blocking I/O outside `spawn_blocking`) delays the
    /// lease renewals too, and a lease that is not renewed runs out. The
    /// runtime needs its time and I/O drivers (`enable_all`).
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Trust `root_cert_pem` (a PEM CA certificate, e.g. a managed Redis
    /// provider's) for a `rediss://` URL (also `rediss+cluster://`,
    /// `rediss+sentinel://` and `rediss://` cluster nodes), instead of the
    /// system's roots. Without it, `rediss://` checks the server against
    /// the system's trusted certificates.
    pub fn tls_root_cert(mut self, root_cert_pem: impl Into<Vec<u8>>) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .root_cert = Some(root_cert_pem.into());
        self
    }

    /// Present this client certificate and key (both PEM) to a server that
    /// asks for one (mutual TLS, `tls-auth-clients yes`).
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// How long a script call may take before it counts as failed (default 5 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects (within the connect timeout), loads the scripts and starts
    /// this process's renewer and marker waiter. Redis unreachable →
    /// [`Error::Connect`] naming the URL (without its credentials: see
    /// [`redact`](crate::redact)).
    pub async fn build(self) -> Result<RedisQueue<T>, Error> {
        let (runtime, prepared) = self.prepare()?;
        let connected = runtime
            .handle()
            .spawn(prepared.connect())
            .await
            .map_err(|e| Error::Protocol(format!("the connecting task failed: {e}")))?;
        Ok(RedisQueue::start(runtime, connected?))
    }

    /// As [`build`](RedisQueueBuilder::build), for a thread without an
    /// async runtime: returns the blocking facade.
    pub fn build_blocking(self) -> Result<super::BlockingRedisQueue<T>, Error> {
        let (runtime, prepared) = self.prepare()?;
        let connected = runtime.handle().block_on(prepared.connect())?;
        Ok(requeue::engine::Blocking::from_async(RedisQueue::start(
            runtime, connected,
        )))
    }

    /// Validates the configuration and makes the queue's runtime.
    fn prepare(self) -> Result<(OwnedRuntime, Prepared<T>), Error> {
        let keys = QueueKeys::new(&self.name)?;
        if self.lease < Duration::from_millis(30) {
            return Err(Error::InvalidConfig(format!(
                "the lease must be at least 30 ms (got {:?})",
                self.lease
            )));
        }
        if self.batch == 0 {
            return Err(Error::InvalidConfig("the batch must be at least 1".into()));
        }
        let refused = |source| Error::Connect {
            url: RedactedUrl::new(&self.url),
            source,
        };
        let timeouts = self.timeouts();
        let tls = self.tls.as_ref();
        let connector = match &self.target {
            Target::Client(client) => Connector::Single(client.clone()),
            Target::Url => {
                let deployment = Deployment::of(&self.url)?;
                Connector::for_deployment(&deployment, tls, timeouts, background::WAKE_CAP)
                    .map_err(refused)?
            }
            Target::ClusterNodes(nodes) => Connector::for_deployment(
                &Deployment::Cluster(nodes.clone()),
                tls,
                timeouts,
                background::WAKE_CAP,
            )
            .map_err(refused)?,
        };
        let runtime = match &self.runtime {
            Some(handle) => OwnedRuntime::Borrowed(handle.clone()),
            None => {
                // By default one small runtime per queue runs every Redis
                // call and the background tasks, so a handler that blocks
                // the caller's runtime cannot starve lease renewal.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("requeue-redis-{}", self.name))
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Error::InvalidConfig(format!("cannot start the queue's runtime: {e}"))
                    })?;
                OwnedRuntime::Owned(Some(runtime))
            }
        };
        Ok((
            runtime,
            Prepared {
                builder: self,
                keys,
                connector,
            },
        ))
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            response: self.response_timeout,
        }
    }
}

/// Where the builder connects.
enum Target {
    /// Where `url` says (one server, a cluster, or sentinels).
    Url,
    /// The caller's client (`builder_with_client`); `url` then only names
    /// the server in messages.
    Client(Box<redis::Client>),
    /// The seed nodes of a cluster (`cluster_builder`).
    ClusterNodes(Vec<String>),
}

/// The runtime the queue runs on: its own (which may be dropped anywhere,
/// also inside another runtime's task, e.g. when `build` fails: it shuts
/// down in the background), or the caller's.
pub(super) enum OwnedRuntime {
    /// Started for the queue; `None` only while being dropped.
    Owned(Option<tokio::runtime::Runtime>),
    /// The caller's (`RedisQueueBuilder::runtime`); left running.
    Borrowed(tokio::runtime::Handle),
}

impl OwnedRuntime {
    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            OwnedRuntime::Owned(Some(runtime)) => runtime.handle(),
            OwnedRuntime::Owned(None) => unreachable!("the runtime is only taken on drop"),
            OwnedRuntime::Borrowed(handle) => handle,
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

/// A validated builder, ready to connect.
struct Prepared<T> {
    builder: RedisQueueBuilder<T>,
    keys: QueueKeys,
    connector: Connector,
}

/// What `connect` hands to `RedisQueue::start`.
pub(super) struct Connected<T> {
    pub(super) shared: Arc<Shared<T>>,
    /// For the marker waiter's connection.
    pub(super) connector: Connector,
}

impl<T: Key> Prepared<T> {
    async fn connect(self) -> Result<Connected<T>, Error> {
        let b = self.builder;
        let url = RedactedUrl::new(&b.url);
        let refused = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        let mut conn = self
            .connector
            .connect(b.timeouts())
            .await
            .map_err(refused)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(refused)?;
        Scripts::global().load_all(&mut conn).await?;
        let clock = b.clock.unwrap_or_else(requeue::clock::real);
        // A reaped item backs off as a failure would; without a per-item
        // limiter, with the default controller's 5 ms .. 1000 s.
        let reap = b
            .limiter
            .exponential
            .or(LimiterSpec::default_controller().exponential)
            .map_or((0, 0), |e| (e.base_ms, e.max_ms));
        let (reap_base_ms, reap_max_ms) = reap;
        let get_args = GetArgs {
            lease_ms: super::lease::millis(b.lease),
            batch: b.batch,
            reap_base_ms,
            reap_max_ms,
        };
        let keeper =
            LeaseKeeper::new(b.name.clone(), b.lease, clock.clone()).with_endpoint(url.to_string());
        let shared = Arc::new(Shared {
            name: b.name.clone(),
            url,
            keys: self.keys,
            conn,
            codec: b.codec,
            keeper,
            clock,
            time: if b.fake_time {
                Time::Fake
            } else {
                Time::Server
            },
            limiter: b.limiter,
            local_limiter: b.local_limiter,
            get_args,
            runtime: tokio::runtime::Handle::current(),
            ready: Notify::new(),
            idle: AtomicUsize::new(0),
            idle_changed: Notify::new(),
            shutting_down: AtomicBool::new(false),
            stats: Stats::default(),
            pipeline: std::sync::OnceLock::new(),
            ahead: super::ahead::Ahead::new(b.prefetch),
            metrics: b
                .metrics
                .as_deref()
                .map(|p| QueueMetrics::with_leases(p, &b.name)),
        });
        Ok(Connected {
            shared,
            connector: self.connector,
        })
    }
}

impl<T: Key> RedisQueue<T> {
    /// Starts the background tasks on `runtime` and wraps up.
    fn start(runtime: OwnedRuntime, connected: Connected<T>) -> Self {
        let cancel = CancellationToken::new();
        let shared = connected.shared;
        runtime
            .handle()
            .spawn(remote::renew(shared.clone(), cancel.clone()));
        let (pipeline, coalescing) = Pipeline::new(shared.clone(), cancel.clone());
        runtime.handle().spawn(coalescing);
        // Set once, here, before the queue is handed to anyone.
        let _ = shared.pipeline.set(pipeline);
        runtime.handle().spawn(background::wait_for_marker(
            shared.clone(),
            connected.connector,
            cancel.clone(),
        ));
        if shared.metrics.is_some() {
            runtime.handle().spawn(remote::report_unfinished_work(
                shared.clone(),
                cancel.clone(),
            ));
        }
        RedisQueue {
            shared,
            engine: Arc::new(Engine {
                _runtime: runtime,
                cancel,
            }),
        }
    }
}

/// A Redis client for `url`, as the queue makes its own: `redis://` plain,
/// `rediss://` over TLS (rustls, installing the ring provider unless the
/// program installed one), checked against `tls`'s root certificate when
/// given, else the system's, and presenting `tls`'s client certificate if
/// any. For tools that talk to a queue's Redis beside the queue
/// (`requeue inspect`).
pub fn connect_client(
    url: &str,
    tls: Option<&redis::TlsCertificates>,
) -> redis::RedisResult<redis::Client> {
    if url.starts_with("rediss://") {
        install_tls_provider();
    }
    match tls {
        Some(certs) => redis::Client::build_with_tls(url, copy_certificates(certs)),
        None => redis::Client::open(url),
    }
}

/// Installs rustls's process-wide crypto provider for TLS connections;
/// another already installed (by the program, or an earlier queue) is
/// kept. ring, because it builds with a C compiler alone (aws-lc-rs needs
/// more tooling); rustls marks it deprecated for lacking post-quantum key
/// exchange, which a program that wants it gets by installing aws-lc-rs
/// first.
pub(super) fn install_tls_provider() {
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let _ = provider.install_default();
}

/// A copy of `certs` (the redis crate's type is not `Clone`).
pub(super) fn copy_certificates(certs: &redis::TlsCertificates) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: certs.client_tls.as_ref().map(|c| redis::ClientTlsConfig {
            client_cert: c.client_cert.clone(),
            client_key: c.client_key.clone(),
        }),
        root_cert: certs.root_cert.clone(),
    }
}
