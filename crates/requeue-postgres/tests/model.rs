//! Model-based property test: random operation sequences applied both to a
//! `PostgresQueue` (statements on its fake clock, a fresh queue name per
//! case, on the binary's shared PostgreSQL server) and to requeue's
//! in-memory `WorkQueue`, the gets alternating between two
//! `PostgresQueue`s on the same table and fake clock, as two processes
//! would, comparing every observable after every step. The generator, the
//! comparison and what they avoid (and why) are
//! `requeue::engine::conformance::model`, shared with the other engines;
//! here is only how to open a `PostgresQueue` and check its table.
//!
//! After every step the table is checked against the model: exactly the
//! held keys are in state `p` (processing), under their guards' tokens
//! (the table's CHECK constraints guard the other state rules). Items due
//! at the same instant are promoted in key order (`promote`: `ORDER BY
//! due_us, key`), so due times never tie; priorities are covered by
//! `operations.rs`.
//!
//! Run longer with `PROPTEST_CASES=500`. Failing cases are persisted in
//! `proptest-regressions/model.txt` (commit it) and replayed first.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::engine::QueueError;
use requeue::engine::conformance::model::{Engine, Held, Model, Setup};
use requeue::queue::Item;
use requeue_postgres::PostgresQueue;
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// The PostgreSQL engine, with the test's own connection to read the table.
struct Postgres {
    conn: PgConnection,
}

impl Engine for Postgres {
    type Queue = PostgresQueue<String>;

    async fn open(&mut self, setup: &Setup<'_>) -> PostgresQueue<String> {
        PostgresQueue::builder(support::server().url(), setup.name)
            .fake_time(setup.clock.clone())
            // A case makes one call at a time: two connections each are
            // plenty, and every case opens two queues on the shared server.
            .max_connections(2)
            .lease(setup.lease)
            .limiter(setup.limiter)
            .build()
            .await
            .unwrap()
    }

    /// The table against the model: exactly the held keys are processing,
    /// each under its guard's token.
    async fn try_get(queue: &PostgresQueue<String>) -> Result<Option<Item<String>>, QueueError> {
        queue.try_get().await
    }

    async fn check(&mut self, queue: &PostgresQueue<String>, held: &[Held]) -> Result<(), String> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT i.key, i.token FROM requeue.items i JOIN requeue.queues q ON q.id = i.queue_id \
             WHERE q.name = $1 AND i.state = 'p'",
        )
        .bind(queue.name())
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| e.to_string())?;
        let processing: BTreeMap<String, String> = rows
            .into_iter()
            .map(|(key, token)| (key, token.to_string()))
            .collect();
        let held: BTreeMap<String, String> = held
            .iter()
            .map(|h| (h.key.clone(), h.token.clone().unwrap_or_default()))
            .collect();
        if processing == held {
            Ok(())
        } else {
            Err(format!(
                "processing rows (key, token) vs the held guards: {processing:?} != {held:?}"
            ))
        }
    }
}

#[test]
fn postgres_queue_matches_the_in_memory_queue() {
    Model::new()
        .cases(64)
        .regressions(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        ))
        .second_process()
        .run(|| async {
            Postgres {
                conn: support::connect().await,
            }
        });
}
