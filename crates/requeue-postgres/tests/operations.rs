//! The SQL operations (migration 0002) called directly on a real server,
//! with fake time: each transition of the state machine, fencing, reaping
//! with backoff, argument checks that write nothing, a rolled-back add,
//! and concurrent claimers.
#![allow(clippy::unwrap_used)]

mod support;

use requeue_postgres::schema::{SchemaName, migrate};
use sqlx::{Connection, PgConnection, Row};
use std::collections::HashSet;
use support::{connect, fresh_schema};

/// A queue's row and a connection, with the clock in our hands.
struct Q {
    conn: PgConnection,
    s: String,
    id: i32,
    now: i64,
}

/// A claimed item.
#[derive(Debug, Clone)]
struct Held {
    key: String,
    token: i64,
    nonce: i64,
    added_us: Option<i64>,
    lease_us: i64,
}

const NONCE: i64 = 42;

impl Q {
    async fn new(prefix: &str) -> Q {
        let schema = fresh_schema(prefix);
        Q::in_schema(&schema, "q").await
    }

    async fn in_schema(schema: &SchemaName, name: &str) -> Q {
        let mut conn = connect().await;
        migrate(&mut conn, schema).await.unwrap();
        let s = schema.quoted();
        let id: i32 = sqlx::query_scalar(&format!(
            "INSERT INTO {s}.queues (name) VALUES ($1) RETURNING id"
        ))
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        Q {
            conn,
            s,
            id,
            now: 1_000_000_000,
        }
    }

