//! The connection to a Sentinel-managed master: asks the sentinels where
//! the master is, and asks again when the connection fails or the server
//! it reaches says it is no longer the master (`READONLY`, after a
//! failover demoted it). A `ConnectionManager` cannot do this: it
//! reconnects to the one address it was given.

use super::deployment::SentinelSpec;
use futures_util::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, TlsMode, Value,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The sentinels of one deployment, shared by the queue's connections (the
/// scripts' and the marker waiter's), asked one at a time.
#[derive(Clone)]
pub(crate) struct Sentinels {
    client: Arc<tokio::sync::Mutex<SentinelClient>>,
    /// Bounds one lookup: a sentinel that accepts connections but never
    /// answers must not stall the queue.
    timeout: Duration,
}

impl Sentinels {
    /// The sentinels of `spec`; `tls` holds the certificates for a
    /// `rediss+sentinel://` URL (to the sentinels and the master alike).
    pub(crate) fn new(
        spec: &SentinelSpec,
        tls: Option<&redis::TlsCertificates>,
        timeout: Duration,
    ) -> RedisResult<Sentinels> {
        let addrs = spec
            .sentinels
            .iter()
            .map(|url| {
                url.as_str()
                    .into_connection_info()
                    .map(|i| i.addr().clone())
            })
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder =
            SentinelClientBuilder::new(addrs, &spec.master, SentinelServerType::Master)?
                .set_client_to_redis_db(spec.db);
        if let Some(user) = &spec.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &spec.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &spec.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &spec.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if spec.tls {
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(certs) = tls {
                builder = builder
                    .set_client_to_redis_certificates(super::builder::copy_certificates(certs))
                    .set_client_to_sentinel_certificates(super::builder::copy_certificates(certs));
            }
        }
        Ok(Sentinels {
            client: Arc::new(tokio::sync::Mutex::new(builder.build()?)),
            timeout,
        })
    }

    /// A client for the current master, as the sentinels report it (the
    /// redis crate checks with `ROLE` that it is one).
    pub(crate) async fn master(&self) -> RedisResult<redis::Client> {
        let mut client = self.client.lock().await;
        match tokio::time::timeout(self.timeout, client.async_get_client()).await {
            Ok(found) => found,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sentinels did not name a master in time",
            )
            .into()),
        }
    }
}

/// A connection to the current master that finds the master again after
/// a failover. Clones share the connection.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    inner: Arc<Inner>,
}

struct Inner {
    sentinels: Sentinels,
    config: AsyncConnectionConfig,
    db: i64,
    /// The master's connection and its generation (`None`: ask the sentinels).
    current: parking_lot::Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while asking the sentinels, so that the callers who all saw
    /// one failure ask once.
    resolving: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl SentinelConnection {
    /// Connects to the master now (so a wrong address fails the build).
    pub(crate) async fn connect(
        sentinels: Sentinels,
        config: AsyncConnectionConfig,
        db: i64,
    ) -> RedisResult<SentinelConnection> {
        let connection = SentinelConnection {
            inner: Arc::new(Inner {
                sentinels,
                config,
                db,
                current: parking_lot::Mutex::new(None),
                resolving: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            }),
        };
        connection.current().await?;
        Ok(connection)
    }

    /// The master's connection, asking the sentinels if there is none.
    async fn current(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.inner.current.lock().clone() {
            return Ok(current);
        }
        let _resolving = self.inner.resolving.lock().await;
        if let Some(current) = self.inner.current.lock().clone() {
            return Ok(current);
        }
        let client = self.inner.sentinels.master().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(
            master = %client.get_connection_info().addr(),
            generation,
            "connected to the master the sentinels named"
        );
        *self.inner.current.lock() = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Forgets the connection of `generation` (not a newer one), so the
    /// next call asks the sentinels.
    fn forget(&self, generation: u64) {
        let mut current = self.inner.current.lock();
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }

    /// Runs `send` on the master's connection. After an error that means
    /// the master is gone or demoted, the next call asks the sentinels;
    /// a `READONLY` refusal (nothing ran) is sent once more at once to
    /// the new master. Other failures are returned as they are: whether a
    /// command whose reply was lost ran is the engine's to handle.
    ///
    /// A server's error reply is not an `Err` at this level (the redis
    /// crate turns it into one later, in `query_async`), so `refused`
    /// finds it in the reply.
    async fn with_master<'a, R>(
        &self,
        send: impl Fn(MultiplexedConnection) -> RedisFuture<'a, R>,
        refused: impl Fn(&R) -> Option<RedisError>,
    ) -> RedisResult<R> {
        let (generation, conn) = self.current().await?;
        let reply = send(conn).await;
        let error = match &reply {
            Ok(value) => match refused(value) {
                Some(error) => error,
                None => return reply,
            },
            Err(error) => error.clone(),
        };
        if !master_lost(&error) {
            return reply;
        }
        self.forget(generation);
        if error.kind() != ErrorKind::Server(ServerErrorKind::ReadOnly) {
            return reply;
        }
        tracing::info!(%error, "the master was demoted; asking the sentinels again");
        let (_, conn) = self.current().await?;
        send(conn).await
    }
}

/// The error a reply carries, if it is an error reply.
fn error_reply(value: &Value) -> Option<RedisError> {
    match value {
        Value::ServerError(error) => Some(error.clone().into()),
        _ => None,
    }
}

/// Whether `error` means this connection may no longer reach the master:
/// it failed, or the server says it is a replica now (`READONLY`), or it
/// refuses writes for want of replicas (`NOREPLICAS`: an old master cut
/// off from the others, while the sentinels promote one of them).
pub(crate) fn master_lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || error.code() == Some("NOREPLICAS")
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.with_master(
            move |mut conn| async move { conn.req_packed_command(cmd).await }.boxed(),
            error_reply,
        )
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.with_master(
            move |mut conn| {
                async move { conn.req_packed_commands(pipeline, offset, count).await }.boxed()
            },
            |values: &Vec<Value>| values.iter().find_map(error_reply),
        )
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
