//! The queue on a Sentinel-managed master (docs/redis.md §10): one master,
//! two replicas and three sentinels on loopback, configured as the docs
//! advise (`appendonly yes`, `appendfsync always`, `min-replicas-to-write
//! 1`; two replicas, so that the promoted one has a replica at once and
//! takes writes). Workers in three queue instances (standing for three processes)
//! take, re-add and end items while items are added; then the master is
//! failed over, by `SENTINEL FAILOVER` or by `kill -9`.
//!
//! Replication is asynchronous, so a failover may discard the last writes
//! the old master acknowledged. What is checked is what the docs promise:
//!
//! * the queue goes on, on the new master, by itself;
//! * every add that the replicas had received before the failover (a
//!   `WAIT` checkpoint taken just before it), and every add made after
//!   the failover completed, is followed by a processing that started
//!   after it;
//! * no key is held by two workers at once, except where one of them
//!   learnt that its lease was lost, or took the key in the window
//!   between the checkpoint and the end of the failover (a hand-out the
//!   failover discarded);
//! * every processing ends, and the queue's rules (§2) hold on the new
//!   master.
//!
//! What the window lost is counted and printed, not asserted. Nothing
//! sleeps to wait for a condition: the deployment and the queue are
//! polled against deadlines.
#![allow(clippy::unwrap_used)]

mod workload;

use requeue_redis::RedisQueue;
use requeue_redis::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::{History, Workers};

const MASTER: &str = "mymaster";

/// What the docs advise for the data nodes: durable, and a master that
/// takes no writes while no replica is connected.
fn data_node(replica_of: Option<u16>) -> LocalServer {
    // Diskless full resyncs wait 5 s by default for more replicas to
    // join; a test need not.
    let mut extra_args: Vec<String> = [
        "--repl-diskless-sync-delay",
        "0",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ]
    .map(String::from)
    .to_vec();
    if let Some(port) = replica_of {
        extra_args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    }
    LocalServer::start_with(LocalServerOptions {
        extra_args,
        ..LocalServerOptions::default() // appendonly yes, appendfsync always
    })
    .unwrap()
}

