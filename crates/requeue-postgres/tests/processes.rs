//! Multi-process and crash tests of `PostgresQueue` (the Redis engine's
//! `tests/processes.rs`, on PostgreSQL): worker processes sharing hot
//! keys, a worker killed or paused while it holds a key, the queue's
//! backends terminated mid-run (`pg_terminate_backend`), and the server
//! killed (`kill -9`, fsync on) and restarted.
//!
//! Worker processes are this binary run again (the harness is the
//! `requeue-testkit` crate, shared with the Redis engine, whose docs also
//! explain how their events are ordered across processes: here a
//! PostgreSQL sequence, not clocks). Nothing sleeps to wait for a
//! condition: the table and the workers' logs are polled against
//! deadlines. Leases are short and real (hundreds of ms), since several
//! processes cannot share a fake clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::engine::conformance::unique_name;
use requeue::engine::{QueueError, Then};
use requeue::queue::Added;
use requeue_postgres::PostgresQueue;
use requeue_postgres::local_server::{LocalServer, LocalServerOptions};
use requeue_testkit::Seq as _;
use requeue_testkit::{
    Adders, Config, HOLD_LEASE_MS, History, Holder, Line, Mode, ReAdds, Seen, Store, Worker,
    add_numbered, drain, ms, poll_until, read_log, signal, wait_started_after,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The PostgreSQL engine of the worker processes.
struct Postgres;

impl requeue_testkit::Engine for Postgres {
    type Queue = PostgresQueue<String>;
    type Seq = Seq;

    async fn open(config: &Config) -> PostgresQueue<String> {
        assert_eq!(config.prefetch, 0, "PostgresQueue does not fetch ahead");
        PostgresQueue::builder(&config.url, &config.queue)
            .lease(ms(config.lease_ms))
            .build()
            .await
            .unwrap()
    }

    fn counters(queue: &PostgresQueue<String>) -> (u64, u64) {
        (queue.leases_lost(), queue.leases_reaped())
    }
}

/// The cross-process clock: `nextval` of one PostgreSQL sequence per queue
/// (`public.rqtest_seq_<n>`, `CACHE 1`), retried across connection losses
/// (a lost reply only skips a number). `nextval` takes the sequence's
/// lock, so the numbers are a total order consistent with real time
/// across all processes: a `nextval` that returned before another was
/// sent has the smaller number.
#[derive(Clone)]
struct Seq {
    pool: PgPool,
    sql: String,
}

impl requeue_testkit::Seq for Seq {
    /// Connects (creating the sequence if needed).
    async fn connect(url: &str, queue: &str) -> Seq {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .unwrap();
        let plain: String = queue
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("public.rqtest_seq_{plain}");
        // Two sessions creating it at once can both miss it and one then
        // fails (42P07 or a unique violation): the second try finds it.
        let create = format!("CREATE SEQUENCE IF NOT EXISTS {name} AS bigint CACHE 1");
        let mut tries = 0;
        while let Err(e) = sqlx::query(&create).execute(&pool).await {
            tries += 1;
            assert!(tries < 5, "{create} kept failing: {e}");
        }
        Seq {
            pool,
            sql: format!("SELECT nextval('{name}')"),
        }
    }

    async fn next(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::query_scalar::<_, i64>(&self.sql)
                .fetch_one(&self.pool)
                .await
            {
                Ok(n) => return u64::try_from(n).unwrap(),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{} kept failing: {e}", self.sql),
            }
        }
    }
}

/// The worker processes' entry point: a no-op unless `RQ_WORKER` is set.
#[test]
fn rq_worker_process() {
    requeue_testkit::run_if_worker::<Postgres>();
}

fn temp_dir() -> tempfile::TempDir {
    requeue_testkit::temp_dir("rq-pg-processes-")
}

/// A queue's rows by state, read from the default schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct QueueState {
    queued: i64,
    processing: i64,
    /// Processing and added again meanwhile.
    parked: i64,
    delayed: i64,
    /// Rows kept only for a failure count.
    idle: i64,
    lease_expired_total: i64,
}

impl QueueState {
    fn is_empty(&self) -> bool {
        self.queued == 0 && self.processing == 0 && self.delayed == 0
    }
}

async fn state(conn: &mut PgConnection, queue: &str) -> QueueState {
    let (queued, processing, parked, delayed, idle, lease_expired_total): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE i.state = 'q'), \
                count(*) FILTER (WHERE i.state = 'p'), \
                count(*) FILTER (WHERE i.state = 'p' AND i.dirty), \
                count(*) FILTER (WHERE i.state = 'd' OR (i.state = 'p' AND i.due_us IS NOT NULL)), \
                count(*) FILTER (WHERE i.state = 'i'), \
                coalesce((SELECT s.lease_expired_total FROM requeue.stats s WHERE s.queue_id = q.id), 0) \
         FROM requeue.queues q LEFT JOIN requeue.items i ON i.queue_id = q.id \
         WHERE q.name = $1 GROUP BY q.id",
    )
    .bind(queue)
    .fetch_one(conn)
    .await
    .unwrap();
    QueueState {
        queued,
        processing,
        parked,
        delayed,
        idle,
        lease_expired_total,
    }
}

