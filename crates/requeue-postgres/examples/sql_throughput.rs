//! A first look at the SQL operations' throughput, before the Rust queue
//! exists: N connections each `claim` one item then `done` it, on a
//! throwaway local cluster. Not the benchmark (that is `requeue
//! bench --engine postgres`): a baseline for the design.
//!
//! `cargo run --release -p requeue-postgres --example sql_throughput [items] [nofsync]`

use requeue_postgres::local_server::{LocalServer, LocalServerOptions};
use requeue_postgres::schema::{SchemaName, migrate};
use sqlx::{Connection, PgConnection, Row};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let fsync = std::env::args().nth(2).as_deref() != Some("nofsync");
    let server = LocalServer::start_with(LocalServerOptions {
        fsync,
        settings: vec![("max_connections".into(), "100".into())],
        ..LocalServerOptions::default()
    })?;
    let schema = SchemaName::default();
    let mut conn = PgConnection::connect(&server.url()).await?;
    migrate(&mut conn, &schema).await?;
    let s = schema.quoted();
    for (round, workers) in [1_usize, 8, 32].into_iter().enumerate() {
        let id: i32 = sqlx::query_scalar(&format!(
            "INSERT INTO {s}.queues (name) VALUES ($1) RETURNING id"
        ))
        .bind(format!("w{round}"))
        .fetch_one(&mut conn)
        .await?;
        let started = Instant::now();
        for i in 0..items {
            sqlx::query(&format!("SELECT {s}.add($1, $2)"))
                .bind(id)
                .bind(format!("k{i}"))
                .execute(&mut conn)
                .await?;
        }
        let added = started.elapsed();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (url, s) = (server.url(), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = PgConnection::connect(&url).await?;
                let nonce = i64::try_from(w).unwrap_or(0);
                let mut n = 0_usize;
                loop {
                    let row = sqlx::query(&format!("SELECT * FROM {s}.claim($1, 30000000, $2)"))
                        .bind(id)
                        .bind(nonce)
                        .fetch_optional(&mut conn)
                        .await?;
                    let Some(row) = row else {
                        return Ok::<_, sqlx::Error>(n);
                    };
                    let (key, token): (String, i64) = (row.get(0), row.get(1));
                    sqlx::query(&format!("SELECT {s}.done($1, $2, $3, $4)"))
                        .bind(id)
                        .bind(key)
                        .bind(token)
                        .bind(nonce)
                        .execute(&mut conn)
                        .await?;
                    n += 1;
                }
            }));
        }
        let mut handled = 0;
        for task in tasks {
            handled += task.await??;
        }
        let took = started.elapsed();
        let (dead, live): (i64, i64) = sqlx::query_as(
            "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'items'",
        )
        .fetch_one(&mut conn)
        .await?;
        println!(
            "fsync {fsync}, workers {workers:>2}: add {:>6.0}/s, claim+done {:>6.0}/s ({handled} items); \
             items: {live} live, {dead} dead tuples (stats may lag)",
            items as f64 / added.as_secs_f64(),
            handled as f64 / took.as_secs_f64(),
        );
    }
    Ok(())
}