fn conn(server: &LocalServer) -> redis::Connection {
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

/// `ROLE`'s first field (`master`, `slave`), or `None` when unreachable.
fn role(server: &LocalServer) -> Option<String> {
    let client = redis::Client::open(server.url()).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
    match role.first()? {
        redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// A master, two replicas and three sentinels (quorum 2).
struct Deployment {
    /// `[master, replica, replica]` at the start; which is master changes.
    data: Vec<LocalServer>,
    sentinels: Vec<LocalServer>,
}

impl Deployment {
    fn start() -> Deployment {
        let master = data_node(None);
        let replicas = [
            data_node(Some(master.port())),
            data_node(Some(master.port())),
        ];
        let config = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 2\n",
            master.port()
        );
        let sentinels = (0..3)
            .map(|_| {
                LocalServer::start_with(LocalServerOptions {
                    appendonly: false,
                    sentinel: Some(config.clone()),
                    ..LocalServerOptions::default()
                })
                .unwrap()
            })
            .collect();
        let mut data = vec![master];
        data.extend(replicas);
        let deployment = Deployment { data, sentinels };
        // A failover needs the sentinels to know each other (they find
        // each other through the master, every 2 s) and the replicas.
        deployment.wait_until("the sentinels know each other and the replicas", || {
            deployment.sentinels.iter().all(|s| {
                let info: Vec<String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(MASTER)
                    .query(&mut conn(s))
                    .unwrap();
                let field = |name: &str| {
                    info.iter()
                        .position(|f| f == name)
                        .and_then(|i| info.get(i + 1))
                        .cloned()
                };
                field("num-other-sentinels").as_deref() == Some("2")
                    && field("num-slaves").as_deref() == Some("2")
                    && field("flags").as_deref() == Some("master")
            })
        });
        deployment.wait_until("the replicas are in sync", || {
            deployment.data[1..].iter().all(|replica| {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn(replica))
                    .unwrap();
                info.contains("master_link_status:up")
            })
        });
        deployment
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// Every server's log, for a failure's message.
    fn logs(&self) -> String {
        self.data
            .iter()
            .chain(&self.sentinels)
            .map(|server| {
                let log = std::fs::read_to_string(server.dir().join("redis-server.log"))
                    .unwrap_or_default();
                format!("--- port {}\n{log}", server.port())
            })
            .collect()
    }

    /// Polls `ok` every 20 ms until it holds; panics after 30 s with
    /// every server's log.
    fn wait_until(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "never: {what}; the logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data node every sentinel names as the master, if they agree.
    fn named_master(&self) -> Option<usize> {
        let mut named = None;
        for sentinel in &self.sentinels {
            let addr: Option<(String, String)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER)
                .query(&mut conn(sentinel))
                .ok()?;
            let port: u16 = addr?.1.parse().ok()?;
            if named.is_some_and(|n| n != port) {
                return None;
            }
            named = Some(port);
        }
        self.data.iter().position(|d| Some(d.port()) == named)
    }

    /// Whether the data node `n` can take no write: dead, a replica, or a
    /// master without a connected replica (`min-replicas-to-write 1`).
    fn takes_no_writes(&self, n: usize) -> bool {
        let Some(role) = role(&self.data[n]) else {
            return true;
        };
        if role != "master" {
            return true;
        }
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn(&self.data[n]))
            .unwrap_or_default();
        info.contains("connected_slaves:0\r\n")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Failover {
    /// `SENTINEL FAILOVER`: the old master lives on, cut off from the
    /// replicas, and is demoted later.
    Forced,
    /// `kill -9` of the master, which stays down.
    Crash,
}

async fn fails_over(how: Failover) {
    // RUST_LOG=requeue_redis=info shows the queue's view of the failover.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    let deployment = tokio::task::spawn_blocking(Deployment::start)
        .await
        .unwrap();
    let set_up = started.elapsed();
    let name = format!("sentinel-{how:?}-{}", std::process::id());
    let keys = QueueKeys::new(&name).unwrap();
    let url = deployment.url();
    let mut queues = Vec::new();
    for _ in 0..3 {
        queues.push(
            RedisQueue::<String>::builder(&url, &name)
                .lease(Duration::from_secs(5))
                .build()
                .await
                .unwrap(),
        );
    }
    let history = Arc::new(History::default());
    let workers = Workers::start(&history, &queues, 2, Duration::from_millis(3), 4);
    let adding = {
        let (history, queue) = (history.clone(), queues[0].clone());
        let stop = requeue::wait::Stop::new();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_stopped() {
                n += 1;
                let deadline = Instant::now() + Duration::from_secs(30);
                history.add(&queue, format!("item-{n}"), deadline).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        });
        (task, stopping)
    };

    tokio::time::sleep(Duration::from_millis(800)).await;
    // The checkpoint: every write the master acknowledged before the SET
    // precedes it in the replication stream, so once both replicas have
    // acknowledged the SET (WAIT) they have them all.
    let checkpoint = history.seq();
    let old = 0;
    {
        let mut master = conn(&deployment.data[old]);
        redis::cmd("SET")
            .arg(format!("rqtest:{{{name}}}:checkpoint"))
            .arg(checkpoint)
            .query::<()>(&mut master)
            .unwrap();
        let replicas: i64 = redis::cmd("WAIT")
            .arg(2)
            .arg(5000)
            .query(&mut master)
            .unwrap();
        assert_eq!(replicas, 2, "the replicas acknowledged the checkpoint");
    }
    let failing = Instant::now();
    let deployment = tokio::task::spawn_blocking(move || {
        let mut deployment = deployment;
        match how {
            Failover::Forced => redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(MASTER)
                .query::<()>(&mut conn(&deployment.sentinels[0]))
                .unwrap(),
            Failover::Crash => deployment.data[old].kill9().unwrap(),
        }
        deployment.wait_until(
            "the sentinels name a promoted replica, and the old master takes no writes",
            || {
                deployment.named_master().is_some_and(|n| {
                    n != old
                        && role(&deployment.data[n]).as_deref() == Some("master")
                        && deployment.takes_no_writes(old)
                })
            },
        );
        deployment
    })
    .await
    .unwrap();
    // From here on nothing can be written anywhere but the new master.
    let recovered = history.seq();
    let failed_over = failing.elapsed();

    // The queue goes on, on the new master: wait for work started after
    // the failover (the adder keeps adding).
    let resumed = recovered;
    let deadline = Instant::now() + Duration::from_secs(20);
    while history
        .intervals()
        .iter()
        .filter(|i| i.start > resumed)
        .count()
        < 200
    {
        assert!(
            Instant::now() < deadline,
            "the queue did not go on after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let went_on = failing.elapsed();
    if std::env::var_os("RQ_SENTINEL_LOGS").is_some() {
        eprintln!("{}", deployment.logs());
    }
    adding.1.stop();
    let adds = adding.0.await.unwrap();

    // Drain, on whichever node is master now.
    let (deployment, now_master) = tokio::task::spawn_blocking(move || {
        let mut named = None;
        deployment.wait_until("the sentinels agree on the master", || {
            named = deployment.named_master();
            named.is_some()
        });
        (deployment, named.unwrap())
    })
    .await
    .unwrap();
    // A connection that reconnects by itself: Sentinel ends every normal
    // client's connection (CLIENT KILL) when it reconfigures a node, which
    // can still happen to the new master just after the sentinels agree.
    let mut direct = redis::aio::ConnectionManager::new(
        redis::Client::open(deployment.data[now_master].url()).unwrap(),
    )
    .await
    .unwrap();
    workload::wait_drained(&mut direct, &keys).await;
    workers.stop().await;

    // The promoted replica had no scripts (`SCRIPT LOAD` is not
    // replicated): the first calls met NOSCRIPT and loaded them.
    let errorstats: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(&mut direct)
        .await
        .unwrap();
    assert!(errorstats.contains("errorstat_NOSCRIPT:"), "{errorstats}");

    let in_window = |seq: u64| checkpoint < seq && seq < recovered;
    let intervals = history.intervals();
    let after = intervals.iter().filter(|i| i.start > recovered).count();

    let (bad, excused) = history.overlaps(|i| in_window(i.start));
    assert!(bad.is_empty(), "held twice at once:\n{}", bad.join("\n"));
    // Adds acknowledged before the checkpoint, or sent after the failover.
    let outside =
        |add: &workload::Add| add.acked.is_some_and(|a| a < checkpoint) || add.sent > recovered;
    let unserved = history.unserved(|add| !outside(add));
    assert!(
        unserved.is_empty(),
        "adds never served:\n{}",
        unserved.join("\n")
    );
    let lost_in_window = history.unserved(|add| outside(add));
    let unended = history.unended();
    assert!(unended.is_empty(), "never ended:\n{}", unended.join("\n"));
    if let Err(broken) = inspect::check_invariants(&mut direct, &keys).await {
        panic!("invariants broken: {broken}");
    }
    let lost = intervals.iter().filter(|i| i.lost()).count();
    let not_ok = intervals
        .iter()
        .filter(|i| i.outcome.as_deref() != Some("ok"))
        .count();
    eprintln!(
        "{how:?} failover: processings started per 500 ms from the failover {:?}",
        history.timeline(failing, Duration::from_millis(500))
    );
    eprintln!(
        "{how:?} failover: set up in {set_up:?}; failed over in {failed_over:?} (200 processings \
         after that by {went_on:?}); window seq {checkpoint}..{recovered}; {adds} adds by \
         the adder, {} in all, {} acknowledged in the window and lost; {} processings ({after} \
         after the failover), {not_ok} not ended ok, {lost} lease losses, {} overlaps excused \
         (lost lease or taken in the window); errors seen {:?}; took {:?}",
        history.adds().len(),
        lost_in_window.len(),
        intervals.len(),
        excused.len(),
        history.errors(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_failover_moves_the_queue_to_the_new_master() {
    fails_over(Failover::Forced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_master_is_replaced_and_the_queue_goes_on() {
    fails_over(Failover::Crash).await;
}
