//! Every operation at once from several connections on a few hot keys,
//! with the server's clock: no error (no deadlock, no broken state rule —
//! the table's CHECK constraints would fail the statement), no token handed
//! out twice, and nothing left behind once the work is done and forgotten.
#![allow(clippy::unwrap_used)]

mod support;

use requeue_postgres::schema::migrate;
use sqlx::{PgConnection, Row};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use support::{connect, fresh_schema};

const KEYS: usize = 6;
const WORKERS: u64 = 6;
const STEPS: usize = 150;

/// A lease held by a worker.
struct Lease {
    key: String,
    token: i64,
    nonce: i64,
}

async fn step(
    conn: &mut PgConnection,
    s: &str,
    id: i32,
    rng: &mut fastrand::Rng,
    held: &mut Vec<Lease>,
    holders: &Mutex<HashSet<i64>>,
) {
    let key = format!("k{}", rng.usize(..KEYS));
    match rng.u8(..8) {
        0 | 1 => {
            sqlx::query(&format!("SELECT {s}.add($1, $2)"))
                .bind(id)
                .bind(&key)
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        2 => {
            sqlx::query(&format!("SELECT {s}.add_after($1, $2, $3)"))
                .bind(id)
                .bind(&key)
                .bind(rng.i64(0..3_000))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        3 | 4 => {
            let nonce = rng.i64(..);
            // Short leases so that reaping happens too.
            let rows = sqlx::query(&format!("SELECT * FROM {s}.claim($1, $2, $3, NULL, 2)"))
                .bind(id)
                .bind(rng.i64(1_000..20_000))
                .bind(nonce)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            for row in rows {
                let lease = Lease {
                    key: row.get(0),
                    token: row.get(1),
                    nonce,
                };
                // A token is never handed out twice, whoever claims.
                // (Whether a key's tokens grow in claim order cannot be
                // read here: two workers record their claims in whatever
                // order their threads get to this lock.)
                let fresh = holders.lock().unwrap().insert(lease.token);
                assert!(fresh, "token {} handed out twice", lease.token);
                held.push(lease);
            }
        }
        5 => {
            if !held.is_empty() {
                let lease = held.swap_remove(rng.usize(..held.len()));
                let code: i16 =
                    sqlx::query_scalar(&format!("SELECT {s}.done($1, $2, $3, $4, NULL, $5)"))
                        .bind(id)
                        .bind(&lease.key)
                        .bind(lease.token)
                        .bind(lease.nonce)
                        .bind(rng.bool())
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                assert!([-2, -1, 1, 2].contains(&code));
            }
        }
        6 => {
            sqlx::query(&format!("SELECT * FROM {s}.extend($1, $2, $3, $4, 10000)"))
                .bind(id)
                .bind(held.iter().map(|l| l.key.clone()).collect::<Vec<_>>())
                .bind(held.iter().map(|l| l.token).collect::<Vec<_>>())
                .bind(held.iter().map(|l| l.nonce).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        _ => {
            sqlx::query(&format!("SELECT {s}.reap($1, NULL, 10, 1000, 5000)"))
                .bind(id)
                .execute(&mut *conn)
                .await
                .unwrap();
            if let Some(lease) = held.pop() {
                sqlx::query(&format!("SELECT {s}.release($1, $2, $3, $4)"))
                    .bind(id)
                    .bind(&lease.key)
                    .bind(lease.token)
                    .bind(lease.nonce)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_operations_at_once_on_hot_keys() {
    let schema = fresh_schema("stress");
    let mut conn = connect().await;
    migrate(&mut conn, &schema).await.unwrap();
    let s = schema.quoted();
    let id: i32 = sqlx::query_scalar(&format!(
        "INSERT INTO {s}.queues (name) VALUES ('q') RETURNING id"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let holders = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for seed in 0..WORKERS {
        let (s, holders) = (s.clone(), holders.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = connect().await;
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut held = Vec::new();
            for _ in 0..STEPS {
                step(&mut conn, &s, id, &mut rng, &mut held, &holders).await;
            }
            // Finish what this worker holds.
            for lease in held {
                sqlx::query(&format!("SELECT {s}.done($1, $2, $3, $4, NULL, true)"))
                    .bind(id)
                    .bind(&lease.key)
                    .bind(lease.token)
                    .bind(lease.nonce)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    // Drain: far in the future, every delay is due and every lease expired.
    let far = "(extract(epoch FROM now()) * 1e6)::bigint + 3600000000";
    loop {
        sqlx::query(&format!("SELECT {s}.reap($1, {far}, 100, 0, 0)"))
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
        let rows = sqlx::query(&format!("SELECT * FROM {s}.claim($1, 1000, 1, {far}, 100)"))
            .bind(id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let (key, token): (String, i64) = (row.get(0), row.get(1));
            sqlx::query(&format!("SELECT {s}.done($1, $2, $3, 1, {far}, true)"))
                .bind(id)
                .bind(key)
                .bind(token)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    // Keys whose last done did not forget keep their failure count (an
    // idle row, as client-go keeps it until Forget): forget them all.
    for k in 0..KEYS {
        sqlx::query(&format!("SELECT {s}.forget($1, $2)"))
            .bind(id)
            .bind(format!("k{k}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {s}.items"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "done and forgotten: nothing left");
}