/// Polls until nothing is queued, leased or delayed: after that no
/// processing can start (workers only add while they hold an item).
async fn wait_empty(conn: &mut PgConnection, queue: &str, timeout: Duration) -> QueueState {
    let deadline = Instant::now() + timeout;
    loop {
        let s = state(conn, queue).await;
        if s.is_empty() {
            return s;
        }
        assert!(Instant::now() < deadline, "the queue never emptied: {s:?}");
        tokio::time::sleep(ms(20)).await;
    }
}

/// The lease of `key` in the table: (deadline µs, token), if processing.
async fn lease_of(conn: &mut PgConnection, queue: &str, key: &str) -> Option<(i64, String)> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT i.lease_us, i.token FROM requeue.items i JOIN requeue.queues q ON q.id = i.queue_id \
         WHERE q.name = $1 AND i.key = $2 AND i.state = 'p'",
    )
    .bind(queue)
    .bind(key)
    .fetch_optional(conn)
    .await
    .unwrap();
    row.map(|(lease, token)| (lease, token.to_string()))
}

fn token_number(token: &str) -> i64 {
    token.parse().unwrap()
}

// ------------------------------------------------------------ hot keys

/// A run of worker processes over hot keys re-added by the parent.
struct HotKeys {
    /// The server's URL, without options (the admin connections).
    url: String,
    queue: String,
    workers: usize,
    tasks: usize,
    keys: u32,
    add_for: Duration,
    lease_ms: u64,
    /// `pg_terminate_backend` of every backend of the run's processes
    /// (parent included) this often during the adds.
    kill_every: Option<Duration>,
    /// Worker processes disturbed during the adds: (kill -9, SIGSTOP for
    /// 3 leases then SIGCONT), by index.
    chaos: Option<(usize, usize)>,
    /// The adds go on (after `add_for`) until the workers have started
    /// this many processings in all: a slow machine runs longer instead
    /// of failing.
    min_processings: usize,
}

struct HotRun {
    history: History,
    workers: usize,
    /// (backends terminated, seq just after) for each round of kills.
    kills: Vec<(i64, u64)>,
    parent_adds: usize,
    final_state: QueueState,
    took: Duration,
}

impl HotRun {
    /// The checks common to every hot-key run.
    fn assert_sound(&self) {
        self.history.assert_sound(self.workers);
        assert!(self.final_state.is_empty(), "{:?}", self.final_state);
    }

    fn summary(&self) -> String {
        format!(
            "{}; {} leases reaped (table); {} kill rounds (backends, seq) {:?}; took {:?}",
            self.history.summary(self.workers, self.parent_adds),
            self.final_state.lease_expired_total,
            self.kills.len(),
            self.kills,
            self.took
        )
    }
}

/// The checker itself, on made-up logs: it must flag what it is for.
#[test]
fn history_flags_overlaps_token_order_and_unserved_adds() {
    let (start, end) = (Line::start, Line::end);
    let w0 = vec![
        start("k", "1", 1),
        end("k", "1", 5, "ok", None),
        start("j", "4", 7),
        end("j", "4", 9, "ok", None),
        start("m", "5", 11),
        end("m", "5", 13, "ok", Some(12)),
        start("n", "6", 14),
        start("q", "20", 17),
        end("q", "20", 18, "ok", None),
    ];
    let w1 = vec![
        start("k", "2", 3), // inside token 1: a real double hold
        end("k", "2", 4, "ok", None),
        start("j", "3", 6),
        end("j", "3", 8, "lost", None), // overlaps 4, but it lost its lease
        Line::Add {
            key: "p".into(),
            seq: 2,
        },
        start("p", "7", 15),
        end("p", "7", 16, "err", None),
        start("q", "19", 19), // an older lease honoured after a newer one
        end("q", "19", 20, "ok", None),
    ];
    let parent: HashMap<String, u64> = [("k".to_string(), 10), ("j".to_string(), 2)].into();
    let history = History::from_lines(&[w0, w1], &parent).fencing_tokens();
    let (bad, excused) = history.overlaps();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("\"1\"") && bad[0].contains("\"2\""),
        "{bad:?}"
    );
    assert!(
        bad[1].contains("\"20\"") && bad[1].contains("\"19\""),
        "{bad:?}"
    );
    assert_eq!(excused.len(), 1, "{excused:?}");
    let unserved = history.unserved_adds();
    assert_eq!(unserved.len(), 2, "{unserved:?}");
    assert!(
        unserved[0].starts_with("k:") && unserved[1].starts_with("m:"),
        "{unserved:?}"
    );
    let unfinished = history.unfinished();
    assert_eq!(unfinished.len(), 2, "{unfinished:?}"); // 6 never ended, 7 erred
    assert_eq!(history.lost(), 1);
    assert_eq!(history.started_after(2, 10), vec![3, 2]);
}

