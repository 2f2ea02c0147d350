//! Bloat and a held-back xmin, measured (docs/postgres.md §4): a run of
//! unique items through the SQL functions on a throwaway local cluster,
//! with the dead tuples and sizes of `items` and of each of its indexes
//! printed as the run goes.
//!
//! Adders (several connections) `add` unique keys, several per statement,
//! keeping at most a bounded backlog queued; workers loop `claim` a batch,
//! then `done` each item of it (one statement each, autocommit). Every
//! `--every` items a row shows, over the last interval, items/s and the CPU
//! time per item of the server's processes and of this client (from
//! `/proc`: on a shared machine a steadier measure than wall time); then
//! what `pg_stat_user_tables` says about `items` (it lags by up to about a
//! second), the sizes of its heap and of each index, and the oldest xmin
//! of the cluster. At the end: the final state and the whole run's rates,
//! then the sizes after a manual `VACUUM`.
//!
//! The server runs with `fsync = off` unless `--fsync`: dead tuples, sizes
//! and CPU per item do not depend on WAL flushes. On 2 shared vCPUs a run
//! with the defaults takes about 3 minutes, with `--hold-xmin` about 9.
//!
//! ```text
//! cargo run --release -p requeue-postgres --example bloat -- [items] [workers] [flags]
//! ```
//!
//! `items` defaults to 1,000,000 and `workers` to 8. Flags:
//!
//! - `--hold-xmin[=FROM:TO]`: another session opens a REPEATABLE READ
//!   transaction (`SELECT txid_current()`) when FROM % of the items are
//!   done and stays idle in it until TO % are (default 10:60), or until
//!   `--hold-max=SECS` have passed, whichever is first; then it commits.
//!   With `--hold-read-only` it only reads (`SELECT count(*) FROM
//!   pg_class`: a snapshot, no xid); with `--hold-other-database` it is
//!   connected to another database of the same cluster.
//! - `--reset-autovacuum`: `items` with PostgreSQL's default autovacuum
//!   settings (its per-table ones RESET) instead of ours.
//! - `--table=NAME=VALUE`: `ALTER TABLE items SET (NAME = VALUE)` first
//!   (repeatable; e.g. `--table=fillfactor=100`).
//! - `--server=NAME=VALUE`: a server setting (repeatable; e.g.
//!   `--server=autovacuum_naptime=10s`).
//! - `--fsync`: fsync on (default off: this measures bloat, not commits).
//! - `--server-log=PATH`: copy the server's log there at the end (with
//!   `--server=log_autovacuum_min_duration=0`, say, or auto_explain).
//! - `--adders=N` (4), `--add-batch=N` keys added per statement (16),
//!   `--batch=N` claimed per call (16), `--backlog=N` queued at most
//!   (10,000; filled before the workers start), `--every=N` items per row
//!   (items / 20).

use requeue_postgres::local_server::{LocalServer, LocalServerOptions};
use requeue_postgres::schema::{SchemaName, migrate};
use sqlx::{Connection, PgConnection, Row};
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Leases long enough that nothing is ever reaped.
const LEASE_US: i64 = 600_000_000;

/// What a run does (from the command line).
#[derive(Debug)]
struct Config {
    items: u64,
    workers: usize,
    adders: usize,
    add_batch: u64,
    batch: i32,
    backlog: u64,
    every: u64,
    /// Hold an old snapshot from this many items done to that many.
    hold: Option<(u64, u64)>,
    hold_max: Option<Duration>,
    /// The holding transaction only reads (a snapshot, no xid).
    hold_read_only: bool,
    /// The holding session is in another database of the cluster.
    hold_other_database: bool,
    reset_autovacuum: bool,
    table: Vec<(String, String)>,
    server: Vec<(String, String)>,
    fsync: bool,
    /// Where to copy the server's log at the end.
    server_log: Option<String>,
}

