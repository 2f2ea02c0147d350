//! Multi-process and crash tests of `RedisQueue` (docs/redis.md §7, §12): worker
//! processes sharing hot keys, a worker killed or paused while it holds a
//! key, Redis killed and restarted from its AOF, connections killed
//! mid-run.
//!
//! Worker processes are this binary run again (the harness is the
//! `requeue-testkit` crate, shared with the PostgreSQL engine, whose docs
//! also explain how their events are ordered across processes: here a
//! Redis `INCR` sequence, not clocks). Nothing sleeps to wait for a
//! condition: Redis state and the workers' logs are polled against
//! deadlines. Leases are short and real (hundreds of ms), since several
//! processes cannot share a fake clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use requeue::engine::Then;
use requeue::engine::conformance::unique_name;
use requeue::queue::Added;
use requeue_redis::RedisQueue;
use requeue_redis::inspect::{self, QueueState};
use requeue_redis::keys::QueueKeys;
use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use requeue_redis::ops::Token;
use requeue_testkit::Seq as _;
use requeue_testkit::{
    Adders, Config, HOLD_LEASE_MS, History, Holder, Line, Mode, ReAdds, Seen, Store, Worker,
    add_numbered, drain, ms, poll_until, wait_started_after,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Redis engine of the worker processes.
struct Redis;

impl requeue_testkit::Engine for Redis {
    type Queue = RedisQueue<String>;
    type Seq = Seq;

    async fn open(config: &Config) -> RedisQueue<String> {
        RedisQueue::builder(&config.url, &config.queue)
            .lease(ms(config.lease_ms))
            .prefetch(config.prefetch)
            .build()
            .await
            .unwrap()
    }

    fn counters(queue: &RedisQueue<String>) -> (u64, u64) {
        (queue.leases_lost(), queue.leases_reaped())
    }
}

/// The cross-process clock: `INCR` of one Redis key per queue (same hash
/// tag as the queue), retried across connection losses (a lost reply only
/// skips a number). Redis executes commands one at a time, so the numbers
/// are a total order consistent with real time across all processes.
#[derive(Clone)]
struct Seq {
    conn: ConnectionManager,
    key: String,
}

impl requeue_testkit::Seq for Seq {
    async fn connect(url: &str, queue: &str) -> Seq {
        let client = redis::Client::open(url).unwrap();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .unwrap();
        Seq {
            conn,
            key: format!("rqtest:{{{queue}}}:seq"),
        }
    }

    async fn next(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = self.conn.clone();
        loop {
            match redis::cmd("INCR")
                .arg(&self.key)
                .query_async::<u64>(&mut conn)
                .await
            {
                Ok(n) => return n,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("INCR {} kept failing: {e}", self.key),
            }
        }
    }
}

/// The worker processes' entry point: a no-op unless `RQ_WORKER` is set.
#[test]
fn rq_worker_process() {
    requeue_testkit::run_if_worker::<Redis>();
}

fn temp_dir() -> tempfile::TempDir {
    requeue_testkit::temp_dir("rq-processes-")
}

async fn state(conn: &mut MultiplexedConnection, keys: &QueueKeys) -> QueueState {
    inspect::inspect(conn, keys, 100).await.unwrap()
}

fn is_empty(s: &QueueState) -> bool {
    s.depth == 0 && s.dirty == 0 && s.processing_count == 0 && s.delayed == 0
}

/// Polls until nothing is queued, parked, leased or delayed: after that no
/// processing can start (workers only add while they hold an item).
async fn wait_empty(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    timeout: Duration,
) -> QueueState {
    let deadline = Instant::now() + timeout;
    loop {
        let s = state(conn, keys).await;
        if is_empty(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "the queue never emptied: {s:?}");
        tokio::time::sleep(ms(20)).await;
    }
}

/// The lease of `item` in Redis: (deadline ms, owner's token).
async fn lease_of(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    item: &str,
) -> (Option<f64>, Option<String>) {
    redis::pipe()
        .cmd("ZSCORE")
        .arg(keys.processing())
        .arg(item)
        .cmd("HGET")
        .arg(keys.owners())
        .arg(item)
        .query_async(conn)
        .await
        .unwrap()
}

fn epoch(token: &str) -> u64 {
    token.parse::<Token>().unwrap().epoch()
}

// ------------------------------------------------------------ hot keys

/// A run of worker processes over hot keys re-added by the parent.
struct HotKeys {
    url: String,
    queue: String,
    workers: usize,
    tasks: usize,
    keys: u32,
    add_for: Duration,
    lease_ms: u64,
    /// `CLIENT KILL TYPE normal` this often during the adds.
    kill_every: Option<Duration>,
    /// The workers' `prefetch` (0: off).
    prefetch: usize,
}

struct HotRun {
    history: History,
    workers: usize,
    /// (clients killed, seq just after) for each `CLIENT KILL`.
    kills: Vec<(u64, u64)>,
    parent_adds: usize,
    final_state: QueueState,
    invariants: Result<(), String>,
    took: Duration,
}

impl HotRun {
    /// The checks common to every hot-key run.
    fn assert_sound(&self) {
        self.history.assert_sound(self.workers);
        assert!(is_empty(&self.final_state), "{:?}", self.final_state);
        assert_eq!(self.invariants, Ok(()));
    }

    fn summary(&self) -> String {
        format!(
            "{}; {} leases reaped (Redis); {} kills (clients, seq) {:?}; took {:?}",
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
fn history_flags_overlaps_and_unserved_adds() {
    let (start, end) = (Line::start, Line::end);
    let w0 = vec![
        start("k", "t1", 1),
        end("k", "t1", 5, "ok", None),
        start("j", "t4", 7),
        end("j", "t4", 9, "ok", None),
        start("m", "t5", 11),
        end("m", "t5", 13, "ok", Some(12)),
        start("n", "t6", 14),
    ];
    let w1 = vec![
        start("k", "t2", 3), // inside t1: a real double hold
        end("k", "t2", 4, "ok", None),
        start("j", "t3", 6),
        end("j", "t3", 8, "lost", None), // overlaps t4, but it lost its lease
        Line::Add {
            key: "p".into(),
            seq: 2,
        },
        start("p", "t7", 15),
        end("p", "t7", 16, "err", None),
    ];
    let parent: HashMap<String, u64> = [("k".to_string(), 10), ("j".to_string(), 2)].into();
    let history = History::from_lines(&[w0, w1], &parent);
    let (bad, excused) = history.overlaps();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("t1") && bad[0].contains("t2"), "{bad:?}");
    assert_eq!(excused.len(), 1, "{excused:?}");
    let unserved = history.unserved_adds();
    assert_eq!(unserved.len(), 2, "{unserved:?}");
    assert!(
        unserved[0].starts_with("k:") && unserved[1].starts_with("m:"),
        "{unserved:?}"
    );
    let unfinished = history.unfinished();
    assert_eq!(unfinished.len(), 2, "{unfinished:?}"); // t6 never ended, t7 erred
    assert_eq!(history.lost(), 1);
    assert_eq!(history.started_after(2, 10), vec![2, 1]);
}

async fn run_hot_keys(cfg: HotKeys) -> HotRun {
    let started = Instant::now();
    let dir = temp_dir();
    let mut workers: Vec<Worker> = (0..cfg.workers)
        .map(|i| {
            Worker::spawn(
                dir.path(),
                &format!("w{i}"),
                &cfg.url,
                &cfg.queue,
                cfg.lease_ms,
                Mode::Loop {
                    tasks: cfg.tasks,
                    max_work_ms: 3,
                    readd_one_in: 8,
                    requeue_one_in: 16,
                    keys: cfg.keys,
                    readds: ReAdds::Requeue,
                },
                cfg.prefetch,
            )
        })
        .collect();
    let parent: RedisQueue<String> = RedisQueue::builder(&cfg.url, &cfg.queue)
        .lease(ms(cfg.lease_ms))
        .build()
        .await
        .unwrap();
    let seq = Seq::connect(&cfg.url, &cfg.queue).await;
    let adders = Adders::spawn(2, &parent, &seq, cfg.keys, None);
    let killer = cfg.kill_every.map(|every| {
        let (url, seq, add_for) = (cfg.url.clone(), seq.clone(), cfg.add_for);
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            // The last kill lands well before the adds stop, so the
            // workers must recover while work still arrives.
            let until = Instant::now() + add_for.saturating_sub(ms(800));
            let mut kills = Vec::new();
            while Instant::now() < until {
                tokio::time::sleep(every).await; // pacing, not waiting for a condition
                // SKIPME defaults to yes: this connection survives.
                let killed: u64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("normal")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                kills.push((killed, seq.next().await));
            }
            kills
        })
    });
    tokio::time::sleep(cfg.add_for).await; // the length of the add phase
    let kills = match killer {
        Some(killer) => killer.await.unwrap(),
        None => Vec::new(),
    };
    // Keep adding until every worker has started a processing after the
    // last kill (or, without kills, at all): a stuck worker fails here.
    let since = kills.last().map_or(0, |k| k.1);
    wait_started_after(&workers, since, None).await;
    let (parent_adds, adds) = adders.stop().await;
    let keys = QueueKeys::new(&cfg.queue).unwrap();
    // Connected after the kills, so the kills cannot hit it.
    let mut conn = support::connect(&cfg.url).await;
    let final_state = wait_empty(&mut conn, &keys, Duration::from_secs(30)).await;
    for worker in &mut workers {
        worker.finish().await;
    }
    let history = History::read(&workers, &adds);
    let invariants = inspect::check_invariants(&mut conn, &keys).await;
    parent.shut_down();
    HotRun {
        history,
        workers: workers.len(),
        kills,
        parent_adds,
        final_state,
        invariants,
        took: started.elapsed(),
    }
}

/// docs/redis.md §7 across processes: 4 workers (2 tasks each) share 100 hot
/// keys that the parent re-adds for 3 s and the workers sometimes re-add
/// while processing (or end with `Then::Requeue`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_processes_hot_keys_never_held_twice() {
    let run = run_hot_keys(HotKeys {
        url: support::server().url(),
        queue: unique_name("hot"),
        workers: 4,
        tasks: 2,
        keys: 100,
        add_for: Duration::from_secs(3),
        lease_ms: 1_000,
        kill_every: None,
        prefetch: 0,
    })
    .await;
    eprintln!("hot keys: {}", run.summary());
    run.assert_sound();
    assert!(run.history.intervals.len() > 100, "{}", run.summary());
}