/// The URL of a run's processes: its own `application_name`, so that its
/// backends (and only they) can be told apart in `pg_stat_activity`.
fn run_url(url: &str, app: &str) -> String {
    format!("{url}?application_name={app}")
}

/// Rounds of `pg_terminate_backend` in a run with `kill_every`.
const KILL_ROUNDS: usize = 6;

async fn run_hot_keys(cfg: HotKeys) -> HotRun {
    let started = Instant::now();
    let dir = temp_dir();
    let app = format!("rqt{}", fastrand::u32(..));
    let url = run_url(&cfg.url, &app);
    // The sequence exists before any worker starts.
    let seq = Seq::connect(&url, &cfg.queue).await;
    let mut workers: Vec<Worker> = (0..cfg.workers)
        .map(|i| {
            Worker::spawn(
                dir.path(),
                &format!("w{i}"),
                &url,
                &cfg.queue,
                cfg.lease_ms,
                Mode::Loop {
                    tasks: cfg.tasks,
                    max_work_ms: 3,
                    readd_one_in: 8,
                    requeue_one_in: 16,
                    keys: cfg.keys,
                    readds: ReAdds::Any,
                },
                0,
            )
        })
        .collect();
    let parent: PostgresQueue<String> = PostgresQueue::builder(&url, &cfg.queue)
        .lease(ms(cfg.lease_ms))
        .build()
        .await
        .unwrap();
    // Paced, so the keys stay hot without flooding.
    let adders = Adders::spawn(2, &parent, &seq, cfg.keys, Some(ms(1)));
    let killer = cfg.kill_every.map(|every| {
        let (admin_url, seq, app) = (cfg.url.clone(), seq.clone(), app.clone());
        let logs: Vec<_> = workers.iter().map(|w| w.log.clone()).collect();
        tokio::spawn(async move {
            let mut admin = PgConnection::connect(&admin_url).await.unwrap();
            // Every worker at work first.
            poll_until(Duration::from_secs(20), "the workers at work", || {
                logs.iter().all(|log| {
                    read_log(log)
                        .iter()
                        .any(|l| matches!(l, Line::Start { .. }))
                })
            })
            .await;
            // A fixed number of rounds; the adds go on until they are
            // over, and after (until every worker worked again).
            let mut kills = Vec::new();
            for _ in 0..KILL_ROUNDS {
                tokio::time::sleep(every).await; // pacing, not waiting for a condition
                let killed: i64 = sqlx::query_scalar(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) \
                     FROM pg_stat_activity a \
                     WHERE a.application_name = $1 AND a.pid <> pg_backend_pid()",
                )
                .bind(&app)
                .fetch_one(&mut admin)
                .await
                .unwrap();
                kills.push((killed, seq.next().await));
            }
            kills
        })
    });
    let chaos = cfg.chaos.map(|(kill, pause)| {
        let (kill_pid, pause_pid) = (workers[kill].pid(), workers[pause].pid());
        let logs = [workers[kill].log.clone(), workers[pause].log.clone()];
        let (seq, lease) = (seq.clone(), ms(cfg.lease_ms));
        tokio::spawn(async move {
            // Both at work first.
            poll_until(Duration::from_secs(20), "the victims at work", || {
                logs.iter().all(|log| {
                    read_log(log)
                        .iter()
                        .filter(|l| matches!(l, Line::Start { .. }))
                        .count()
                        >= 5
                })
            })
            .await;
            // Pacing and the pause itself, not waits for a condition.
            signal("KILL", kill_pid);
            tokio::time::sleep(ms(200)).await;
            signal("STOP", pause_pid);
            tokio::time::sleep(lease * 3).await;
            signal("CONT", pause_pid);
            seq.next().await
        })
    });
    tokio::time::sleep(cfg.add_for).await; // the length of the add phase
    let kills = match killer {
        Some(killer) => killer.await.unwrap(),
        None => Vec::new(),
    };
    let resumed_at = match chaos {
        Some(chaos) => Some(chaos.await.unwrap()),
        None => None,
    };
    let killed = cfg.chaos.map(|(kill, _)| kill);
    if let Some(kill) = killed {
        let status = workers[kill].wait_exit(Duration::from_secs(5)).await;
        assert!(!status.success(), "the killed worker exited {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started: usize = workers
            .iter()
            .map(|w| {
                w.lines()
                    .iter()
                    .filter(|l| matches!(l, Line::Start { .. }))
                    .count()
            })
            .sum();
        if started >= cfg.min_processings {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {started} processings started in all"
        );
        tokio::time::sleep(ms(20)).await;
    }
    // Keep adding until every worker has started a processing after the
    // last kill, or the paused one's resumption (or, without either, at
    // all): a stuck worker fails here.
    let since = kills.last().map_or(0, |k| k.1).max(resumed_at.unwrap_or(0));
    wait_started_after(&workers, since, killed).await;
    let (parent_adds, adds) = adders.stop().await;
    // The admin connection: not the run's application name, never killed.
    let mut conn = PgConnection::connect(&cfg.url).await.unwrap();
    let final_state = wait_empty(&mut conn, &cfg.queue, Duration::from_secs(30)).await;
    for (w, worker) in workers.iter_mut().enumerate() {
        if killed != Some(w) {
            worker.finish().await;
        }
    }
    let mut history = History::read(&workers, &adds).fencing_tokens();
    history.killed.extend(killed);
    parent.shut_down();
    HotRun {
        history,
        workers: workers.len(),
        kills,
        parent_adds,
        final_state,
        took: started.elapsed(),
    }
}