impl Config {
    fn parse() -> Result<Self> {
        let mut positional = Vec::new();
        let mut config = Config {
            items: 1_000_000,
            workers: 8,
            adders: 4,
            add_batch: 16,
            batch: 16,
            backlog: 10_000,
            every: 0,
            hold: None,
            hold_max: None,
            hold_read_only: false,
            hold_other_database: false,
            reset_autovacuum: false,
            table: Vec::new(),
            server: Vec::new(),
            fsync: false,
            server_log: None,
        };
        let mut hold_percent = None;
        for arg in std::env::args().skip(1) {
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value)),
                None => (arg.as_str(), None),
            };
            let value_of = |what: &str| {
                value.ok_or_else(|| format!("{flag} needs ={what}; see the example's doc comment"))
            };
            let pair = |v: &str| {
                v.split_once('=')
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .ok_or_else(|| format!("{flag}: expected NAME=VALUE, got {v}"))
            };
            match flag {
                "--hold-xmin" => {
                    let (from, to) = value
                        .unwrap_or("10:60")
                        .split_once(':')
                        .ok_or_else(|| format!("--hold-xmin=FROM:TO (percent), got {value:?}"))?;
                    hold_percent = Some((from.parse::<u64>()?, to.parse::<u64>()?));
                }
                "--hold-max" => {
                    config.hold_max = Some(Duration::from_secs(value_of("SECS")?.parse()?));
                }
                "--hold-read-only" => config.hold_read_only = true,
                "--hold-other-database" => config.hold_other_database = true,
                "--reset-autovacuum" => config.reset_autovacuum = true,
                "--table" => config.table.push(pair(value_of("NAME=VALUE")?)?),
                "--server" => config.server.push(pair(value_of("NAME=VALUE")?)?),
                "--fsync" => config.fsync = true,
                "--server-log" => config.server_log = Some(value_of("PATH")?.to_owned()),
                "--adders" => config.adders = value_of("N")?.parse()?,
                "--batch" => config.batch = value_of("N")?.parse()?,
                "--add-batch" => config.add_batch = value_of("N")?.parse()?,
                "--backlog" => config.backlog = value_of("N")?.parse()?,
                "--every" => config.every = value_of("N")?.parse()?,
                _ if flag.starts_with("--") => {
                    return Err(format!("unknown flag {arg}; see the example's doc comment").into());
                }
                _ => positional.push(arg.replace('_', "").parse::<u64>()?),
            }
        }
        if let Some(&items) = positional.first() {
            config.items = items;
        }
        if let Some(&workers) = positional.get(1) {
            config.workers = usize::try_from(workers)?;
        }
        if config.every == 0 {
            config.every = (config.items / 20).max(1);
        }
        config.hold = hold_percent.map(|(from, to)| {
            (
                config.items * from.min(100) / 100,
                config.items * to.min(100) / 100,
            )
        });
        if config.workers == 0
            || config.adders == 0
            || config.add_batch == 0
            || config.batch <= 0
            || config.backlog == 0
        {
            return Err("workers, adders, batch and backlog must be positive".into());
        }
        Ok(config)
    }
}

/// Progress shared by the tasks.
#[derive(Default)]
struct Progress {
    /// The next key an adder takes (`k<n>`).
    next_key: AtomicU64,
    added: AtomicU64,
    done: AtomicU64,
}

