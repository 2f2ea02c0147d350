//! Where the Redis demo's queue lives, and connecting to it: the URL of
//! `--redis` or a throwaway local `redis-server`, the queue's settings
//! (shared by the parent and the worker processes), and errors that name
//! the URL in one line.

use super::super::args::RedisTarget;
use crate::show::{self, RedisUrl};
use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use requeue::metrics::MetricsProvider;
use requeue_redis::RedisQueue;
use requeue_redis::error::Error;
use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
use std::sync::Arc;
use std::time::Duration;

/// How long a hand-out is leased: short, so a worker process that dies
/// loses its keys to the others within seconds, yet far above a reconcile.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long connecting may take before Redis counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long any one call of this process's own connection may take (the
/// poller's reading, the TTL refresh, the clean-up): a frozen Redis makes
/// each fail after this long instead of hanging the run.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis the demo runs on; a local server stops when this is dropped.
#[derive(Debug)]
pub struct Target {
    /// Shown without credentials.
    pub url: RedisUrl,
    /// Whether `url` is a server started for this run.
    pub local: bool,
    _server: Option<LocalServer>,
}

impl Target {
    /// The URL as given, or a fresh local server's.
    pub fn resolve(target: &RedisTarget) -> anyhow::Result<Self> {
        match target {
            RedisTarget::Url(url) => Ok(Target {
                url: url.clone(),
                local: false,
                _server: None,
            }),
            RedisTarget::Local => {
                // A throwaway server: durability would only cost speed.
                let options = LocalServerOptions {
                    appendonly: false,
                    appendfsync: Fsync::No,
                    ..LocalServerOptions::default()
                };
                let server = LocalServer::start_with(options)
                    .context("--redis local: cannot start a redis-server")?;
                Ok(Target {
                    url: RedisUrl::from(server.url()),
                    local: true,
                    _server: Some(server),
                })
            }
        }
    }
}

/// Connects to the queue `name` at `url`. Unreachable: one line naming the
/// URL (without credentials) and why.
pub async fn queue(
    url: &RedisUrl,
    name: &str,
    metrics: Option<Arc<dyn MetricsProvider>>,
) -> anyhow::Result<RedisQueue<String>> {
    let mut builder = RedisQueue::builder(url.expose(), name)
        .lease(LEASE)
        .limiter(super::super::crew::limiter());
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
        Ok(Ok(queue)) => Ok(queue),
        Ok(Err(error)) => Err(unreachable(url, error)),
        Err(_) => Err(show::did_not_answer(url, CONNECT_TIMEOUT)),
    }
}

/// A connection of its own (for reading the queue's state and cleaning
/// up) that reconnects by itself after the connection drops (`CLIENT
/// KILL`, a restart of redis-server): a call that meets the break fails,
/// and the next ones go to a new connection. Each call also gives up
/// after [`CALL_TIMEOUT`] (a frozen server).
pub async fn connection(url: &RedisUrl) -> anyhow::Result<ConnectionManager> {
    let client = requeue_redis::connect_client(url.expose(), None)
        .with_context(|| format!("invalid Redis URL {url}"))?;
    // Few, short retries per reconnection: the poller calls again at its
    // next period anyway, and a long retry loop would only hide an outage.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        client.get_connection_manager_with_config(config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(show::redis_failure(
            url,
            "cannot connect to Redis at",
            error,
            CONNECT_TIMEOUT,
        )),
        Err(_) => Err(show::did_not_answer(url, CONNECT_TIMEOUT)),
    }
}

/// `call`, given up after [`CALL_TIMEOUT`] (as an I/O timeout error).
pub async fn within<T>(
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Redis(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {CALL_TIMEOUT:?}"),
            ))))
        })
}

/// Whether `error` means Redis could not be reached (refused, dropped,
/// timed out, still loading), rather than a reply Redis gave.
pub fn is_unreachable(error: &Error) -> bool {
    match error {
        Error::Connect { .. } => true,
        Error::Redis(e) => {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error()
                || matches!(
                    e.code(),
                    Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN")
                )
        }
        _ => false,
    }
}

/// The library's error as one: it names the URL itself when it could not
/// connect (a timeout then says so); any other error gets the URL as context.
fn unreachable(url: &RedisUrl, error: Error) -> anyhow::Error {
    match error {
        Error::Connect { source, .. } if source.is_timeout() => {
            show::did_not_answer(url, CONNECT_TIMEOUT)
        }
        Error::Redis(source) if source.is_timeout() => show::did_not_answer(url, CONNECT_TIMEOUT),
        error @ Error::Connect { .. } => anyhow::Error::new(error),
        other => anyhow::Error::new(other).context(format!("Redis at {url}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_redis_is_one_line_naming_the_url() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = RedisUrl::from(format!("redis://admin:s3cretpass@127.0.0.1:{port}/"));
        let error = runtime
            .block_on(queue(&url, "demo-test", None))
            .expect_err("nothing listens on port 1");
        let text = show::one_line(&error);
        assert!(
            text.contains(&format!("redis://***@127.0.0.1:{port}/")),
            "{text}"
        );
        assert!(!text.contains("s3cretpass"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(text.matches("refused").count(), 1, "{text}");
    }
}