/// Worker processes (2 tasks each) share 40 hot keys that the parent
/// re-adds for 3 s and the workers sometimes re-add while processing (or
/// end with `Then::Requeue`): never held twice at once, fencing tokens in
/// lease order, every add served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_processes_hot_keys_never_held_twice() {
    let run = run_hot_keys(HotKeys {
        url: support::server().url(),
        queue: unique_name("hot"),
        workers: 3,
        tasks: 2,
        keys: 40,
        add_for: Duration::from_secs(3),
        lease_ms: 1_000,
        kill_every: None,
        chaos: None,
        min_processings: 150,
    })
    .await;
    eprintln!("hot keys: {}", run.summary());
    run.assert_sound();
    assert!(run.history.intervals.len() >= 150, "{}", run.summary());
}

/// Every backend of the run's processes (the workers' pools and
/// listeners, their sequence connections, the parent's) is terminated
/// with `pg_terminate_backend` every 300 ms during the run: the workers
/// reconnect and keep going, nothing is lost, nothing processed twice at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_terminated_mid_run_reconnect() {
    let run = run_hot_keys(HotKeys {
        url: support::server().url(),
        queue: unique_name("terminate"),
        workers: 2,
        tasks: 2,
        keys: 30,
        add_for: Duration::from_secs(3),
        lease_ms: 1_000,
        kill_every: Some(ms(300)),
        chaos: None,
        min_processings: 60,
    })
    .await;
    eprintln!("backends terminated: {}", run.summary());
    run.assert_sound();
    assert_eq!(run.kills.len(), KILL_ROUNDS, "{}", run.summary());
    assert!(
        run.kills.iter().all(|&(killed, _)| killed > 0),
        "a round of pg_terminate_backend found no backend: {:?}",
        run.kills
    );
}

/// During the run one worker process is killed with `kill -9` and
/// another stopped (SIGSTOP) for three leases: the keys they held are
/// reaped and processed by others under later tokens; the paused one,
/// resumed, has its dones refused as `LeaseLost` and goes on working;
/// nothing is processed twice at once, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_survive_a_killed_and_a_paused_worker() {
    let run = run_hot_keys(HotKeys {
        url: support::server().url(),
        queue: unique_name("chaos"),
        workers: 3,
        tasks: 2,
        keys: 30,
        add_for: Duration::from_secs(3),
        lease_ms: 600,
        kill_every: None,
        chaos: Some((0, 1)),
        min_processings: 60,
    })
    .await;
    eprintln!(
        "killed and paused workers: {}; given up (killed, paused): ({}, {})",
        run.summary(),
        run.history.given_up(0),
        run.history.given_up(1)
    );
    run.assert_sound();
    assert!(
        run.history.given_up(0) + run.history.given_up(1) == 0
            || run.final_state.lease_expired_total > 0,
        "leases given up but none reaped: {}",
        run.summary()
    );
}

// ------------------------------------------------------------ one holder

/// The holder scenarios' look at PostgreSQL: the queue's rows, on the
/// test's own connection.
struct Table {
    conn: PgConnection,
    queue: String,
}

impl Store for Table {
    type Queue = PostgresQueue<String>;

    async fn lease_of(&mut self, key: &str) -> Option<(f64, String)> {
        let lease = lease_of(&mut self.conn, &self.queue, key).await;
        // Deadlines in µs since the epoch: exact in an f64 for ages.
        lease.map(|(deadline, token)| (deadline as f64, token))
    }

    fn later(newer: &str, older: &str) -> bool {
        token_number(newer) > token_number(older)
    }

    fn leases_reaped(queue: &PostgresQueue<String>) -> u64 {
        queue.leases_reaped()
    }