/// The same with every worker fetching ahead (up to 4 items): still never
/// held twice at once, and every add served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_processes_fetching_ahead_never_hold_a_key_twice() {
    let run = run_hot_keys(HotKeys {
        url: support::server().url(),
        queue: unique_name("hot-ahead"),
        workers: 4,
        tasks: 2,
        keys: 100,
        add_for: Duration::from_secs(3),
        lease_ms: 1_000,
        kill_every: None,
        prefetch: 4,
    })
    .await;
    eprintln!("hot keys, fetching ahead: {}", run.summary());
    run.assert_sound();
    assert!(run.history.intervals.len() > 100, "{}", run.summary());
}

/// Every normal client's connection (the workers' queues, marker waiters,
/// sequence connections and the parent's) is killed every 300 ms during
/// the run: the workers reconnect and keep going, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_lost_mid_run_reconnects() {
    // Its own server: CLIENT KILL would hit the other tests' clients too.
    let server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let run = run_hot_keys(HotKeys {
        url: server.url(),
        queue: unique_name("kill-clients"),
        workers: 2,
        tasks: 2,
        keys: 50,
        add_for: Duration::from_secs(3),
        // Room for a renewal to fail a few kills in a row on a loaded
        // machine: a local lease that runs out during a kill storm turns
        // an end the storm delayed into an error (by design), which this
        // test counts as a failure.
        lease_ms: 3_000,
        kill_every: Some(ms(300)),
        prefetch: 0,
    })
    .await;
    eprintln!("client kills: {}", run.summary());
    run.assert_sound();
    assert!(run.kills.len() >= 3, "{}", run.summary());
    assert!(
        run.kills.iter().all(|&(killed, _)| killed > 0),
        "a CLIENT KILL found no client: {:?}",
        run.kills
    );
    drop(server);
}

