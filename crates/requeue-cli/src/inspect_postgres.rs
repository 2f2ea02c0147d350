//! `requeue inspect --postgres URL --queue NAME`: what a requeue-postgres
//! queue holds right now — its items by state, the oldest lease deadline
//! and the next due time, its counters (`stats` row), and the dead rows of
//! the items table as `pg_stat_user_tables` last saw them. One read-only
//! transaction (repeatable read, so the counts agree), once or every
//! second with `--watch`.

use crate::show::PgUrl;
use anyhow::Context;
use sqlx::Connection;
use std::time::Duration;

/// The schema requeue-postgres creates its tables in by default.
const SCHEMA: &str = "requeue";
/// How long connecting and one snapshot may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One reading of the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub queued: i64,
    pub processing: i64,
    /// Processing and added again meanwhile (client-go's dirty).
    pub parked: i64,
    /// Processing and re-added with a delay meanwhile.
    pub delayed_while_held: i64,
    pub delayed: i64,
    pub idle_with_failures: i64,
    /// µs from now to the oldest lease deadline (negative: expired, not yet reaped).
    pub oldest_lease_in_us: Option<i64>,
    /// µs from now to the next due delayed item.
    pub next_due_in_us: Option<i64>,
    pub lease_expired_total: i64,
    pub retries_total: i64,
    /// `n_live_tup`, `n_dead_tup` of the items table (every queue's rows).
    pub live_rows: Option<i64>,
    pub dead_rows: Option<i64>,
    pub last_autovacuum: Option<String>,
}

/// Prints the snapshot, once or every second with `watch` (then a lost
/// connection is a warning and the view resumes when the server is back).
pub fn run(url: &PgUrl, queue: &str, watch: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let mut down = false;
        loop {
            match within(read(url, queue)).await {
                Ok(snapshot) => {
                    if down {
                        eprintln!("PostgreSQL at {url} answers again");
                        down = false;
                    }
                    print!("{}", render(url, queue, &snapshot));
                }
                Err(error) if watch => {
                    if !down {
                        eprintln!(
                            "warning: {}; retrying every second",
                            crate::show::one_line(&error)
                        );
                        down = true;
                    }
                }
                Err(error) => return Err(error),
            }
            if !watch {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!();
        }
    })
}

async fn within<T>(
    read: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "PostgreSQL did not answer within {} s",
                TIMEOUT.as_secs()
            ))
        })
}

/// Reads the snapshot on a connection of its own.
async fn read(url: &PgUrl, queue: &str) -> anyhow::Result<Snapshot> {
    let mut conn = sqlx::PgConnection::connect(url.expose())
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {url}"))?;
    let snapshot = read_on(&mut conn, queue).await;
    let _ = conn.close().await;
    snapshot
}