impl Progress {
    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// What the server says about `items` at one moment.
struct Snapshot {
    live: i64,
    dead: i64,
    autovacuums: i64,
    updates: i64,
    hot_updates: i64,
    total: i64,
    heap: i64,
    /// (index name, bytes), by name.
    indexes: Vec<(String, i64)>,
    /// The oldest backend_xmin's age (transactions) and its transaction's
    /// age (s), over the other sessions.
    xmin_age: Option<i32>,
    xact_secs: Option<f64>,
}

impl Snapshot {
    async fn take(conn: &mut PgConnection, s: &str) -> Result<Self> {
        let row = sqlx::query(&format!(
            "SELECT n_live_tup, n_dead_tup, autovacuum_count, n_tup_upd, n_tup_hot_upd, \
                    pg_total_relation_size(relid), pg_relation_size(relid) \
             FROM pg_stat_user_tables WHERE relid = '{s}.items'::regclass"
        ))
        .fetch_one(&mut *conn)
        .await?;
        let indexes: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT indexrelname::text, pg_relation_size(indexrelid) FROM pg_stat_user_indexes \
             WHERE relid = '{s}.items'::regclass ORDER BY indexrelname"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let (xmin_age, xact_secs): (Option<i32>, Option<f64>) = sqlx::query_as(
            "SELECT max(age(backend_xmin)), \
                    max(extract(epoch FROM now() - xact_start))::float8 \
             FROM pg_stat_activity \
             WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Snapshot {
            live: row.try_get(0)?,
            dead: row.try_get(1)?,
            autovacuums: row.try_get(2)?,
            updates: row.try_get(3)?,
            hot_updates: row.try_get(4)?,
            total: row.try_get(5)?,
            heap: row.try_get(6)?,
            indexes,
            xmin_age,
            xact_secs,
        })
    }

    fn header(&self) -> String {
        let mut line = format!(
            "{:>9} {:>7} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>4} {:>9} {:>9} {:>8} {:>7}",
            "done",
            "t s",
            "items/s",
            "srv µs/i",
            "cli µs/i",
            "backlog",
            "live",
            "dead",
            "avac",
            "upd",
            "hot upd",
            "total MB",
            "heap MB",
        );
        for (name, _) in &self.indexes {
            let short = name.strip_prefix("items_").unwrap_or(name);
            line.push_str(&format!(" {:>10}", format!("{short} MB")));
        }
        line.push_str(&format!(" {:>9} {:>8}", "xmin age", "xact s"));
        line
    }

    /// The row: `progress` (the first six columns, from [`Interval`])
    /// then the snapshot's.
    fn row(&self, progress: &str) -> String {
        let mut line = format!(
            "{progress} {:>9} {:>9} {:>4} {:>9} {:>9} {:>8.2} {:>7.2}",
            self.live,
            self.dead,
            self.autovacuums,
            self.updates,
            self.hot_updates,
            mib(self.total),
            mib(self.heap),
        );
        for (_, bytes) in &self.indexes {
            line.push_str(&format!(" {:>10.2}", mib(*bytes)));
        }
        let age = self.xmin_age.map_or("-".to_owned(), |a| a.to_string());
        let xact = self.xact_secs.map_or("-".to_owned(), |t| format!("{t:.1}"));
        line.push_str(&format!(" {age:>9} {xact:>8}"));
        line
    }
}

/// A point of the run: when, how many items were done, and the CPU
/// seconds used so far by the server and by this client. Two of them make
/// an interval's columns.
struct Interval {
    at: Instant,
    done: u64,
    cpu: Option<(f64, f64)>,
}

impl Interval {
    fn now(done: u64, postmaster: Option<u32>) -> Self {
        Interval {
            at: Instant::now(),
            done,
            cpu: postmaster.and_then(cpu_seconds),
        }
    }

