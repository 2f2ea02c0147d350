//! Versioned migrations, embedded in the binary, applied in one
//! transaction under an advisory lock.

use super::SchemaName;
use crate::error::{Error, Result};
use sqlx::{Connection, Executor, PgConnection};

/// One embedded migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its version: 1, 2, …, applied in this order.
    pub version: i32,
    /// A short name (the file's, without the number).
    pub name: &'static str,
    /// The SQL, with `{schema}` standing for the quoted schema name and
    /// `{channel}` for the schema's wake-up channel (its plain name, which
    /// [`SchemaName`] keeps free of quotes).
    pub sql: &'static str,
}

impl Migration {
    /// FNV-1a of the SQL as embedded (before the schema name is put in):
    /// recorded when applied, so that a migration edited after it ran is
    /// noticed instead of silently differing between databases.
    pub fn checksum(&self) -> u64 {
        self.sql.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn sql_for(&self, schema: &SchemaName) -> String {
        self.sql
            .replace("{schema}", &schema.quoted())
            .replace("{channel}", schema.as_str())
    }
}

/// Every migration this version knows, in order. Append only: a released
/// migration is never edited (its checksum is checked).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "operations",
        sql: include_str!("migrations/0002_operations.sql"),
    },
    Migration {
        version: 3,
        name: "batch",
        sql: include_str!("migrations/0003_batch.sql"),
    },
    Migration {
        version: 4,
        name: "per_key_lookups",
        sql: include_str!("migrations/0004_per_key_lookups.sql"),
    },
];

/// The table that records applied migrations, inside the schema.
const VERSION_TABLE: &str = "requeue_migrations";

/// Brings `schema` up to date: creates it if needed, then applies the
/// migrations not yet recorded, all in one transaction (a failure leaves
/// the database as it was). Returns the versions applied now (empty when
/// it was up to date).
///
/// Concurrent callers (every process of a deployment at startup) are
/// serialized by a transaction-scoped advisory lock derived from the
/// schema name: the first applies, the others then find nothing to do.
pub fn migrate<'a>(
    conn: &'a mut PgConnection,
    schema: &'a SchemaName,
) -> impl Future<Output = Result<Vec<i32>>> + Send + 'a {
    migrate_inner(conn, schema)
}

async fn migrate_inner(conn: &mut PgConnection, schema: &SchemaName) -> Result<Vec<i32>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .execute(&mut *tx)
        .await?;
    let q = schema.quoted();
    let create = format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.{VERSION_TABLE} (
           version integer PRIMARY KEY,
           name text NOT NULL,
           checksum bigint NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         );"
    );
    // Through `Executor::execute`: `RawSql::execute`'s future is not
    // `Send` for a reborrowed connection (higher-ranked lifetimes).
    (&mut *tx).execute(sqlx::raw_sql(&create)).await?;
    let applied: Vec<(i32, i64)> = sqlx::query_as(&format!(
        "SELECT version, checksum FROM {q}.{VERSION_TABLE} ORDER BY version"
    ))
    .fetch_all(&mut *tx)
    .await?;
    check_applied(schema, &applied)?;
    // Collected before the loop: an iterator adapter holding a closure
    // across the awaits below would make this future not `Send` (a
    // rustc limitation with higher-ranked lifetimes), and callers spawn it.
    let pending: Vec<&'static Migration> = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect();
    let mut done = Vec::new();
    for migration in pending {
        let sql = migration.sql_for(schema);
        (&mut *tx).execute(sqlx::raw_sql(&sql)).await?;
        sqlx::query(&format!(
            "INSERT INTO {q}.{VERSION_TABLE} (version, name, checksum) VALUES ($1, $2, $3)"
        ))
        .bind(migration.version)
        .bind(migration.name)
        .bind(checksum_as_bigint(migration.checksum()))
        .execute(&mut *tx)
        .await?;
        tracing::info!(schema = %schema, version = migration.version, name = migration.name, "requeue-postgres: applied migration");
        done.push(migration.version);
    }
    tx.commit().await?;
    Ok(done)
}

/// The versions recorded as applied in `schema` (empty if it has none).
pub async fn applied_versions(conn: &mut PgConnection, schema: &SchemaName) -> Result<Vec<i32>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{}.{VERSION_TABLE}", schema.quoted()))
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT version FROM {}.{VERSION_TABLE} ORDER BY version",
        schema.quoted()
    ))
    .fetch_all(&mut *conn)
    .await?)
}

/// Refuses a database migrated by a newer build, or whose applied
/// migrations differ from ours.
fn check_applied(schema: &SchemaName, applied: &[(i32, i64)]) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&(found, _)) = applied.iter().find(|(v, _)| *v > known) {
        return Err(Error::SchemaTooNew {
            schema: schema.to_string(),
            found,
            known,
        });
    }
    for &(version, recorded) in applied {
        if let Some(migration) = MIGRATIONS.iter().find(|m| m.version == version) {
            let embedded = migration.checksum();
            if checksum_as_bigint(embedded) != recorded {
                return Err(Error::MigrationChanged {
                    schema: schema.to_string(),
                    version,
                    applied: u64::from_ne_bytes(recorded.to_ne_bytes()),
                    embedded,
                });
            }
        }
    }
    Ok(())
}

/// A u64 stored in a bigint column, bit for bit.
fn checksum_as_bigint(checksum: u64) -> i64 {
    i64::from_ne_bytes(checksum.to_ne_bytes())
}

/// The advisory lock key of `schema`'s migrations: a hash of a prefix and
/// the name, so that two schemas migrate independently, and unlikely to
/// collide with the application's own advisory locks.
fn lock_key(schema: &SchemaName) -> i64 {
    let hash = format!("requeue-postgres migrate {schema}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(m.version).ok(), Some(i + 1), "{}", m.name);
        }
    }

    #[test]
    fn lock_keys_differ_per_schema() {
        let a = SchemaName::new("a").ok();
        let b = SchemaName::new("b").ok();
        assert_ne!(a.map(|a| lock_key(&a)), b.map(|b| lock_key(&b)));
    }
}
