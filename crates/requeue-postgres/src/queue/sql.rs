//! The statements the queue sends, formatted once with the schema's
//! quoted name (sqlx caches each as a prepared statement per connection).
//! Every one calls a function of migrations 0002 and 0003, so each is one
//! round trip and atomic.

use crate::schema::SchemaName;

/// The queue's statements for one schema.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    /// `add(queue, key, now, priority, promote)`
    pub(crate) add: String,
    /// `add_after(queue, key, delay_us, now, priority, promote)`
    pub(crate) add_after: String,
    /// `add_rate_limited(queue, key, now, base, max, fast, slow, max_fast, rate, burst, priority, promote)`
    pub(crate) add_rate_limited: String,
    /// `done(queue, key, token, nonce, now, forget, promote, wait)`
    pub(crate) done: String,
    /// `extend(queue, keys, tokens, nonces, lease_us, now)`
    pub(crate) extend: String,
    /// `release(queue, key, token, nonce, now)`
    pub(crate) release: String,
    /// `forget(queue, key)`
    pub(crate) forget: String,
    /// `num_requeues(queue, key)`
    pub(crate) num_requeues: String,
    /// `len(queue, now)`
    pub(crate) len: String,
    /// `batch(queue, now, adds, keys, tokens, nonces, forget, claims, lease_us, nonce, reap, base, max, spare, fairness, passed, promote)`
    pub(crate) batch: String,
    /// `open_queue(name)`
    pub(crate) open_queue: String,
}

impl Sql {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        let s = schema.quoted();
        Sql {
            add: format!("SELECT {s}.add($1, $2, $3, $4, $5)"),
            add_after: format!("SELECT {s}.add_after($1, $2, $3, $4, $5, $6)"),
            add_rate_limited: format!(
                "SELECT code, delay_us FROM {s}.add_rate_limited($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            done: format!("SELECT {s}.done($1, $2, $3, $4, $5, $6, $7, true)"),
            extend: format!("SELECT * FROM {s}.extend($1, $2, $3, $4, $5, $6)"),
            release: format!("SELECT {s}.release($1, $2, $3, $4, $5)"),
            forget: format!("SELECT {s}.forget($1, $2)"),
            num_requeues: format!("SELECT {s}.num_requeues($1, $2)"),
            len: format!("SELECT {s}.len($1, $2)"),
            batch: format!(
                "SELECT * FROM {s}.batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
            ),
            open_queue: format!("SELECT {s}.open_queue($1)"),
        }
    }
}
