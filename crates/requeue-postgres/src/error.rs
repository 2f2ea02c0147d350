//! The crate's error type.

use thiserror::Error;

/// What can go wrong talking to PostgreSQL or with its schema.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema name that is not a plain lowercase identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 characters of a-z, 0-9 and _, \
         not starting with a digit, and not starting with pg_"
    )]
    InvalidSchemaName(String),
    /// The database was migrated by a newer version of this crate.
    #[error(
        "schema {schema} is at migration {found}, newer than the {known} this version of \
         requeue-postgres knows: upgrade it"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The highest version applied in the database.
        found: i32,
        /// The highest version this crate embeds.
        known: i32,
    },
    /// An applied migration differs from the one embedded (edited after
    /// release, or a different build): refusing to guess.
    #[error(
        "schema {schema}: migration {version} was applied with checksum {applied:016x}, \
         but this build embeds {embedded:016x}"
    )]
    MigrationChanged {
        /// The schema.
        schema: String,
        /// The migration's version.
        version: i32,
        /// Its checksum as recorded.
        applied: u64,
        /// Its checksum as embedded.
        embedded: u64,
    },
    /// A queue name PostgreSQL cannot store as one: 1 to 200 bytes.
    #[error("invalid queue name {0:?}: use 1 to 200 bytes")]
    InvalidQueueName(String),
    /// A builder setting out of range.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL at {url}")]
    Connect {
        /// The server, without credentials.
        url: requeue::redact::RedactedUrl,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A key whose encoding PostgreSQL cannot store in a `text` column.
    #[error("the key cannot be stored as PostgreSQL text: {0}")]
    KeyNotText(&'static str),
    /// The database or the connection failed.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