async fn read_on(conn: &mut sqlx::PgConnection, queue: &str) -> anyhow::Result<Snapshot> {
    let mut tx = conn.begin().await.context("cannot begin a transaction")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("cannot make the transaction read-only")?;
    let tables: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{SCHEMA}.items"))
        .fetch_one(&mut *tx)
        .await
        .context("cannot look for requeue's tables")?;
    anyhow::ensure!(
        tables.is_some(),
        "no requeue-postgres tables in schema `{SCHEMA}` (no queue was ever built in this database)"
    );
    let id: Option<i32> =
        sqlx::query_scalar(&format!("SELECT id FROM {SCHEMA}.queues WHERE name = $1"))
            .bind(queue)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot read the queues table")?;
    let Some(id) = id else {
        anyhow::bail!(
            "no queue named `{}` in schema `{SCHEMA}`",
            crate::show::input(queue)
        );
    };
    let counts: (i64, i64, i64, i64, i64, i64, Option<i64>, Option<i64>) =
        sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE state = 'q'), \
                    count(*) FILTER (WHERE state = 'p'), \
                    count(*) FILTER (WHERE state = 'p' AND dirty), \
                    count(*) FILTER (WHERE state = 'p' AND due_us IS NOT NULL), \
                    count(*) FILTER (WHERE state = 'd'), \
                    count(*) FILTER (WHERE state = 'i'), \
                    min(lease_us) FILTER (WHERE state = 'p') - {SCHEMA}.now_us(NULL), \
                    min(due_us) - {SCHEMA}.now_us(NULL) \
             FROM {SCHEMA}.items WHERE queue_id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .context("cannot count the queue's items")?;
    let stats: Option<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT lease_expired_total, retries_total FROM {SCHEMA}.stats WHERE queue_id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot read the queue's stats row")?;
    let table: Option<(i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT n_live_tup, n_dead_tup, \
                to_char(last_autovacuum, 'YYYY-MM-DD HH24:MI:SS TZ') \
         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'items'",
    )
    .bind(SCHEMA)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot read pg_stat_user_tables")?;
    tx.commit().await.context("cannot end the transaction")?;
    let (queued, processing, parked, delayed_while_held, delayed, idle, lease, due) = counts;
    let (lease_expired_total, retries_total) = stats.unwrap_or((0, 0));
    Ok(Snapshot {
        queued,
        processing,
        parked,
        delayed_while_held,
        delayed,
        idle_with_failures: idle,
        oldest_lease_in_us: lease,
        next_due_in_us: due,
        lease_expired_total,
        retries_total,
        live_rows: table.as_ref().map(|t| t.0),
        dead_rows: table.as_ref().map(|t| t.1),
        last_autovacuum: table.and_then(|t| t.2),
    })
}

/// `in 1.2 s`, or `1.2 s ago` for a time passed.
fn from_now(us: i64) -> String {
    let s = us as f64 / 1e6;
    if us >= 0 {
        format!("in {s:.1} s")
    } else {
        format!("{:.1} s ago", -s)
    }
}

/// The snapshot as lines.
fn render(url: &PgUrl, queue: &str, s: &Snapshot) -> String {
    let mut out = format!(
        "queue {} at {url} (schema {SCHEMA})\n",
        crate::show::input(queue)
    );
    out.push_str(&format!("  queued              {}\n", s.queued));
    out.push_str(&format!(
        "  processing          {} ({} added again while held, {} re-added with a delay while held)\n",
        s.processing, s.parked, s.delayed_while_held
    ));
    out.push_str(&format!(
        "  delayed             {}{}\n",
        s.delayed,
        s.next_due_in_us
            .map_or_else(String::new, |us| format!(" (next due {})", from_now(us)))
    ));
    out.push_str(&format!("  idle with failures  {}\n", s.idle_with_failures));
    out.push_str(&format!(
        "  oldest lease deadline: {}\n",
        match s.oldest_lease_in_us {
            None => "none (nothing leased)".to_string(),
            Some(us) if us < 0 => format!("{} (expired, not reaped yet)", from_now(us)),
            Some(us) => from_now(us),
        }
    ));
    out.push_str(&format!(
        "  stats: lease_expired_total {}, retries_total {}\n",
        s.lease_expired_total, s.retries_total
    ));
    match (s.live_rows, s.dead_rows) {
        (Some(live), Some(dead)) => out.push_str(&format!(
            "  items table (every queue of the schema): n_dead_tup {dead}, n_live_tup {live}, last autovacuum {}\n",
            s.last_autovacuum.as_deref().unwrap_or("never")
        )),
        _ => out.push_str("  items table: not in pg_stat_user_tables\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_forward_and_back() {
        assert_eq!(from_now(1_200_000), "in 1.2 s");
        assert_eq!(from_now(-500_000), "0.5 s ago");
    }

    #[test]
    fn the_render_names_every_figure_and_no_password() {
        let url = PgUrl::from("postgres://app:s3cret@127.0.0.1:5432/db".to_string());
        let text = render(
            &url,
            "shop",
            &Snapshot {
                queued: 3,
                oldest_lease_in_us: Some(-10),
                ..Snapshot::default()
            },
        );
        assert!(!text.contains("s3cret"), "{text}");
        for part in [
            "queued              3",
            "expired",
            "lease_expired_total 0",
            "idle with failures",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }
}