// ------------------------------------------------------------ one holder

/// The holder scenarios' look at Redis: the queue's keys, on the test's
/// own connection.
struct Keys {
    conn: MultiplexedConnection,
    keys: QueueKeys,
}

impl Store for Keys {
    type Queue = RedisQueue<String>;

    async fn lease_of(&mut self, key: &str) -> Option<(f64, String)> {
        match lease_of(&mut self.conn, &self.keys, key).await {
            (Some(deadline), Some(owner)) => Some((deadline, owner)),
            (None, None) => None,
            half => panic!("{key}: a lease without an owner, or the reverse: {half:?}"),
        }
    }

    fn later(newer: &str, older: &str) -> bool {
        epoch(newer) > epoch(older)
    }

    fn leases_reaped(queue: &RedisQueue<String>) -> u64 {
        queue.leases_reaped()
    }

    /// One more hand-out than the child's, one reaped lease (the child's),
    /// and nothing left anywhere.
    async fn assert_handed_out_exactly_once_more(&mut self, parent: &RedisQueue<String>) {
        let s = state(&mut self.conn, &self.keys).await;
        assert!(is_empty(&s), "{s:?}");
        assert_eq!(s.seq, 2, "two hand-outs in all: the child's and one more");
        assert_eq!(s.lease_expired_total, 1, "{s:?}");
        assert_eq!(
            parent.num_requeues(&"k".to_string()).await.unwrap(),
            1,
            "the reap counted a failure"
        );
        assert_eq!(
            inspect::check_invariants(&mut self.conn, &self.keys).await,
            Ok(())
        );
    }
}