    /// One reaped lease (the child's), a failure counted for it, and
    /// nothing left processing or queued.
    async fn assert_handed_out_exactly_once_more(&mut self, parent: &PostgresQueue<String>) {
        let s = state(&mut self.conn, &self.queue).await;
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(s.lease_expired_total, 1, "{s:?}");
        assert_eq!(
            parent.num_requeues(&"k".to_string()).await.unwrap(),
            1,
            "the reap counted a failure"
        );
        assert_eq!(parent.len().await.unwrap(), 0);
        assert!(
            parent.try_get().await.unwrap().is_none(),
            "nothing handed out a third time"
        );
    }
}

/// A worker process holding `k`, plus the parent's queue.
async fn child_holding_k(prefix: &str) -> Holder<Table> {
    let url = support::server().url();
    let queue = unique_name(prefix);
    let parent: PostgresQueue<String> = PostgresQueue::builder(&url, &queue)
        .lease(ms(HOLD_LEASE_MS))
        .build()
        .await
        .unwrap();
    assert_eq!(parent.add("k".into()).await.unwrap(), Added::Queued);
    let table = Table {
        conn: support::connect().await,
        queue: queue.clone(),
    };
    Holder::start(parent, table, &url, &queue, temp_dir()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_worker_mid_processing_hands_item_to_another() {
    // At most one lease after the kill, plus reaping's pace (an eighth of
    // a lease), the reap backoff (5 ms), and slack.
    (child_holding_k("kill9").await)
        .kill9_hands_item_to_another(Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_worker_learns_lease_lost() {
    (child_holding_k("paused").await)
        .pause_learns_lease_lost()
        .await;
}

// ------------------------------------------------------------ server crash

const CRASH_KEYS: usize = 600;
const CRASH_HELD: usize = 5;
const CRASH_TX_KEYS: usize = 40;
const CRASH_LEASE_MS: u64 = 1_000;

/// Keys of `queue` in the table that are queued (or delayed), sorted.
async fn waiting_keys(conn: &mut PgConnection, queue: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT i.key FROM requeue.items i JOIN requeue.queues q ON q.id = i.queue_id \
         WHERE q.name = $1 AND i.state IN ('q', 'd') ORDER BY i.key",
    )
    .bind(queue)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The server (fsync on) is killed with `kill -9` while workers drain a
/// queue and a caller's transaction with adds is still open, stays down
/// for longer than the lease, and is restarted: every committed add
/// survives (plain adds, and transactional adds of committed
/// transactions; none of a rolled-back or unfinished one), the getters
/// ride out the outage on their own, the leases held across it are
/// renewed first and stay their holders', and everything is processed,
/// never twice at once (again only after a reaped lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_kill9_with_fsync_loses_no_committed_add() {
    let started = Instant::now();
    let mut server = LocalServer::start_with(LocalServerOptions {
        fsync: true,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let url = server.url();
    let name = unique_name("crash");
    let queue: PostgresQueue<String> = PostgresQueue::builder(&url, &name)
        .lease(ms(CRASH_LEASE_MS))
        .build()
        .await
        .unwrap();

    // Plain adds, 16 at a time (each commit is a WAL flush).
    add_numbered(&queue, CRASH_KEYS, 16).await;
    assert_eq!(queue.len().await.unwrap(), CRASH_KEYS);
    let added_in = started.elapsed();

    // Transactional adds to a second queue nobody takes from before the
    // restart: committed, rolled back, and left open at the crash.
    let txq_name = unique_name("crash-tx");
    let txq: PostgresQueue<String> = PostgresQueue::builder(&url, &txq_name)
        .lease(ms(CRASH_LEASE_MS))
        .build()
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for batch in 0..4 {
        let mut tx = conn.begin().await.unwrap();
        for i in 0..CRASH_TX_KEYS / 4 {
            txq.add_in(&mut tx, format!("tx{batch}-{i}")).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let mut tx = conn.begin().await.unwrap();
    txq.add_in(&mut tx, "rolled-back".into()).await.unwrap();
    tx.rollback().await.unwrap();
    let mut open_conn = PgConnection::connect(&url).await.unwrap();
    let mut open_tx = open_conn.begin().await.unwrap();
    txq.add_in(&mut open_tx, "uncommitted".into())
        .await
        .unwrap();

    // Leases held across the crash.
    let mut held = Vec::new();
    for _ in 0..CRASH_HELD {
        held.push(queue.get().await.unwrap());
    }
    let held_keys: HashSet<String> = held.iter().map(|i| (**i).clone()).collect();

    // Workers drain; the server is killed mid-drain.
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let workers: Vec<_> = (0..6)
        .map(|_| tokio::spawn(drain(queue.clone(), seen.clone())))
        .collect();
    // Adds go on across the crash: each attempt a new key `c<n>`; an add
    // that returned `Ok` was committed (fsync on) and must be processed;
    // one that failed may or may not have been.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let attempted = Arc::new(AtomicUsize::new(0));
    let stop_adding = Arc::new(AtomicBool::new(false));
    let live_adders: Vec<_> = (0..2)
        .map(|_| {
            let (queue, acked, attempted, stop) = (
                queue.clone(),
                acked.clone(),
                attempted.clone(),
                stop_adding.clone(),
            );
            tokio::spawn(async move {
                let mut failed = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("c{}", attempted.fetch_add(1, Ordering::SeqCst));
                    match queue.add(key.clone()).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(key);
                        }
                        Err(_) => failed += 1,
                    }
                    tokio::time::sleep(ms(5)).await; // pacing
                }
                failed
            })
        })
        .collect();
    let processed = || seen.lock().unwrap().processed.len();
    poll_until(Duration::from_secs(30), "150 processed", || {
        processed() >= 150
    })
    .await;
    let crash = Instant::now();
    tokio::task::block_in_place(|| server.kill9()).unwrap();
    let before = processed();
    // The outage itself, longer than the lease, in real time (the
    // server's clock is the lease clock): not a wait for a condition.
    tokio::time::sleep(ms(2 * CRASH_LEASE_MS)).await;
    let during = processed();
    assert!(
        during <= before + 6,
        "processed {before} at the crash, {during} while the server was down"
    );
    tokio::task::block_in_place(|| server.restart(false)).unwrap();
    let outage = crash.elapsed();
    drop(open_tx); // its connection died with the server
    drop(open_conn);

    // Every committed transactional add is there, nothing else.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let mut expected_tx: Vec<String> = (0..4)
        .flat_map(|b| (0..CRASH_TX_KEYS / 4).map(move |i| format!("tx{b}-{i}")))
        .collect();
    expected_tx.sort();
    assert_eq!(
        waiting_keys(&mut admin, &txq_name).await,
        expected_tx,
        "the committed transactional adds, and only they, survived the crash"
    );

    // The workers go on by themselves.
    poll_until(
        Duration::from_secs(30),
        "progress after the restart",
        || processed() > before + 100,
    )
    .await;
    // Adds succeed again; then they stop.
    let acked_at_restart = acked.lock().unwrap().len();
    poll_until(Duration::from_secs(30), "adds after the restart", || {
        acked.lock().unwrap().len() >= acked_at_restart + 20
    })
    .await;
    stop_adding.store(true, Ordering::SeqCst);
    let mut failed_adds = 0;
    for adder in live_adders {
        failed_adds += adder.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    // The leases held across the outage are renewed first and stay ours:
    // a getter whose batch waited out the outage in the pool reaps other
    // processes' expired leases, never its own
    // (`a_get_waiting_out_an_outage_does_not_reap_its_own_held_leases`).
    let mut held_lost = HashSet::new();
    for item in held {
        let key = (*item).clone();
        match item.end_async(Then::Done).await {
            Ok(e) if e.released => {}
            Err(QueueError::LeaseLost) => {
                held_lost.insert(key);
            }
            other => panic!("the done of held {key} after the restart: {other:?}"),
        }
    }
    assert!(
        held_lost.is_empty(),
        "leases held across the outage were lost: {held_lost:?}"
    );
    let held_kept: HashSet<String> = held_keys.difference(&held_lost).cloned().collect();

    let deadline = Instant::now() + Duration::from_secs(40);
    let final_state = loop {
        let s = state(&mut admin, &name).await;
        let all_done = {
            let seen = seen.lock().unwrap();
            let plain = seen.processed.keys().filter(|k| k.starts_with('a')).count();
            plain == CRASH_KEYS - held_kept.len()
                && acked.iter().all(|k| seen.processed.contains_key(k))
        };
        if all_done && s.is_empty() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {} processed, {s:?}",
            processed()
        );
        tokio::time::sleep(ms(20)).await;
    };
    queue.shut_down();
    for w in workers {
        w.await.unwrap();
    }
    // The transactional adds are served too.
    let mut served = Vec::new();
    while let Some(item) = txq.try_get().await.unwrap() {
        served.push((*item).clone());
        assert!(item.end_async(Then::Done).await.unwrap().released);
    }
    served.sort();
    assert_eq!(served, expected_tx);
    let seen = seen.lock().unwrap();
    seen.assert_never_twice_at_once();
    let all: HashSet<String> = (0..CRASH_KEYS).map(|i| format!("a{i}")).collect();
    let processed_plain: HashSet<String> = seen
        .processed
        .keys()
        .filter(|k| k.starts_with('a'))
        .cloned()
        .collect();
    let expected: HashSet<String> = all.difference(&held_kept).cloned().collect();
    assert_eq!(
        processed_plain, expected,
        "every key added before the crash processed, the held ones by their holder \
         (those whose lease was lost: by the workers)"
    );
    let unprocessed: Vec<&String> = acked
        .iter()
        .filter(|k| !seen.processed.contains_key(*k))
        .collect();
    assert!(
        unprocessed.is_empty(),
        "acknowledged adds across the crash never processed: {unprocessed:?}"
    );
    let attempts = attempted.load(Ordering::SeqCst);
    let phantom: Vec<&String> = seen
        .processed
        .keys()
        .filter(|k| {
            k.strip_prefix('c')
                .is_some_and(|n| n.parse::<usize>().map_or(true, |n| n >= attempts))
        })
        .collect();
    assert!(
        phantom.is_empty(),
        "processed keys never added: {phantom:?}"
    );
    // A key comes twice only through a reaped lease: a claim whose reply
    // the crash swallowed leaves a lease nobody holds, reaped after it
    // expires; so does an end that gave up while the server was down.
    let again = seen.again();
    assert!(
        again.len() as i64 <= final_state.lease_expired_total,
        "processed again without a reap: {again:?}; {final_state:?}"
    );
    eprintln!(
        "crash: {CRASH_KEYS} added in {added_in:?}; kill -9 after {before} processed; \
         outage (down + restart) {outage:?}; adds across it: {} acknowledged, {failed_adds} failed \
         of {attempts}; held leases lost {held_lost:?}; ends {:?}; reaped {}; \
         processed again {again:?}; took {:?}",
        acked.len(),
        seen.ends,
        final_state.lease_expired_total,
        started.elapsed()
    );
    drop(seen);
    drop(queue);
    drop(txq);
    drop(server);
}

// ------------------------------------------------------------ wake-ups

/// The backend pids of `app` whose last statement was a `LISTEN`.
async fn listeners(admin: &mut PgConnection, app: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT a.pid FROM pg_stat_activity a \
         WHERE a.application_name = $1 AND a.query ILIKE 'LISTEN%' ORDER BY a.pid",
    )
    .bind(app)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// An idle getter of a process whose backends (its pool and its `LISTEN`
/// connection) are all terminated is woken by another process's add
/// within a fraction of the 5 s poll cap: the listener reconnects and
/// wakes its getters, and the getter reconnects. Twice: an add at once
/// after the kill (before the listener is back, so its `NOTIFY` reaches
/// nobody), and an add after the listener is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_getter_is_woken_after_its_backends_are_terminated() {
    let app = format!("rqw{}", fastrand::u32(..));
    let name = unique_name("wake");
    let url = support::server().url();
    // The default lease (30 s): renewals are rare, so only the
    // reconnection logic can bring the getter back quickly.
    let waiter: PostgresQueue<String> = PostgresQueue::builder(run_url(&url, &app), &name)
        .build()
        .await
        .unwrap();
    let other: PostgresQueue<String> = PostgresQueue::builder(&url, &name).build().await.unwrap();
    let mut admin = support::connect().await;
    let mut latencies = Vec::new();
    for wait_for_listener in [false, true] {
        let mut killed_listener = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while killed_listener.is_empty() {
            assert!(Instant::now() < deadline, "the waiter never listened");
            tokio::time::sleep(ms(10)).await;
            killed_listener = listeners(&mut admin, &app).await;
        }
        // An idle getter: its batch ran (found nothing) and it sleeps.
        let before = waiter.statements();
        let getter = {
            let waiter = waiter.clone();
            tokio::spawn(async move {
                let item = waiter.get().await.unwrap();
                (item, Instant::now())
            })
        };
        poll_until(Duration::from_secs(10), "the getter's first try", || {
            waiter.statements() > before
        })
        .await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) \
             FROM pg_stat_activity a WHERE a.application_name = $1",
        )
        .bind(&app)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(
            killed >= 2,
            "terminated {killed} backends (pool and listener)"
        );
        if wait_for_listener {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = listeners(&mut admin, &app).await;
                if !now.is_empty() && now != killed_listener {
                    break;
                }
                assert!(Instant::now() < deadline, "the listener never came back");
                tokio::time::sleep(ms(10)).await;
            }
        }
        let added = Instant::now();
        let key = format!("after-kill-{wait_for_listener}");
        assert_eq!(other.add(key.clone()).await.unwrap(), Added::Queued);
        let (item, got_at) = tokio::time::timeout(Duration::from_secs(10), getter)
            .await
            .expect("the idle getter never got the item")
            .unwrap();
        assert_eq!(*item, key);
        let latency = got_at - added;
        latencies.push(latency);
        assert!(
            latency < Duration::from_millis(2_500),
            "woken {latency:?} after the add (listener waited for: {wait_for_listener}): \
             polled at the 5 s cap instead of woken"
        );
        assert!(item.end_async(Then::Done).await.unwrap().released);
    }
    eprintln!("wake-ups after pg_terminate_backend: {latencies:?}");
}

