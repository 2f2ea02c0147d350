//! requeue's work-queue semantics on PostgreSQL, with adds that commit
//! or roll back with the caller's transaction.
//!
//! | module | what |
//! | --- | --- |
//! | [`queue`] | [`PostgresQueue`]: the queue, behind requeue's `AsyncQueue` |
//! | [`schema`] | the schema name, the embedded migrations and [`schema::migrate`] |
//! | [`local_server`] | a throwaway PostgreSQL cluster for tests and benchmarks |
//!
//! The driver is [sqlx](https://docs.rs/sqlx) (queries checked at run
//! time: no database at build time). The design, the data model and the
//! state rules are in `docs/postgres.md`.
#![deny(missing_docs)]

mod error;
pub mod local_server;
pub mod queue;
pub mod schema;

pub use error::{Error, Result};
pub use queue::{BlockingPostgresQueue, PgToken, PostgresQueue, PostgresQueueBuilder};