    async fn add(&mut self, key: &str) -> i16 {
        sqlx::query_scalar(&format!("SELECT {}.add($1, $2, $3)", self.s))
            .bind(self.id)
            .bind(key)
            .bind(self.now)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn add_prio(&mut self, key: &str, priority: i16) -> i16 {
        sqlx::query_scalar(&format!("SELECT {}.add($1, $2, $3, $4)", self.s))
            .bind(self.id)
            .bind(key)
            .bind(self.now)
            .bind(priority)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn add_after(&mut self, key: &str, delay_us: i64) -> i16 {
        sqlx::query_scalar(&format!("SELECT {}.add_after($1, $2, $3, $4)", self.s))
            .bind(self.id)
            .bind(key)
            .bind(delay_us)
            .bind(self.now)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn claim_n(&mut self, lease_us: i64, n: i32) -> Vec<Held> {
        claim(
            &mut self.conn,
            &self.s,
            self.id,
            lease_us,
            n,
            Some(self.now),
        )
        .await
    }

    async fn claim(&mut self, lease_us: i64) -> Option<Held> {
        self.claim_n(lease_us, 1).await.pop()
    }

    async fn done(&mut self, held: &Held, forget: bool) -> i16 {
        sqlx::query_scalar(&format!("SELECT {}.done($1, $2, $3, $4, $5, $6)", self.s))
            .bind(self.id)
            .bind(&held.key)
            .bind(held.token)
            .bind(held.nonce)
            .bind(self.now)
            .bind(forget)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn release(&mut self, held: &Held) -> i16 {
        sqlx::query_scalar(&format!("SELECT {}.release($1, $2, $3, $4, $5)", self.s))
            .bind(self.id)
            .bind(&held.key)
            .bind(held.token)
            .bind(held.nonce)
            .bind(self.now)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn extend(&mut self, held: &[&Held], lease_us: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(&format!(
            "SELECT * FROM {}.extend($1, $2, $3, $4, $5, $6)",
            self.s
        ))
        .bind(self.id)
        .bind(held.iter().map(|h| h.key.clone()).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.token).collect::<Vec<_>>())
        .bind(held.iter().map(|h| h.nonce).collect::<Vec<_>>())
        .bind(lease_us)
        .bind(self.now)
        .fetch_all(&mut self.conn)
        .await
    }

    async fn reap(&mut self, base_us: i64, max_us: i64) -> i32 {
        sqlx::query_scalar(&format!("SELECT {}.reap($1, $2, 100, $3, $4)", self.s))
            .bind(self.id)
            .bind(self.now)
            .bind(base_us)
            .bind(max_us)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn forget(&mut self, key: &str) {
        sqlx::query(&format!("SELECT {}.forget($1, $2)", self.s))
            .bind(self.id)
            .bind(key)
            .execute(&mut self.conn)
            .await
            .unwrap();
    }

    async fn num_requeues(&mut self, key: &str) -> i32 {
        sqlx::query_scalar(&format!("SELECT {}.num_requeues($1, $2)", self.s))
            .bind(self.id)
            .bind(key)
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    /// `(state, dirty, due_us, failures)` of a key's row, if it has one.
    async fn row(&mut self, key: &str) -> Option<(String, bool, Option<i64>, i32)> {
        sqlx::query(&format!(
            "SELECT state::text, dirty, due_us, failures FROM {}.items \
             WHERE queue_id = $1 AND key = $2",
            self.s
        ))
        .bind(self.id)
        .bind(key)
        .fetch_optional(&mut self.conn)
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    }

    async fn rows(&mut self) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.items", self.s))
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }
}

async fn claim(
    conn: &mut PgConnection,
    s: &str,
    id: i32,
    lease_us: i64,
    n: i32,
    now: Option<i64>,
) -> Vec<Held> {
    sqlx::query(&format!("SELECT * FROM {s}.claim($1, $2, $3, $4, $5)"))
        .bind(id)
        .bind(lease_us)
        .bind(NONCE)
        .bind(now)
        .bind(n)
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Held {
            key: r.get(0),
            token: r.get(1),
            nonce: NONCE,
            added_us: r.get(2),
            lease_us: r.get(3),
        })
        .collect()
}

const LEASE: i64 = 30_000_000;

#[tokio::test]
async fn dedup_park_and_requeue_on_done() {
    let mut q = Q::new("park").await;
    assert_eq!(q.add("a").await, 1);
    assert_eq!(q.add("a").await, 0, "dedup while queued");
    let t0 = q.now;
    q.now += 500;
    let a = q.claim(LEASE).await.unwrap();
    assert_eq!(a.key, "a");
    assert_eq!(
        a.added_us,
        Some(t0),
        "the add time comes back for the queue-time metric"
    );
    assert_eq!(a.lease_us, q.now + LEASE);
    assert!(q.claim(LEASE).await.is_none(), "one holder per key");
    assert_eq!(q.add("a").await, 2, "parked while held");
    assert_eq!(q.add("a").await, 0, "dedup while parked");
    assert!(
        q.claim(LEASE).await.is_none(),
        "a parked item is not claimable"
    );
    assert_eq!(q.done(&a, false).await, 2, "requeued on done");
    let again = q.claim(LEASE).await.unwrap();
    assert!(again.token > a.token, "tokens grow");
    assert_eq!(q.done(&again, false).await, 1);
    assert_eq!(q.rows().await, 0, "nothing left: the row is deleted");
}

#[tokio::test]
async fn fenced_done_refuses_other_leases() {
    let mut q = Q::new("fence").await;
    q.add("a").await;
    let a = q.claim(LEASE).await.unwrap();
    let wrong_token = Held {
        token: a.token + 1,
        ..a.clone()
    };
    let wrong_nonce = Held {
        nonce: a.nonce + 1,
        ..a.clone()
    };
    assert_eq!(q.done(&wrong_token, false).await, -1);
    assert_eq!(q.done(&wrong_nonce, false).await, -1);
    assert_eq!(q.release(&wrong_nonce).await, -1);
    assert_eq!(q.done(&a, false).await, 1);
    assert_eq!(q.done(&a, false).await, -2, "nobody holds it any more");
}

#[tokio::test]
async fn earliest_delay_wins_and_an_immediate_add_cancels_it() {
    let mut q = Q::new("delay").await;
    assert_eq!(q.add_after("a", 1_000).await, 3);
    assert_eq!(q.add_after("a", 5_000).await, 0, "a later delay is ignored");
    assert_eq!(q.add_after("a", 400).await, 3, "an earlier one moves it");
    q.now += 399;
    assert!(q.claim(LEASE).await.is_none(), "not due yet");
    q.now += 1;
    assert_eq!(q.claim(LEASE).await.unwrap().key, "a", "promoted when due");

    assert_eq!(q.add_after("b", 1_000).await, 3);
    assert_eq!(q.add("b").await, 1, "an immediate add cancels the delay");
    assert_eq!(q.row("b").await.unwrap().2, None);
    assert_eq!(
        q.add_after("b", 1_000).await,
        0,
        "a dirty item ignores delays"
    );
    assert_eq!(
        q.add_after("c", 0).await,
        1,
        "a zero delay is an immediate add"
    );
}

#[tokio::test]
async fn a_held_item_can_carry_a_delay() {
    let mut q = Q::new("helddelay").await;
    q.add("a").await;
    let a = q.claim(LEASE).await.unwrap();
    assert_eq!(q.add_after("a", 1_000).await, 3);
    assert_eq!(q.done(&a, false).await, 1);
    assert_eq!(q.row("a").await.unwrap().0, "d", "delayed after done");
    q.now += 1_000;
    let a = q.claim(LEASE).await.unwrap();
    // Due while held: parked, and requeued on done.
    assert_eq!(q.add_after("a", 10).await, 3);
    q.now += 10;
    assert_eq!(q.add("other").await, 1); // promotes first
    let row = q.row("a").await.unwrap();
    assert_eq!((row.0.as_str(), row.1), ("p", true), "parked");
    assert_eq!(q.done(&a, false).await, 2);
}

#[tokio::test]
async fn reaping_counts_a_failure_and_backs_off_per_key() {
    let mut q = Q::new("reap").await;
    q.add("a").await;
    let a = q.claim(1_000).await.unwrap();
    q.now += 999;
    assert_eq!(q.reap(5_000, 1_000_000).await, 0, "not expired yet");
    q.now += 1;
    assert_eq!(q.reap(5_000, 1_000_000).await, 1);
    assert_eq!(
        q.row("a").await.unwrap(),
        ("d".into(), false, Some(q.now + 5_000), 1)
    );
    assert_eq!(q.num_requeues("a").await, 1);
    assert_eq!(q.done(&a, false).await, -2, "the old holder lost it");
    assert_eq!(q.extend(&[&a], LEASE).await.unwrap(), vec!["a".to_owned()]);
    q.now += 5_000;
    let a2 = q.claim(1_000).await.unwrap();
    assert!(a2.token > a.token);
    q.now += 1_000;
    assert_eq!(q.reap(5_000, 1_000_000).await, 1);
    assert_eq!(q.row("a").await.unwrap().2, Some(q.now + 10_000), "doubled");
    let stats: i64 = sqlx::query_scalar(&format!(
        "SELECT lease_expired_total FROM {}.stats WHERE queue_id = $1",
        q.s
    ))
    .bind(q.id)
    .fetch_one(&mut q.conn)
    .await
    .unwrap();
    assert_eq!(stats, 2);

    // No backoff: straight back into the queue; a parked add is kept.
    q.add("b").await;
    let _b = q.claim(1_000).await.unwrap();
    assert_eq!(q.add("b").await, 2);
    q.now += 1_000;
    assert_eq!(q.reap(0, 0).await, 1);
    let row = q.row("b").await.unwrap();
    assert_eq!((row.0.as_str(), row.1, row.3), ("q", true, 1));
}

#[tokio::test]
async fn done_with_failures_keeps_an_idle_row_until_forget() {
    let mut q = Q::new("forget").await;
    q.add("a").await;
    q.claim(1).await.unwrap();
    q.now += 1;
    q.reap(0, 0).await;
    let a = q.claim(LEASE).await.unwrap();
    assert_eq!(q.done(&a, false).await, 1);
    assert_eq!(q.row("a").await.unwrap(), ("i".into(), false, None, 1));
    q.forget("a").await;
    assert_eq!(q.row("a").await, None);
    assert_eq!(q.num_requeues("a").await, 0);

    // done with forget does both at once.
    q.add("b").await;
    q.claim(1).await.unwrap();
    q.now += 1;
    q.reap(0, 0).await;
    let b = q.claim(LEASE).await.unwrap();
    assert_eq!(q.done(&b, true).await, 1);
    assert_eq!(q.row("b").await, None);
}

#[tokio::test]
async fn extend_renews_held_leases_never_shortens_and_checks_arguments() {
    let mut q = Q::new("extend").await;
    q.add("a").await;
    q.add("b").await;
    let held = q.claim_n(1_000, 2).await;
    let (a, b) = (&held[0], &held[1]);
    q.now += 500;
    assert_eq!(
        q.extend(&[a, b], 2_000).await.unwrap(),
        Vec::<String>::new()
    );
    q.now += 1_999;
    assert_eq!(q.reap(0, 0).await, 0, "renewed");
    assert!(q.extend(&[a], 1).await.unwrap().is_empty());
    assert_eq!(q.reap(0, 0).await, 0, "an extend never shortens a lease");
    let stranger = Held {
        key: "zzz".into(),
        ..a.clone()
    };
    assert_eq!(
        q.extend(&[&stranger], 1_000).await.unwrap(),
        vec!["zzz".to_owned()]
    );

    // Mismatched arrays: refused before anything is written.
    let error = sqlx::query(&format!(
        "SELECT * FROM {}.extend($1, ARRAY['a','b'], ARRAY[1]::bigint[], ARRAY[1,2]::bigint[], 10, NULL)",
        q.s
    ))
    .bind(q.id)
    .execute(&mut q.conn)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("extend"), "{error}");
}

#[tokio::test]
async fn release_puts_the_item_at_the_head_without_a_failure() {
    let mut q = Q::new("release").await;
    q.add("a").await;
    q.add("b").await;
    q.add("c").await;
    let a = q.claim(LEASE).await.unwrap();
    assert_eq!(q.add_after("a", 5_000).await, 3);
    assert_eq!(q.release(&a).await, 1);
    assert_eq!(q.row("a").await.unwrap(), ("q".into(), true, None, 0));
    assert_eq!(q.claim(LEASE).await.unwrap().key, "a", "back at the head");
    assert_eq!(q.claim(LEASE).await.unwrap().key, "b");
}

#[tokio::test]
async fn priority_first_then_fifo() {
    let mut q = Q::new("prio").await;
    q.add("low1").await;
    q.add_prio("high", 5).await;
    q.add("low2").await;
    let order: Vec<String> = q
        .claim_n(LEASE, 3)
        .await
        .into_iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(
        order,
        ["high", "low1", "low2"],
        "a batch comes in claim order"
    );
    // One at a time too.
    for key in ["x", "y", "z"] {
        q.add(key).await;
    }
    for key in ["x", "y", "z"] {
        assert_eq!(q.claim(LEASE).await.unwrap().key, key);
    }
}

#[tokio::test]
async fn bad_arguments_write_nothing() {
    let mut q = Q::new("args").await;
    let error = sqlx::query(&format!("SELECT {}.add($1, NULL)", q.s))
        .bind(q.id)
        .execute(&mut q.conn)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("required"), "{error}");
    // A delayed item due now would have been promoted by that add: an
    // error rolls the promotion back too.
    q.add_after("d", 10).await;
    q.now += 10;
    let error = sqlx::query(&format!("SELECT {}.done($1, 'd', NULL, 1, $2)", q.s))
        .bind(q.id)
        .bind(q.now)
        .execute(&mut q.conn)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("required"), "{error}");
    assert_eq!(
        q.row("d").await.unwrap().0,
        "d",
        "not promoted: nothing written"
    );
}

#[tokio::test]
async fn an_add_in_a_rolled_back_transaction_leaves_nothing() {
    let mut q = Q::new("tx").await;
    let s = q.s.clone();
    let mut tx = q.conn.begin().await.unwrap();
    let added: i16 = sqlx::query_scalar(&format!("SELECT {s}.add($1, 'a', NULL, 0::smallint, 0)"))
        .bind(q.id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(added, 1);
    tx.rollback().await.unwrap();
    assert_eq!(q.rows().await, 0);

    let mut tx = q.conn.begin().await.unwrap();
    sqlx::query(&format!("SELECT {s}.add($1, 'b', NULL, 0::smallint, 0)"))
        .bind(q.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    // Not visible to a claimer until the commit.
    let mut other = connect().await;
    assert!(claim(&mut other, &s, q.id, LEASE, 1, None).await.is_empty());
    tx.commit().await.unwrap();
    assert_eq!(
        claim(&mut other, &s, q.id, LEASE, 1, None).await[0].key,
        "b"
    );
}

#[tokio::test]
async fn concurrent_claimers_never_share_an_item() {
    let schema = fresh_schema("conc");
    let mut q = Q::in_schema(&schema, "q").await;
    for i in 0..300 {
        q.add(&format!("k{i}")).await;
    }
    let (s, id) = (q.s.clone(), q.id);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect().await;
            let mut got = Vec::new();
            loop {
                let batch = claim(&mut conn, &s, id, LEASE, 3, None).await;
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        }));
    }
    let mut keys = HashSet::new();
    let mut tokens = HashSet::new();
    for task in tasks {
        for held in task.await.unwrap() {
            assert!(keys.insert(held.key.clone()), "{} claimed twice", held.key);
            assert!(tokens.insert(held.token));
        }
    }
    assert_eq!(keys.len(), 300);
}