// ------------------------------------------------- regressions (bugs fixed)

/// A regression test (this reproduced an engine bug, since fixed: a batch
/// now spares its own process's leases while its renewer is behind).
///
/// The engine promises that after a connection failure a process renews
/// its held leases before it takes new work (`get`'s docs; the renewer's
/// "renew first"), so an outage longer than the lease does not cost a
/// holder its item (the Redis engine's `outage.rs` checks the same). But
/// while the server is down the pool does not fail a statement: it waits
/// for a connection up to the acquire timeout (5 s by default). A `get`
/// that passed the health check before anything failed sits in that
/// wait, and when the server is back its batch runs first, reaping every
/// lease that expired during the outage — the held ones included, which
/// the renewer (waiting in the same pool) had no chance to renew. The
/// holder's done then reports `LeaseLost`, and the item is handed out
/// again while its holder may still work on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_waiting_out_an_outage_does_not_reap_its_own_held_leases() {
    let mut server = LocalServer::start_with(LocalServerOptions {
        fsync: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let lease = ms(600);
    // Which statement the pool serves first after the restart is a race
    // (each waiter retries connecting with its own backoff): a few rounds,
    // with the get starting early or late in the outage.
    for round in 0..8_u32 {
        let queue: PostgresQueue<String> =
            PostgresQueue::builder(server.url(), unique_name("outage"))
                .lease(lease)
                .build()
                .await
                .unwrap();
        queue.add("held".into()).await.unwrap();
        let held = queue.get().await.unwrap();
        tokio::task::block_in_place(|| server.kill9()).unwrap();
        // The outage: longer than the lease, shorter than the pool's 5 s
        // acquire timeout (real time: the server's clock is the lease
        // clock). A get starts in it before any statement failed: its
        // batch waits for a connection.
        let early = round % 3 == 0;
        if !early {
            tokio::time::sleep(lease * 3).await;
        }
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        if early {
            tokio::time::sleep(lease * 3).await;
        }
        tokio::task::block_in_place(|| server.restart(false)).unwrap();
        let ended = held.end_async(Then::Done).await;
        let reaped = queue.leases_reaped();
        queue.add("wake".into()).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), getter)
            .await
            .expect("the getter never resumed")
            .unwrap()
            .unwrap();
        assert!(
            matches!(ended, Ok(e) if e.released) && reaped == 0,
            "round {round} (get started {} in the outage): the held lease was lost across \
             the outage ({ended:?}); leases reaped by this process: {reaped}; the waiting \
             getter then got {:?}",
            if early { "early" } else { "late" },
            *next
        );
        assert!(next.end_async(Then::Done).await.unwrap().released);
        queue.shut_down();
    }
}

