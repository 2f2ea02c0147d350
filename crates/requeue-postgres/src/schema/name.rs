//! A validated schema name.

use crate::error::{Error, Result};
use std::fmt;

/// The name of the PostgreSQL schema that holds requeue's tables
/// (default `requeue`).
///
/// Validated, not escaped: 1 to 63 bytes (PostgreSQL's identifier limit,
/// beyond which it would truncate silently) of `a-z`, `0-9` and `_`, not
/// starting with a digit, and not `pg_…` (reserved for system schemas).
/// Lowercase only, so that the name is the same quoted or not, in SQL
/// written by hand and in ours. It is still always written quoted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let bytes = name.as_bytes();
        let valid = (1..=63).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            && !bytes.first().is_some_and(u8::is_ascii_digit)
            && !name.starts_with("pg_");
        if valid {
            Ok(SchemaName(name))
        } else {
            Err(Error::InvalidSchemaName(name))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted identifier, for SQL text.
    pub fn quoted(&self) -> String {
        // No character of a valid name needs escaping inside quotes.
        format!("\"{}\"", self.0)
    }
}

impl Default for SchemaName {
    fn default() -> Self {
        SchemaName("requeue".to_owned())
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_plain_lowercase_identifiers() {
        for name in ["requeue", "a", "_x", "queue_2", &"a".repeat(63)] {
            assert_eq!(SchemaName::new(name).unwrap().as_str(), name);
        }
        assert_eq!(SchemaName::new("my_app").unwrap().quoted(), "\"my_app\"");
        assert_eq!(SchemaName::default().as_str(), "requeue");
    }

    #[test]
    fn rejects_anything_that_would_need_escaping_or_be_truncated() {
        for name in [
            "",
            "Requeue",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            "pg_catalog",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(SchemaName::new(name), Err(Error::InvalidSchemaName(_))),
                "{name:?}"
            );
        }
    }
}