/// A worker process holding `k`, plus the parent's queue.
async fn child_holding_k(prefix: &str) -> Holder<Keys> {
    let url = support::server().url();
    let queue = unique_name(prefix);
    let parent: RedisQueue<String> = RedisQueue::builder(&url, &queue)
        .lease(ms(HOLD_LEASE_MS))
        .build()
        .await
        .unwrap();
    assert_eq!(parent.add("k".into()).await.unwrap(), Added::Queued);
    let keys = Keys {
        conn: support::connect(&url).await,
        keys: QueueKeys::new(&queue).unwrap(),
    };
    Holder::start(parent, keys, &url, &queue, temp_dir()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_worker_mid_processing_hands_item_to_another() {
    // At most one lease after the kill, plus reap backoff (5 ms) and slack.
    (child_holding_k("kill9").await)
        .kill9_hands_item_to_another(Duration::from_secs(2))
        .await;
}

/// A process killed while it holds an item fetched ahead (leased to it,
/// handed to none of its workers): the item comes back after one lease,
/// under a later token, to another process, and is processed exactly once
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_an_item_fetched_ahead_hands_it_to_another() {
    let url = support::server().url();
    let queue = unique_name("kill9-ahead");
    let parent: RedisQueue<String> = RedisQueue::builder(&url, &queue)
        .lease(ms(HOLD_LEASE_MS))
        .build()
        .await
        .unwrap();
    for key in ["a", "b"] {
        assert_eq!(parent.add(key.into()).await.unwrap(), Added::Queued);
    }
    let dir = temp_dir();
    let mut child = Worker::spawn(
        dir.path(),
        "ahead",
        &url,
        &queue,
        HOLD_LEASE_MS,
        Mode::FetchAhead,
        4,
    );
    child
        .wait_line("E a", |l| match l {
            Line::End { key, rc, .. } if key == "a" && rc == "ok" => Some(()),
            _ => None,
        })
        .await;
    let mut conn = support::connect(&url).await;
    let keys = QueueKeys::new(&queue).unwrap();
    // The end of "a" leased "b" to the child, which keeps it unclaimed.
    let (deadline, owner) = lease_of(&mut conn, &keys, "b").await;
    assert!(deadline.is_some(), "b was not fetched ahead");
    let child_token = owner.unwrap();
    assert_eq!(parent.len().await.unwrap(), 0, "b is not ready elsewhere");

    let getter = {
        let parent = parent.clone();
        tokio::spawn(async move { parent.get().await })
    };
    child.signal("KILL");
    assert!(!child.wait_exit(Duration::from_secs(5)).await.success());
    let killed = Instant::now();
    let item = tokio::time::timeout(Duration::from_secs(10), getter)
        .await
        .expect("the item fetched ahead never came back")
        .unwrap()
        .unwrap();
    assert_eq!(*item, "b");
    assert!(epoch(&item.token().unwrap()) > epoch(&child_token));
    assert!(
        killed.elapsed() < ms(HOLD_LEASE_MS) + Duration::from_secs(2),
        "came back after {:?}",
        killed.elapsed()
    );
    assert!(item.end_async(Then::Done).await.unwrap().released);
    let s = state(&mut conn, &keys).await;
    assert!(is_empty(&s), "{s:?}");
    assert_eq!(s.seq, 3, "a, b fetched ahead, b once more");
    assert_eq!(s.lease_expired_total, 1, "{s:?}");
    assert_eq!(inspect::check_invariants(&mut conn, &keys).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_worker_learns_lease_lost() {
    (child_holding_k("paused").await)
        .pause_learns_lease_lost()
        .await;
}

// ------------------------------------------------------------ Redis crash

const AOF_KEYS: usize = 2_000;
const AOF_HELD: usize = 10;
const AOF_LEASE_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kill9_restart_with_aof_loses_nothing() {
    let started = Instant::now();
    let mut server = LocalServer::start().unwrap(); // AOF, appendfsync always
    let url = server.url();
    let name = unique_name("aof");
    let queue: RedisQueue<String> = RedisQueue::builder(&url, &name)
        .lease(ms(AOF_LEASE_MS))
        .build()
        .await
        .unwrap();
    let keys = QueueKeys::new(&name).unwrap();

    // 2,000 adds, 16 at a time (fsync per write makes them slow one by one).
    add_numbered(&queue, AOF_KEYS, 16).await;
    assert_eq!(queue.len().await.unwrap(), AOF_KEYS);
    let added_in = started.elapsed();

    // A getter of another queue, blocked in BZPOPMIN across the crash. It
    // is set up before any other get on this server, so the blocked client
    // counted is its marker waiter.
    let wait_name = unique_name("aof-wait");
    let waiter: RedisQueue<String> = RedisQueue::builder(&url, &wait_name)
        .lease(ms(AOF_LEASE_MS))
        .build()
        .await
        .unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move {
            let item = waiter.get().await.unwrap();
            (item, Instant::now())
        })
    };
    let mut admin = support::connect(&url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked_in_bzpopmin_count(&mut admin).await == 0 {
        assert!(Instant::now() < deadline, "the waiter never blocked");
        tokio::time::sleep(ms(10)).await;
    }

    // Leases held across the crash.
    let mut held = Vec::new();
    for _ in 0..AOF_HELD {
        held.push(queue.get().await.unwrap());
    }
    let held_keys: HashSet<String> = held.iter().map(|i| (**i).clone()).collect();

    // Workers drain; Redis is killed mid-drain.
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(drain(queue.clone(), seen.clone())))
        .collect();
    let processed = || seen.lock().unwrap().processed.len();
    poll_until(Duration::from_secs(30), "400 processed", || {
        processed() >= 400
    })
    .await;
    let crash = Instant::now();
    let before = processed();
    tokio::task::block_in_place(|| server.restart(true)).unwrap();
    let restart_took = crash.elapsed();
    assert!(
        restart_took < ms(AOF_LEASE_MS),
        "the restart took {restart_took:?}"
    );
    let mut admin = support::connect(&url).await;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut admin).await.unwrap();
    let restarted_ms = secs * 1_000 + micros / 1_000;

    // The held leases survived (renewed first on reconnect).
    for item in &held {
        assert!(item.is_valid(), "held lease of {} lost locally", **item);
    }
    // The blocked getter resumes: an add from another client wakes it.
    let other: RedisQueue<String> = RedisQueue::builder(&url, &wait_name).build().await.unwrap();
    let woken_at = Instant::now();
    other.add("wake".into()).await.unwrap();
    let (item, got_at) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the getter waiting across the restart never resumed")
        .unwrap();
    let wake_latency = got_at - woken_at;
    assert_eq!(*item, "wake");
    assert!(item.end_async(Then::Done).await.unwrap().released);
    // They are renewed in Redis after the restart (renew first on
    // reconnect): only an extend that ran after it reaches this deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let renewed = (restarted_ms + AOF_LEASE_MS) as f64;
    for key in &held_keys {
        loop {
            let (until, _) = lease_of(&mut admin, &keys, key).await;
            if until.unwrap() >= renewed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "held {key} never renewed after the restart"
            );
            tokio::time::sleep(ms(20)).await;
        }
    }
    // The workers go on.
    poll_until(
        Duration::from_secs(30),
        "progress after the restart",
        || processed() > before + 100,
    )
    .await;
    for item in held {
        let key = (*item).clone();
        let ended = item.end_async(Then::Done).await;
        assert!(
            matches!(ended, Ok(e) if e.released),
            "the done of held {key} after the restart: {ended:?}"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(40);
    let final_state = loop {
        let s = state(&mut admin, &keys).await;
        if processed() == AOF_KEYS - AOF_HELD && is_empty(&s) {
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
    assert_eq!(inspect::check_invariants(&mut admin, &keys).await, Ok(()));
    let seen = seen.lock().unwrap();
    seen.assert_never_twice_at_once();
    let all: HashSet<String> = (0..AOF_KEYS).map(|i| format!("a{i}")).collect();
    let processed_keys: HashSet<String> = seen.processed.keys().cloned().collect();
    let expected: HashSet<String> = all.difference(&held_keys).cloned().collect();
    assert_eq!(
        processed_keys, expected,
        "every key processed, the held ones by their holder"
    );
    // A key comes twice only through a reaped lease: a get whose reply the
    // crash swallowed leaves a lease nobody holds, reaped after it expires.
    let again = seen.again();
    assert!(
        again.len() as u64 <= final_state.lease_expired_total,
        "processed again without a reap: {again:?}; {final_state:?}"
    );
    eprintln!(
        "AOF: {AOF_KEYS} added in {added_in:?}; restart {restart_took:?} after {before} processed; \
         wake-up across it {wake_latency:?}; ends {:?}; reaped {}; processed again {again:?}; took {:?}",
        seen.ends,
        final_state.lease_expired_total,
        started.elapsed()
    );
    drop(seen);
    drop(queue);
    drop(server);
}

// ------------------------------------------------------------ wake-ups

/// How many clients are blocked in `BZPOPMIN` right now (`flags=b`; `cmd=`
/// alone is only the last command a client ran).
async fn blocked_in_bzpopmin_count(conn: &mut MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.contains("cmd=bzpopmin") && l.contains(" flags=b "))
        .count()
}

/// Two processes (two `RedisQueue`s: they share nothing but Redis), A busy
/// with an item and B idle: an add must wake B at once, not after
/// `WAKE_CAP`.
///
/// Found by this file: when A's marker waiter pops a wake-up, it notifies
/// A's getter and loops; that getter still counts as idle while its `get`
/// script runs, so the waiter goes straight back into `BZPOPMIN` and stays
/// blocked (up to 5 s) after the getter left with the item. Redis serves
/// blocked clients first come first served, so A's waiter pops the marker
/// of the next add, wakes no getter of A (none is idle), and B's idle
/// getter sleeps until its 5 s cap although an item is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_process_does_not_swallow_wake_ups() {
    // Its own server, so that the blocked clients counted are this test's.
    let server = LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        ..LocalServerOptions::default()
    })
    .unwrap();
    let url = server.url();
    let name = unique_name("wake");
    let mut admin = support::connect(&url).await;
    let a: RedisQueue<String> = RedisQueue::builder(&url, &name).build().await.unwrap();
    let b: RedisQueue<String> = RedisQueue::builder(&url, &name).build().await.unwrap();
    // A waits for work (its marker waiter blocks), then is woken for x.
    let a_waiting = {
        let a = a.clone();
        tokio::spawn(async move { a.get().await.unwrap() })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_in_bzpopmin_count(&mut admin).await < 1 {
        assert!(Instant::now() < deadline, "A's waiter never blocked");
        tokio::time::sleep(ms(5)).await;
    }
    a.add("x".into()).await.unwrap();
    let x = tokio::time::timeout(Duration::from_secs(2), a_waiting)
        .await
        .expect("A was not woken for x")
        .unwrap();
    // A's waiter popped the marker and, its getter still counted idle while
    // that getter's `get` ran, went straight back into BZPOPMIN.
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_in_bzpopmin_count(&mut admin).await < 1 {
        if Instant::now() >= deadline {
            // A's waiter did not race back into BZPOPMIN this time.
            eprintln!("A's marker waiter did not block again; the race did not happen");
            return;
        }
        tokio::time::sleep(ms(5)).await;
    }
    // A holds x and has no idle getter, yet its waiter is blocked.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move {
            let item = b.get().await.unwrap();
            (item, Instant::now())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_in_bzpopmin_count(&mut admin).await < 2 {
        assert!(Instant::now() < deadline, "B's waiter never blocked");
        tokio::time::sleep(ms(5)).await;
    }
    let added = Instant::now();
    a.add("y".into()).await.unwrap();
    let (y, got_at) = waiting.await.unwrap();
    let latency = got_at - added;
    assert_eq!(*y, "y");
    assert!(
        latency < Duration::from_secs(1),
        "the idle getter got a ready item only after {latency:?}"
    );
    drop((x, y));
    drop(server);
}
