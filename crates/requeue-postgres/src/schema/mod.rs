//! The schema: its name ([`SchemaName`]), the embedded migrations
//! ([`MIGRATIONS`]) and [`migrate`], which brings a database up to date.

mod migrate;
mod name;

pub use migrate::{MIGRATIONS, Migration, applied_versions, migrate};
pub use name::SchemaName;