#[tokio::test]
async fn concurrent_adds_of_one_key_queue_it_once() {
    let schema = fresh_schema("addrace");
    let q = Q::in_schema(&schema, "q").await;
    let (s, id) = (q.s.clone(), q.id);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect().await;
            let mut codes = Vec::new();
            for i in 0..20 {
                let code: i16 = sqlx::query_scalar(&format!("SELECT {s}.add($1, $2)"))
                    .bind(id)
                    .bind(format!("k{i}"))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                codes.push(code);
            }
            codes
        }));
    }
    let mut queued = 0;
    for task in tasks {
        queued += task.await.unwrap().iter().filter(|c| **c == 1).count();
    }
    assert_eq!(queued, 20, "each key queued by exactly one add");
    let mut q = q;
    assert_eq!(q.rows().await, 20);
}

#[tokio::test]
async fn a_lease_extension_is_a_hot_update() {
    let mut q = Q::new("hot").await;
    for i in 0..20 {
        q.add(&format!("k{i}")).await;
    }
    let held = q.claim_n(LEASE, 20).await;
    let refs: Vec<&Held> = held.iter().collect();
    let s = q.s.clone();
    let counters = format!(
        "SELECT pg_stat_get_xact_tuples_updated('{s}.items'::regclass),
                pg_stat_get_xact_tuples_hot_updated('{s}.items'::regclass)"
    );
    let mut tx = q.conn.begin().await.unwrap();
    // The backend's pending counters (they may still hold earlier
    // transactions' counts, so this one's are a difference); within a
    // transaction they are not flushed, unlike the cumulative statistics.
    let before: (i64, i64) = sqlx::query_as(&counters).fetch_one(&mut *tx).await.unwrap();
    // Two rounds: within one transaction no old version can be pruned,
    // so every version must fit in the page's free space.
    for round in 1..=2 {
        let lost: Vec<String> =
            sqlx::query_scalar(&format!("SELECT * FROM {s}.extend($1, $2, $3, $4, $5, $6)"))
                .bind(q.id)
                .bind(refs.iter().map(|h| h.key.clone()).collect::<Vec<_>>())
                .bind(refs.iter().map(|h| h.token).collect::<Vec<_>>())
                .bind(refs.iter().map(|h| h.nonce).collect::<Vec<_>>())
                .bind(LEASE)
                .bind(q.now + round)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert!(lost.is_empty());
    }
    let after: (i64, i64) = sqlx::query_as(&counters).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let (updated, hot) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(updated, 40);
    assert_eq!(hot, updated, "lease_us is in no index: every extend is HOT");
}