/// A regression test (this reproduced an engine bug, since fixed: a
/// renewal that finds the row locked records the lease's deadline in
/// `renewals`, which reaping honours).
///
/// `add_in` locks the key's row until the caller's transaction ends (its
/// docs say so). `extend` claims rows `FOR UPDATE SKIP LOCKED`, so while
/// that transaction is open the holder's renewals skip the row: the
/// lease is not extended, yet not reported lost either (the row still
/// carries the holder's token), so the holder's local lease is extended
/// and `is_valid()` stays true. A transaction open for longer than the
/// lease thus lets the lease of a live, renewing holder run out on the
/// server; once it commits, any process's get reaps the lease and hands
/// the key to another holder while the first still works on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_long_transactional_add_does_not_cost_a_live_holder_its_lease() {
    let url = support::server().url();
    let name = unique_name("tx-lease");
    let lease = ms(300);
    let a: PostgresQueue<String> = PostgresQueue::builder(&url, &name)
        .lease(lease)
        .build()
        .await
        .unwrap();
    let b: PostgresQueue<String> = PostgresQueue::builder(&url, &name)
        .lease(lease)
        .build()
        .await
        .unwrap();
    a.add("k".into()).await.unwrap();
    let held = a.get().await.unwrap();
    // A caller's transaction adds k (parks it: it is held) and stays open
    // for several leases (real time: the server's clock is the lease clock).
    let mut conn = support::connect().await;
    let mut tx = conn.begin().await.unwrap();
    assert_eq!(
        a.add_in(&mut tx, "k".into()).await.unwrap(),
        Added::AfterDone
    );
    tokio::time::sleep(lease * 4).await; // the transaction's length
    tx.commit().await.unwrap();
    // The holder renews all along (its renewer runs every lease/3), so
    // nobody else may take k while it holds it.
    let deadline = Instant::now() + lease * 3;
    while Instant::now() < deadline {
        assert!(held.is_valid(), "the live holder's lease went invalid");
        if let Some(other) = b.try_get().await.unwrap() {
            panic!(
                "{} was handed to another holder (token {:?}) while its live holder \
                 (token {:?}, is_valid() = {}) still held it; leases reaped by B: {}",
                *other,
                other.token(),
                held.token(),
                held.is_valid(),
                b.leases_reaped()
            );
        }
        tokio::time::sleep(ms(20)).await; // pacing of the polls
    }
    assert!(held.end_async(Then::Done).await.unwrap().released);
}
