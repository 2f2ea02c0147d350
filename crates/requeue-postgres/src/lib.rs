//! requeue's work-queue semantics on PostgreSQL (in progress: issue 19).
//!
//! | module | what |
//! | --- | --- |
//! | [`schema`] | the schema name, the embedded migrations and [`schema::migrate`] |
//! | [`local_server`] | a throwaway PostgreSQL cluster for tests and benchmarks |
//!
//! The driver is [sqlx](https://docs.rs/sqlx) (queries checked at run
//! time: no database at build time). The design, the data model and the
//! state rules are in `docs/postgres.md`.
#![deny(missing_docs)]

mod error;
pub mod local_server;
pub mod schema;

pub use error::{Error, Result};
