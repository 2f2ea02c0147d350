//! What the tests share: one throwaway cluster per test binary (its
//! supervisor removes it when the binary exits), and a fresh schema name
//! per test so that tests never see each other's rows.
#![allow(dead_code, clippy::unwrap_used)]

use requeue_postgres::local_server::{LocalServer, LocalServerOptions};
use requeue_postgres::schema::SchemaName;
use sqlx::{Connection, PgConnection};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary's server (fsync off: these tests do not crash it).
pub fn server() -> &'static LocalServer {
    static SERVER: OnceLock<LocalServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        LocalServer::start_with(LocalServerOptions {
            fsync: false,
            ..LocalServerOptions::default()
        })
        .unwrap()
    })
}

/// A new connection to the shared server.
pub async fn connect() -> PgConnection {
    PgConnection::connect(&server().url()).await.unwrap()
}

/// A schema name no other test of this binary uses.
pub fn fresh_schema(prefix: &str) -> SchemaName {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    SchemaName::new(format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed))).unwrap()
}
