//! Model-based property test: random operation sequences applied both to a
//! `RedisQueue` (scripts on its fake clock, a fresh queue name per case, on
//! the binary's shared redis-server) and to requeue's in-memory
//! `WorkQueue`, comparing every observable after every step, with
//! `check_invariants` on the Redis side. The generator, the comparison and
//! what they avoid (and why) are `requeue::engine::conformance::model`,
//! shared with the other engines; here is only how to open a `RedisQueue`
//! and check its keys.
//!
//! Redis particulars of what the generator avoids: items due at the same
//! millisecond come out of Redis in byte order (a sorted set's order for
//! equal scores), so due times never tie; `done(key)`, priorities and
//! shutdown are not part of the Redis engine's interface (items end
//! through their guard; FIFO only).
//!
//! Run longer with `PROPTEST_CASES=2000`. Failing cases are persisted in
//! `proptest-regressions/model.txt` (commit it) and replayed first.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use redis::aio::MultiplexedConnection;
use requeue::engine::QueueError;
use requeue::engine::conformance::model::{Engine, Held, Model, Setup};
use requeue::queue::Item;
use requeue_redis::RedisQueue;
use requeue_redis::inspect::check_invariants;
use requeue_redis::keys::QueueKeys;

/// The Redis engine, with the test's own connection to read the keys.
struct Redis {
    conn: MultiplexedConnection,
}

impl Engine for Redis {
    type Queue = RedisQueue<String>;

    async fn open(&mut self, setup: &Setup<'_>) -> RedisQueue<String> {
        RedisQueue::builder(support::server().url(), setup.name)
            .fake_time(setup.clock.clone())
            .lease(setup.lease)
            .limiter(setup.limiter)
            .build()
            .await
            .unwrap()
    }

    async fn try_get(queue: &RedisQueue<String>) -> Result<Option<Item<String>>, QueueError> {
        queue.try_get().await
    }

    async fn check(&mut self, queue: &RedisQueue<String>, _held: &[Held]) -> Result<(), String> {
        let keys = QueueKeys::new(queue.name()).unwrap();
        check_invariants(&mut self.conn, &keys)
            .await
            .map_err(|broken| format!("invariants broken: {broken}"))
    }
}

#[test]
fn redis_queue_matches_the_in_memory_queue() {
    Model::new()
        .cases(64)
        .regressions(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        ))
        .run(|| async {
            Redis {
                conn: support::connect(&support::server().url()).await,
            }
        });
}
