//! The queue's connections, whatever the deployment: one server, a Redis
//! Cluster or a Sentinel-managed master. [`Connector`] knows where the
//! deployment is and makes the two kinds of connection a queue needs;
//! [`Conn`] is either, behind redis's `ConnectionLike`, so the scripts
//! (`ops`) and the rest of the queue never ask which deployment it is.

use super::deployment::{Deployment, SentinelSpec};
use super::sentinel::{SentinelConnection, Sentinels};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, RedisFuture, RedisResult, Value};
use std::time::Duration;

/// A connection of the queue. Clones share the underlying connection.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, reconnecting to the same address (the scripts' connection).
    Managed(ConnectionManager),
    /// One server, without reconnection: the marker waiter's, which makes
    /// a new one after an error (for Sentinel, to the master the
    /// sentinels name then).
    Plain(MultiplexedConnection),
    /// A Redis Cluster: each command goes to the node that owns its key's
    /// slot, following `MOVED` and `ASK` and retrying `TRYAGAIN`.
    Cluster(ClusterConnection),
    /// The master the sentinels name, found again after a failover.
    Sentinel(SentinelConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(conn) => conn.req_packed_command(cmd),
            Conn::Plain(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
            Conn::Sentinel(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Plain(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(conn) => conn.get_db(),
            Conn::Plain(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
            Conn::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// How long the scripts' connection waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) response: Duration,
}

/// A blocking wait can take this long beyond its own timeout before its
/// connection counts as dead (cluster and sentinel marker connections).
const BLOCKING_SLACK: Duration = Duration::from_secs(5);

/// Where the queue's Redis is; makes its connections. (The clients are
/// boxed: they are large, and made once per queue.)
#[derive(Clone)]
pub(crate) enum Connector {
    /// One server.
    Single(Box<redis::Client>),
    /// A Redis Cluster.
    Cluster(Box<ClusterClients>),
    /// A Sentinel-managed master.
    Sentinel { sentinels: Sentinels, db: i64 },
}

/// The two clients of a cluster: `calls` for the scripts (the response
/// timeout); `blocking` for the marker's `BZPOPMIN`, whose own timeout is
/// longer.
#[derive(Clone)]
pub(crate) struct ClusterClients {
    calls: ClusterClient,
    blocking: ClusterClient,
}

impl Connector {
    /// The connector for a parsed URL (a single server's client is made
    /// by the caller, who may bring its own).
    pub(crate) fn for_deployment(
        deployment: &Deployment,
        tls: Option<&redis::TlsCertificates>,
        timeouts: Timeouts,
        block: Duration,
    ) -> RedisResult<Connector> {
        match deployment {
            Deployment::Single(url) => Ok(Connector::Single(Box::new(super::connect_client(
                url, tls,
            )?))),
            Deployment::Cluster(nodes) => Self::cluster(nodes, tls, timeouts, block),
            Deployment::Sentinel(spec) => Self::sentinel(spec, tls, timeouts),
        }
    }

    fn cluster(
        nodes: &[String],
        tls: Option<&redis::TlsCertificates>,
        timeouts: Timeouts,
        block: Duration,
    ) -> RedisResult<Connector> {
        if nodes.iter().any(|n| n.starts_with("rediss://")) {
            super::builder::install_tls_provider();
        }
        let client = |response: Duration| {
            let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .connection_timeout(timeouts.connect)
                .response_timeout(response)
                // Redirects, reconnections and TRYAGAIN waits (a slot
                // being migrated) within twice the response timeout;
                // the engine's own retries take over after that.
                .overall_response_timeout(Some(response * 2))
                .retries(10)
                .min_retry_wait(10)
                .max_retry_wait(500)
                .retry_wait_formula(10, 2);
            if let Some(certs) = tls {
                builder = builder.certs(super::builder::copy_certificates(certs));
            }
            builder.build()
        };
        Ok(Connector::Cluster(Box::new(ClusterClients {
            calls: client(timeouts.response)?,
            blocking: client(block + BLOCKING_SLACK)?,
        })))
    }

    fn sentinel(
        spec: &SentinelSpec,
        tls: Option<&redis::TlsCertificates>,
        timeouts: Timeouts,
    ) -> RedisResult<Connector> {
        if spec.tls {
            super::builder::install_tls_provider();
        }
        Ok(Connector::Sentinel {
            sentinels: Sentinels::new(spec, tls, timeouts.connect + timeouts.response)?,
            db: spec.db,
        })
    }

    /// The scripts' connection: reconnects (and, for Cluster and Sentinel,
    /// finds the right node again) by itself.
    pub(crate) async fn connect(&self, timeouts: Timeouts) -> RedisResult<Conn> {
        match self {
            Connector::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                Ok(Conn::Managed(
                    ConnectionManager::new_with_config(client.as_ref().clone(), config).await?,
                ))
            }
            Connector::Cluster(clients) => {
                Ok(Conn::Cluster(clients.calls.get_async_connection().await?))
            }
            Connector::Sentinel { sentinels, db } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response));
                Ok(Conn::Sentinel(
                    SentinelConnection::connect(sentinels.clone(), config, *db).await?,
                ))
            }
        }
    }

    /// A connection of its own for the marker waiter's blocking pops of
    /// at most `block` (a blocked command would hold up everything else
    /// queued on a shared one). The waiter makes a new one after any
    /// error, which for Sentinel asks the sentinels again; a cluster
    /// connection follows the queue's slot to whichever node owns it.
    pub(crate) async fn connect_blocking(
        &self,
        connect_timeout: Duration,
        block: Duration,
    ) -> RedisResult<Conn> {
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(connect_timeout));
        match self {
            // As before Cluster and Sentinel: no response timeout.
            Connector::Single(client) => Ok(Conn::Plain(
                client
                    .get_multiplexed_async_connection_with_config(
                        &config.set_response_timeout(None),
                    )
                    .await?,
            )),
            Connector::Cluster(clients) => Ok(Conn::Cluster(
                clients.blocking.get_async_connection().await?,
            )),
            // A master that a partition cut off is given up after the
            // wait plus some slack, and the sentinels asked again.
            Connector::Sentinel { sentinels, .. } => Ok(Conn::Plain(
                sentinels
                    .master()
                    .await?
                    .get_multiplexed_async_connection_with_config(
                        &config.set_response_timeout(Some(block + BLOCKING_SLACK)),
                    )
                    .await?,
            )),
        }
    }
}