    /// The first six columns of a row, for the interval since `earlier`.
    fn columns(&self, earlier: &Interval, started: Instant, backlog: u64) -> String {
        let items = self.done.saturating_sub(earlier.done) as f64;
        let secs = self.at.duration_since(earlier.at).as_secs_f64();
        let rate = if secs > 0.0 { items / secs } else { 0.0 };
        let (server, client) = match (self.cpu, earlier.cpu) {
            (Some((s1, c1)), Some((s0, c0))) if items > 0.0 => (
                format!("{:.0}", (s1 - s0) * 1e6 / items),
                format!("{:.0}", (c1 - c0) * 1e6 / items),
            ),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        format!(
            "{:>9} {:>7.1} {rate:>8.0} {server:>8} {client:>8} {backlog:>7}",
            self.done,
            self.at.duration_since(started).as_secs_f64(),
        )
    }
}

/// CPU time in clock ticks (1/100 s on Linux) from `/proc/<pid>/stat`:
/// (ppid, own user + system, waited-for children's user + system).
fn proc_ticks(pid: &str) -> Option<(u32, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ppid = fields.get(1)?.parse().ok()?;
    Some((ppid, field(11)? + field(12)?, field(13)? + field(14)?))
}

/// CPU seconds used so far by the server (the postmaster, its running
/// children — backends, autovacuum — and the children it has reaped) and by
/// this process. `None` without a Linux `/proc`.
fn cpu_seconds(postmaster: u32) -> Option<(f64, f64)> {
    let (_, own, reaped) = proc_ticks(&postmaster.to_string())?;
    let mut server = own + reaped;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some((ppid, ticks, _)) = proc_ticks(name)
            && ppid == postmaster
        {
            server += ticks;
        }
    }
    let (_, client, _) = proc_ticks("self")?;
    Some((server as f64 / 100.0, client as f64 / 100.0))
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn adder(
    url: String,
    s: String,
    queue: i32,
    config: Arc<Config>,
    progress: Arc<Progress>,
) -> Result<()> {
    let mut conn = PgConnection::connect(&url).await?;
    // Several adds in one statement (one transaction) when --add-batch > 1.
    let sql =
        format!("SELECT count(*) FILTER (WHERE {s}.add($1, k) = 1) FROM unnest($2::text[]) k");
    loop {
        let n = progress
            .next_key
            .fetch_add(config.add_batch, Ordering::Relaxed);
        if n >= config.items {
            break;
        }
        let end = (n + config.add_batch).min(config.items);
        while n.saturating_sub(progress.done()) >= config.backlog {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let keys: Vec<String> = (n..end).map(|i| format!("k{i}")).collect();
        let queued: i64 = sqlx::query_scalar(&sql)
            .bind(queue)
            .bind(&keys)
            .fetch_one(&mut conn)
            .await?;
        if queued != i64::try_from(keys.len())? {
            return Err(format!("add of k{n}..k{end} queued {queued}, expected all").into());
        }
        progress.added.fetch_add(end - n, Ordering::Relaxed);
    }
    conn.close().await?;
    Ok(())
}

async fn worker(
    url: String,
    s: String,
    queue: i32,
    config: Arc<Config>,
    progress: Arc<Progress>,
) -> Result<()> {
    let mut conn = PgConnection::connect(&url).await?;
    let nonce = fastrand::i64(..);
    let claim = format!(
        "SELECT item, item_token FROM {s}.claim(p_queue => $1, p_lease_us => $2, \
         p_nonce => $3, p_limit => $4)"
    );
    let done = format!("SELECT {s}.done($1, $2, $3, $4)");
    // The backlog is filled first, so that claims see a queue of its size.
    while progress.added.load(Ordering::Relaxed) < config.backlog.min(config.items) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while progress.done() < config.items {
        let batch: Vec<(String, i64)> = sqlx::query_as(&claim)
            .bind(queue)
            .bind(LEASE_US)
            .bind(nonce)
            .bind(config.batch)
            .fetch_all(&mut conn)
            .await?;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for (key, token) in batch {
            let code: i16 = sqlx::query_scalar(&done)
                .bind(queue)
                .bind(&key)
                .bind(token)
                .bind(nonce)
                .fetch_one(&mut conn)
                .await?;
            if code != 1 {
                return Err(format!("done({key}) returned {code}, expected 1").into());
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Closing flushes this backend's table statistics at once.
    conn.close().await?;
    Ok(())
}

/// A row of the detection query: pid, state, backend_xid, backend_xmin,
/// age(backend_xmin), transaction age (s).
type ActivityRow = (
    i32,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<f64>,
);

/// How much of `items_ready` a claim reads: the claim's pick, without its
/// locks, under EXPLAIN (ANALYZE, BUFFERS); printed as comment lines. The
/// session has bitmap scans off so that it gets the plan the claims in
/// `claim` use (an index scan of `items_ready` in claim order, as
/// auto_explain shows); left free, the planner may pick a bitmap scan and
/// a sort here, which reads every queued row.
async fn explain_pick(conn: &mut PgConnection, s: &str, queue: i32, when: &str) -> Result<()> {
    sqlx::query("SET enable_bitmapscan = off")
        .execute(&mut *conn)
        .await?;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT key FROM {s}.items \
         WHERE queue_id = {queue} AND state = 'q' ORDER BY priority DESC, seq LIMIT 16"
    ))
    .fetch_all(conn)
    .await?;
    println!("# a claim's pick, {when}:");
    for line in plan {
        println!("#   {line}");
    }
    Ok(())
}

/// The session that holds back the xmin horizon: idle in a REPEATABLE READ
/// transaction that has an xid (or, with `--hold-read-only`, only a
/// snapshot). A second connection shows how it is spotted and what it does
/// to a claim.
async fn holder(
    (url, hold_url): (String, String),
    s: String,
    queue: i32,
    (from, to): (u64, u64),
    config: Arc<Config>,
    progress: Arc<Progress>,
) -> Result<()> {
    let mut conn = PgConnection::connect(&hold_url).await?;
    let mut probe = PgConnection::connect(&url).await?;
    while progress.done() < from {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    explain_pick(&mut probe, &s, queue, "before the hold").await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut conn)
        .await?;
    let what = if config.hold_read_only {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class")
            .fetch_one(&mut conn)
            .await?;
        format!("that only reads (a snapshot, no xid; {n} rows of pg_class)")
    } else {
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut conn)
            .await?;
        format!("with an xid (txid_current() = {xid})")
    };
    let started = Instant::now();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "# {} items done: a session of database {database} opens a REPEATABLE READ \
         transaction {what} and stays idle in it",
        progress.done()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    // How an operator spots it: every backend's xmin is held back to the
    // old transaction's; the culprit is the oldest transaction, here idle.
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT pid, state, backend_xid::text, backend_xmin::text, age(backend_xmin), \
                    extract(epoch FROM now() - xact_start)::float8 \
             FROM pg_stat_activity WHERE backend_xmin IS NOT NULL \
             ORDER BY age(backend_xmin) DESC, xact_start LIMIT 3",
    )
    .fetch_all(&mut probe)
    .await?;
    println!(
        "# SELECT pid, state, backend_xid, backend_xmin, age(backend_xmin), \
         now() - xact_start FROM pg_stat_activity ORDER BY age(backend_xmin) DESC, \
         xact_start (5 s into the hold; first 3):"
    );
    for (pid, state, xid, xmin, age, secs) in rows {
        println!(
            "#   pid {pid:>6}  {state:<20} xid {:>8}  xmin {:>8}  age {:>7}  xact {:>6.1} s",
            xid.unwrap_or_else(|| "-".to_owned()),
            xmin.unwrap_or_default(),
            age.unwrap_or_default(),
            secs.unwrap_or_default()
        );
    }
    explain_pick(&mut probe, &s, queue, "5 s into the hold").await?;
    let max = config.hold_max.unwrap_or(Duration::MAX);
    while progress.done() < to && started.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    explain_pick(&mut probe, &s, queue, "at the end of the hold").await?;
    sqlx::query("COMMIT").execute(&mut conn).await?;
    println!(
        "# {} items done: the old transaction commits after {:.1} s",
        progress.done(),
        started.elapsed().as_secs_f64()
    );
    conn.close().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    explain_pick(&mut probe, &s, queue, "2 s after the commit").await?;
    probe.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let config = Arc::new(Config::parse()?);
    let mut settings = vec![("max_connections".to_owned(), "100".to_owned())];
    settings.extend(config.server.iter().cloned());
    let server = LocalServer::start_with(LocalServerOptions {
        fsync: config.fsync,
        settings,
        ..LocalServerOptions::default()
    })?;
    let schema = SchemaName::default();
    let s = schema.quoted();
    let mut conn = PgConnection::connect(&server.url()).await?;
    migrate(&mut conn, &schema).await?;
    if config.reset_autovacuum {
        sqlx::query(&format!(
            "ALTER TABLE {s}.items RESET (autovacuum_vacuum_scale_factor, \
             autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, \
             autovacuum_vacuum_insert_threshold, autovacuum_vacuum_cost_delay, \
             autovacuum_analyze_scale_factor)"
        ))
        .execute(&mut conn)
        .await?;
    }
    for (name, value) in &config.table {
        sqlx::query(&format!("ALTER TABLE {s}.items SET ({name} = {value})"))
            .execute(&mut conn)
            .await?;
    }
    let queue: i32 = sqlx::query_scalar(&format!(
        "INSERT INTO {s}.queues (name) VALUES ('bloat') RETURNING id"
    ))
    .fetch_one(&mut conn)
    .await?;

    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let reloptions: Option<Vec<String>> = sqlx::query_scalar(&format!(
        "SELECT reloptions FROM pg_class WHERE oid = '{s}.items'::regclass"
    ))
    .fetch_one(&mut conn)
    .await?;
    let server_settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN \
         ('fsync', 'synchronous_commit', 'autovacuum_naptime', 'autovacuum_vacuum_cost_limit', \
          'autovacuum_vacuum_cost_delay', 'autovacuum_vacuum_scale_factor', \
          'autovacuum_vacuum_threshold', 'shared_buffers') ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    println!(
        "# PostgreSQL {version}; {} items, {} adders adding {} per statement, {} workers \
         claiming {} per call, backlog at most {}",
        config.items, config.adders, config.add_batch, config.workers, config.batch, config.backlog
    );
    println!(
        "# server: {}",
        server_settings
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "# items WITH ({})",
        reloptions.unwrap_or_default().join(", ")
    );
    if let Some((from, to)) = config.hold {
        println!(
            "# holding an old snapshot from {from} to {to} items done{}",
            config
                .hold_max
                .map_or(String::new(), |d| format!(" (at most {} s)", d.as_secs()))
        );
    }

    let progress = Arc::new(Progress::default());
    let url = server.url();
    let mut tasks = Vec::new();
    for _ in 0..config.adders {
        tasks.push(tokio::spawn(adder(
            url.clone(),
            s.clone(),
            queue,
            config.clone(),
            progress.clone(),
        )));
    }
    for _ in 0..config.workers {
        tasks.push(tokio::spawn(worker(
            url.clone(),
            s.clone(),
            queue,
            config.clone(),
            progress.clone(),
        )));
    }
    if let Some((from, to)) = config.hold {
        let hold_url = if config.hold_other_database {
            sqlx::query("CREATE DATABASE other")
                .execute(&mut conn)
                .await?;
            server.url_for("other")
        } else {
            url.clone()
        };
        tasks.push(tokio::spawn(holder(
            (url.clone(), hold_url),
            s.clone(),
            queue,
            (from, to),
            config.clone(),
            progress.clone(),
        )));
    }

    let started = Instant::now();
    let postmaster = server.pid();
    let first = Snapshot::take(&mut conn, &s).await?;
    println!("{}", first.header());
    let start = Interval::now(0, postmaster);
    let mut last = Interval::now(0, postmaster);
    let mut next_mark = config.every;
    let (mut max_dead, mut max_total) = (0_i64, 0_i64);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(finished) = tasks.iter().position(|t| t.is_finished()) {
            // A task that has ended: its error, if any, ends the run.
            let task = tasks.swap_remove(finished);
            task.await??;
        }
        let done = progress.done();
        if done < next_mark.min(config.items) {
            continue;
        }
        let at = Instant::now();
        if done >= config.items {
            // The last row waits for every task to end: the backends' CPU
            // time and table statistics are complete once their
            // connections have closed and the postmaster has reaped them.
            for task in tasks.drain(..) {
                task.await??;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let now = Interval {
            at,
            done,
            cpu: postmaster.and_then(cpu_seconds),
        };
        let snapshot = Snapshot::take(&mut conn, &s).await?;
        max_dead = max_dead.max(snapshot.dead);
        max_total = max_total.max(snapshot.total);
        let backlog = progress.added.load(Ordering::Relaxed).saturating_sub(done);
        println!("{}", snapshot.row(&now.columns(&last, started, backlog)));
        last = now;
        while next_mark <= done {
            next_mark += config.every;
        }
        if done >= config.items {
            break;
        }
    }
    let end = Snapshot::take(&mut conn, &s).await?;
    let took = last.at.duration_since(started);
    println!(
        "# finished: {} items in {:.1} s, {:.0} items/s overall; most dead tuples seen {}, \
         largest total size seen {:.2} MB; whole run (rate and CPU per item):",
        config.items,
        took.as_secs_f64(),
        config.items as f64 / took.as_secs_f64(),
        max_dead,
        mib(max_total),
    );
    println!("{}", end.header());
    println!("{}", end.row(&last.columns(&start, started, 0)));
    let vacuum_started = Instant::now();
    sqlx::query(&format!("VACUUM {s}.items"))
        .execute(&mut conn)
        .await?;
    let vacuum_took = vacuum_started.elapsed();
    let after = Snapshot::take(&mut conn, &s).await?;
    println!("# after VACUUM items ({:.1} s):", vacuum_took.as_secs_f64());
    println!("{}", after.row(&last.columns(&start, started, 0)));
    conn.close().await?;
    if let Some(path) = &config.server_log {
        std::fs::copy(server.log_path(), path)?;
    }
    Ok(())
}
