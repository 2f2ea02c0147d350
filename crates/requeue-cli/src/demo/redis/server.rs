//! Where the Redis demo's queue lives, and connecting to it: the URL of
//! `--redis` or a throwaway local `redis-server`, the queue's settings
//! (shared by the parent and the worker processes), and errors that name
//! the URL in one line.

use super::super::args::RedisTarget;
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use requeue::metrics::MetricsProvider;
use requeue_redis::RedisQueue;
use requeue_redis::error::Error;
use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
use requeue_redis::ops::{Exponential, LimiterSpec};
use std::sync::Arc;
use std::time::Duration;

/// How long a hand-out is leased: short, so a worker process that dies
/// loses its keys to the others within seconds, yet far above a reconcile.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long connecting may take before Redis counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The Redis the demo runs on; a local server stops when this is dropped.
#[derive(Debug)]
pub struct Target {
    pub url: String,
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
                    url: server.url(),
                    local: true,
                    _server: Some(server),
                })
            }
        }
    }
}

/// Per-key exponential backoff like the in-memory demo's, without the
/// default limiter's shared 10/s bucket (which would push every retry
/// minutes out at this rate).
pub fn limiter() -> LimiterSpec {
    LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 5,
            max_ms: 60_000,
        }),
        ..LimiterSpec::default()
    }
}

/// Connects to the queue `name` at `url`. Unreachable: one line naming the URL.
pub async fn queue(
    url: &str,
    name: &str,
    metrics: Option<Arc<dyn MetricsProvider>>,
) -> anyhow::Result<RedisQueue<String>> {
    let mut builder = RedisQueue::builder(url, name)
        .lease(LEASE)
        .limiter(limiter());
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
        Ok(Ok(queue)) => Ok(queue),
        Ok(Err(error)) => Err(unreachable(url, &error)),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to Redis at {url}: no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// A connection of its own (for reading the queue's state).
pub async fn connection(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).with_context(|| format!("invalid Redis URL {url}"))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(anyhow::anyhow!("cannot connect to Redis at {url}: {error}")),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to Redis at {url}: no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// One line with the URL and the cause (the library error names the URL;
/// its source says why).
fn unreachable(url: &str, error: &Error) -> anyhow::Error {
    let cause = std::error::Error::source(error).map_or_else(String::new, |s| format!(": {s}"));
    match error {
        Error::Connect { .. } => anyhow::anyhow!("{error}{cause}"),
        other => anyhow::anyhow!("Redis at {url}: {other}{cause}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_per_key_only() {
        let spec = limiter();
        assert!(spec.bucket.is_none() && spec.fast_slow.is_none());
        assert_eq!(spec.exponential.map(|e| e.max_ms), Some(60_000));
    }

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
        let url = &format!("redis://127.0.0.1:{port}/");
        let error = runtime
            .block_on(queue(url, "demo-test", None))
            .expect_err("nothing listens on port 1");
        let text = format!("{error:#}");
        assert!(text.contains(url.as_str()), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}