impl Q {
    /// add_rate_limited with the exponential limiter and/or a bucket.
    async fn add_limited(
        &mut self,
        key: &str,
        exp: Option<(i64, i64)>,
        bucket: Option<(f64, f64)>,
    ) -> (i16, i64) {
        sqlx::query_as(&format!(
            "SELECT * FROM {}.add_rate_limited($1, $2, $3, p_base_us => $4, p_max_us => $5, \
             p_rate => $6, p_burst => $7)",
            self.s
        ))
        .bind(self.id)
        .bind(key)
        .bind(self.now)
        .bind(exp.map(|e| e.0))
        .bind(exp.map(|e| e.1))
        .bind(bucket.map(|b| b.0))
        .bind(bucket.map(|b| b.1))
        .fetch_one(&mut self.conn)
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn rate_limited_adds_back_off_per_key_until_forget() {
    let mut q = Q::new("ratelim").await;
    let exp = Some((5_000, 40_000));
    assert_eq!(q.add_limited("a", exp, None).await, (3, 5_000));
    assert_eq!(q.num_requeues("a").await, 1);
    // Each attempt counts, even when the delay is ignored (earliest wins).
    assert_eq!(q.add_limited("a", exp, None).await, (0, 10_000));
    assert_eq!(q.add_limited("a", exp, None).await, (0, 20_000));
    assert_eq!(q.add_limited("a", exp, None).await, (0, 40_000));
    assert_eq!(
        q.add_limited("a", exp, None).await,
        (0, 40_000),
        "capped at max"
    );
    assert_eq!(q.num_requeues("a").await, 5);
    assert_eq!(q.row("a").await.unwrap().2, Some(q.now + 5_000));
    q.forget("a").await;
    assert_eq!(q.num_requeues("a").await, 0);
    assert_eq!(
        q.row("a").await.unwrap().0,
        "d",
        "forget keeps the pending delay"
    );
}

#[tokio::test]
async fn the_bucket_is_shared_and_lets_a_burst_through() {
    let mut q = Q::new("bucket").await;
    let bucket = Some((10.0, 2.0)); // 10/s: one token per 100 ms
    assert_eq!(q.add_limited("a", None, bucket).await, (1, 0));
    assert_eq!(q.add_limited("b", None, bucket).await, (1, 0));
    assert_eq!(q.add_limited("c", None, bucket).await, (3, 100_000));
    assert_eq!(q.add_limited("d", None, bucket).await, (3, 200_000));
    assert_eq!(
        q.num_requeues("c").await,
        0,
        "a bucket alone counts no failures"
    );
    q.now += 1_000_000; // refilled
    assert_eq!(q.add_limited("e", None, bucket).await, (1, 0));

    // Zero rate: the burst, then never.
    let mut z = Q::new("zero").await;
    let zero = Some((0.0, 1.0));
    assert_eq!(z.add_limited("a", None, zero).await, (1, 0));
    let (code, delay) = z.add_limited("b", None, zero).await;
    assert_eq!(code, 3);
    assert_eq!(delay, 9_223_372_036_854_775);
}

#[tokio::test]
async fn extend_renews_aside_a_row_another_transaction_holds() {
    let mut q = Q::new("extendlock").await;
    q.add("a").await;
    q.add("b").await;
    let held = q.claim_n(1_000, 2).await;
    // Another session re-adds "a" in an open transaction (parks it).
    let mut other = connect().await;
    let mut tx = other.begin().await.unwrap();
    let code: i16 = sqlx::query_scalar(&format!("SELECT {}.add($1, 'a', $2, 0::smallint, 0)", q.s))
        .bind(q.id)
        .bind(q.now)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(code, 2);
    // The renewal does not wait for it, and "a" is not reported lost.
    let stranger = Held {
        key: "zzz".into(),
        ..held[0].clone()
    };
    let lost = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        q.extend(&[&held[0], &held[1], &stranger], 50_000),
    )
    .await
    .expect("extend must not wait for the other transaction")
    .unwrap();
    assert_eq!(lost, ["zzz"]);
    tx.commit().await.unwrap();
    // "b" was renewed in its row; "a", whose row was locked, beside it (in
    // `renewals`): reaping honours both, so the live holder keeps "a".
    let aside: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.renewals WHERE queue_id = $1 AND key = 'a'",
        q.s
    ))
    .bind(q.id)
    .fetch_one(&mut q.conn)
    .await
    .unwrap();
    assert_eq!(aside, 1);
    q.now += 10_000; // past the claim's lease (1 ms), within the renewal's
    assert_eq!(q.reap(0, 0).await, 0);
    assert_eq!(q.row("a").await.unwrap().0, "p");
    assert_eq!(q.row("b").await.unwrap().0, "p");
    // Past the renewal too: both are reaped, and nothing is left aside.
    q.now += 50_000;
    assert_eq!(q.reap(0, 0).await, 2);
    let aside: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}.renewals", q.s))
        .fetch_one(&mut q.conn)
        .await
        .unwrap();
    assert_eq!(aside, 0);
}
