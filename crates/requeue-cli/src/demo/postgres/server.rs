//! `--postgres URL|local`: the server (a throwaway one for `local`), and
//! the queue's settings, which the parent and every worker process open
//! the queue with.

use super::super::args::PgTarget;
use crate::show::PgUrl;
use anyhow::Context;
use requeue::metrics::MetricsProvider;
use requeue_postgres::PostgresQueue;
use requeue_postgres::local_server::{BIN_DIR_ENV, LocalServer};
use std::sync::Arc;
use std::time::Duration;

/// The lease, as the Redis demo's: far above a reconcile.
pub const LEASE: Duration = Duration::from_secs(5);
/// The schema of the queue's tables (the builder's default).
pub const SCHEMA: &str = "requeue";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The server of the run.
pub struct Target {
    /// Its URL (never printed with its password).
    pub url: PgUrl,
    /// The throwaway server of `local`, removed when this drops.
    pub local: Option<LocalServer>,
}

impl Target {
    /// The URL given, or a throwaway server started now.
    pub fn resolve(target: &PgTarget) -> anyhow::Result<Self> {
        match target {
            PgTarget::Url(url) => Ok(Target {
                url: url.clone(),
                local: None,
            }),
            PgTarget::Local => {
                let server = LocalServer::start().with_context(|| {
                    format!(
                        "--postgres local: cannot start a PostgreSQL server (are initdb and \
                         postgres installed? set {BIN_DIR_ENV} to their directory)"
                    )
                })?;
                Ok(Target {
                    url: PgUrl::from(server.url()),
                    local: Some(server),
                })
            }
        }
    }
}

/// Opens the queue `name` at `url` (creating its tables if need be), with
/// the demo's per-key backoff. Unreachable: one line naming the URL without its password.
pub async fn open(
    url: &PgUrl,
    name: &str,
    metrics: Option<Arc<dyn MetricsProvider>>,
) -> anyhow::Result<PostgresQueue<String>> {
    let mut builder = PostgresQueue::<String>::builder(url.expose(), name)
        .lease(LEASE)
        .limiter(super::super::crew::limiter())
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    builder
        .build()
        .await
        .with_context(|| format!("cannot open queue {name} in PostgreSQL at {url}"))
}
