//! The queue on Redis Cluster.
//!
//! * One cluster-mode node owning every slot: a node refuses any script
//!   whose keys hash to different slots (`CROSSSLOT`) or that touches keys
//!   it was not given, so the engine's conformance checks passing there
//!   prove each script declares all its keys and that a queue's keys share
//!   one hash tag.
//! * Three masters (`cluster_builder`): the conformance checks again, on
//!   queues spread over the masters; scripts flushed from every node
//!   (`NOSCRIPT`) are loaded again; and a queue's slot migrated from
//!   master to master, twice, while workers in several queue instances
//!   add, take and end items: nothing is lost, no key is held twice at
//!   once, and the queue's rules hold afterwards on the new owner; and an
//!   idle getter's marker wait follows the slot to its new owner.
//!
//! Nothing sleeps to wait for a condition: cluster state and the queue are
//! polled against deadlines.
#![allow(clippy::unwrap_used)]

mod workload;

use requeue::clock::FakeClock;
use requeue_redis::RedisQueue;
use requeue_redis::inspect;
use requeue_redis::keys::QueueKeys;
use requeue_redis::local_server::{LocalServer, LocalServerOptions};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use workload::{History, Workers};

/// Options for a cluster-mode node. The cluster bus gets a free port of
/// its own: its default, the client port + 10,000, is past 65,535 for
/// the upper part of the ephemeral range that `LocalServer` draws from.
fn cluster_node_options() -> LocalServerOptions {
    let bus = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    LocalServerOptions {
        appendonly: false,
        extra_args: [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus.to_string(),
            "--cluster-node-timeout",
            "5000",
        ]
        .map(String::from)
        .to_vec(),
        ..LocalServerOptions::default()
    }
}

fn admin(node: &LocalServer) -> redis::Connection {
    redis::Client::open(node.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn cluster_info(conn: &mut redis::Connection) -> String {
    redis::cmd("CLUSTER").arg("INFO").query(conn).unwrap()
}

/// One cluster-mode node per test binary, owning all 16,384 slots.
fn cluster_node() -> &'static LocalServer {
    static NODE: OnceLock<LocalServer> = OnceLock::new();
    NODE.get_or_init(|| {
        let node = LocalServer::start_with(cluster_node_options()).unwrap();
        let mut conn = admin(&node);
        redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query::<()>(&mut conn)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = cluster_info(&mut conn);
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never became ok: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

async fn fresh() -> (RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = RedisQueue::builder(cluster_node().url(), unique("cluster"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    (queue, clock)
}

requeue::conformance_tests!(fresh);

#[test]
fn the_node_does_refuse_cross_slot_scripts() {
    let client = redis::Client::open(cluster_node().url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let refused = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("rq:{a}:queue")
        .arg("rq:{b}:queue")
        .query::<i64>(&mut conn)
        .unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("crossslot"),
        "{refused}"
    );
}

// ------------------------------------------------------------ three masters

/// A cluster of masters on loopback, without replicas.
struct Cluster {
    nodes: Vec<LocalServer>,
    /// Each node's cluster node id, in `nodes`' order.
    ids: Vec<String>,
}

impl Cluster {
    /// `masters` nodes, the slots split evenly in order, joined with
    /// `CLUSTER MEET` (what `redis-cli --cluster create` does, without its
    /// fixed waits), polled until every node sees every slot covered.
    fn start(masters: usize) -> Cluster {
        let nodes: Vec<LocalServer> = (0..masters)
            .map(|_| LocalServer::start_with(cluster_node_options()).unwrap())
            .collect();
        let mut ids = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let mut conn = admin(node);
            redis::cmd("CLUSTER")
                .arg("SET-CONFIG-EPOCH")
                .arg(i + 1)
                .query::<()>(&mut conn)
                .unwrap();
            let (first, last) = Self::initial_range(i, masters);
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query::<()>(&mut conn)
                .unwrap();
            ids.push(redis::cmd("CLUSTER").arg("MYID").query(&mut conn).unwrap());
        }
        let mut first = admin(&nodes[0]);
        for node in &nodes[1..] {
            let bus: u16 = {
                let mut conn = admin(node);
                let ports: Vec<String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("cluster-port")
                    .query(&mut conn)
                    .unwrap();
                ports[1].parse().unwrap()
            };
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .arg(bus)
                .query::<()>(&mut first)
                .unwrap();
        }
        let cluster = Cluster { nodes, ids };
        cluster.wait_until("every node sees all masters and every slot", |info| {
            info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{masters}\r\n"))
                && info.contains("cluster_slots_assigned:16384")
        });
        cluster
    }

    fn initial_range(i: usize, masters: usize) -> (usize, usize) {
        let per = 16384 / masters;
        let first = i * per;
        let last = if i + 1 == masters {
            16383
        } else {
            first + per - 1
        };
        (first, last)
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(LocalServer::url).collect()
    }

    /// Polls every node's `CLUSTER INFO` until `ok` holds for all of them.
    fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let infos: Vec<String> = self
                .nodes
                .iter()
                .map(|n| cluster_info(&mut admin(n)))
                .collect();
            if infos.iter().all(|i| ok(i)) {
                return;
            }
            assert!(Instant::now() < deadline, "never: {what}: {infos:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut admin(&self.nodes[0]))
            .unwrap()
    }

    /// The node that owns `slot` by the initial split.
    fn initial_owner(&self, slot: u16) -> usize {
        (0..self.nodes.len())
            .find(|&i| {
                let (first, last) = Self::initial_range(i, self.nodes.len());
                (first..=last).contains(&usize::from(slot))
            })
            .unwrap()
    }

    /// The node that owns `slot` now, by node 0's `CLUSTER SLOTS`.
    fn owner(&self, slot: u16) -> usize {
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut admin(&self.nodes[0]))
            .unwrap();
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        };
        for range in ranges {
            let redis::Value::Array(range) = range else {
                panic!("CLUSTER SLOTS: {range:?}")
            };
            if !(int(&range[0])..=int(&range[1])).contains(&i64::from(slot)) {
                continue;
            }
            let redis::Value::Array(node) = &range[2] else {
                panic!("CLUSTER SLOTS: {range:?}")
            };
            let port = u16::try_from(int(&node[1])).unwrap();
            return self.nodes.iter().position(|n| n.port() == port).unwrap();
        }
        panic!("slot {slot} has no owner")
    }

    fn keys_in_slot(&self, node: usize, slot: u16) -> Vec<Vec<u8>> {
        redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(1000)
            .query(&mut admin(&self.nodes[node]))
            .unwrap()
    }

    /// Moves `slot` from node `from` to node `to` as `redis-cli --cluster
    /// reshard` does: `IMPORTING` on the target, `MIGRATING` on the
    /// source, `MIGRATE … KEYS` until the source has none left, then
    /// `SETSLOT … NODE` on the target, the source and the others. Each
    /// stage is held for `stage` (not a wait for a condition: it stands
    /// for the time a large slot takes to move, so that clients meet the
    /// slot half-moved). Returns how many keys moved.
    fn migrate(&self, slot: u16, from: usize, to: usize, stage: Duration) -> usize {
        let setslot = |node: usize, args: &[&str]| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot);
            for arg in args {
                cmd.arg(*arg);
            }
            cmd.query::<()>(&mut admin(&self.nodes[node])).unwrap();
        };
        setslot(to, &["IMPORTING", &self.ids[from]]);
        setslot(from, &["MIGRATING", &self.ids[to]]);
        std::thread::sleep(stage);
        let mut moved = 0;
        loop {
            let keys = self.keys_in_slot(from, slot);
            if keys.is_empty() {
                break;
            }
            moved += keys.len();
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(keys)
                .query::<()>(&mut admin(&self.nodes[from]))
                .unwrap();
        }
        std::thread::sleep(stage);
        setslot(to, &["NODE", &self.ids[to]]);
        setslot(from, &["NODE", &self.ids[to]]);
        for other in (0..self.nodes.len()).filter(|&n| n != from && n != to) {
            setslot(other, &["NODE", &self.ids[to]]);
        }
        moved
    }

    /// `INFO errorstats` summed over the nodes: error code → count.
    fn error_stats(&self) -> std::collections::HashMap<String, u64> {
        let mut stats = std::collections::HashMap::new();
        for node in &self.nodes {
            let info: String = redis::cmd("INFO")
                .arg("errorstats")
                .query(&mut admin(node))
                .unwrap();
            for line in info.lines() {
                if let Some((code, rest)) = line
                    .strip_prefix("errorstat_")
                    .and_then(|l| l.split_once(":count="))
                {
                    *stats.entry(code.to_string()).or_default() +=
                        rest.trim().parse::<u64>().unwrap();
                }
            }
        }
        stats
    }
}

/// Three masters per test binary, shared by the tests below.
fn three_masters() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(3))
}

async fn cluster_connection() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::builder(three_masters().urls())
        .response_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// The conformance checks through the cluster client, on queues whose
/// slots fall on all three masters.
mod on_three_masters {
    use super::*;

    async fn fresh() -> (RedisQueue<String>, FakeClock) {
        let clock = FakeClock::new();
        let queue = RedisQueue::cluster_builder(three_masters().urls(), unique("masters"))
            .fake_time(clock.clone())
            .build()
            .await
            .unwrap();
        (queue, clock)
    }

    requeue::conformance_tests!(fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_reaches_every_master_and_reports_no_credentials() {
    let cluster = three_masters();
    let ports: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    // Queues on every master, named through one URL.
    let url = format!("redis+cluster://{}", ports.join(","));
    let mut owners = std::collections::HashSet::new();
    let mut n = 0;
    while owners.len() < 3 {
        n += 1;
        let name = unique(&format!("url{n}"));
        owners.insert(cluster.initial_owner(cluster.slot_of(&format!("rq:{{{name}}}:queue"))));
        let queue: RedisQueue<String> = RedisQueue::builder(&url, &name).build().await.unwrap();
        queue.add("x".into()).await.unwrap();
        let item = queue.get().await.unwrap();
        assert_eq!(*item, "x");
        item.end_async(requeue::engine::Then::Done).await.unwrap();
        assert_eq!(queue.len().await.unwrap(), 0);
    }
    // A wrong password is refused, and named without it.
    let url = format!("redis+cluster://app:s3cretpass@{}", ports[0]);
    let error = RedisQueue::<String>::builder(&url, "refused")
        .build()
        .await
        .unwrap_err();
    let text = format!("{} {error:?}", requeue_redis::error::Chain(&error));
    assert!(!text.contains("s3cretpass"), "{text}");
    assert!(text.contains(&ports[0]), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_from_every_node_are_loaded_again() {
    let cluster = three_masters();
    let queue: RedisQueue<String> = RedisQueue::cluster_builder(cluster.urls(), unique("noscript"))
        .build()
        .await
        .unwrap();
    queue.add("a".into()).await.unwrap();
    for node in &cluster.nodes {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<()>(&mut admin(node))
            .unwrap();
    }
    // Every path: the coalesced batch, a delayed add, len, the end.
    queue.add("b".into()).await.unwrap();
    queue
        .add_after("c".into(), Duration::from_millis(1))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let item = tokio::time::timeout(Duration::from_secs(10), queue.get())
            .await
            .unwrap()
            .unwrap();
        got.push((*item).clone());
        item.end_async(requeue::engine::Then::Forget).await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
    assert_eq!(queue.len().await.unwrap(), 0);
}

/// The queue's slot moves from master to master twice while workers in
/// four queue instances (standing for four processes) take, re-add and
/// end items, and items keep being added. Every script declares all ten
/// keys, so while the slot is migrating a node answers `TRYAGAIN` (some
/// of the keys are missing where the script was sent) or `ASK`, and runs
/// nothing: the client's retries carry the calls over the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_the_queues_slot_under_load_loses_nothing_and_never_doubles_a_holder() {
    let started = Instant::now();
    let cluster = three_masters();
    let name = unique("reshard");
    let keys = QueueKeys::new(&name).unwrap();
    let slot = cluster.slot_of(keys.queue());
    let first = cluster.owner(slot);
    let (second, third) = ((first + 1) % 3, (first + 2) % 3);
    let build = || {
        RedisQueue::<String>::cluster_builder(cluster.urls(), name.clone())
            .lease(Duration::from_secs(3))
            .build()
    };
    let mut queues = Vec::new();
    for _ in 0..4 {
        queues.push(build().await.unwrap());
    }
    let history = Arc::new(History::default());
    let workers = Workers::start(&history, &queues, 2, Duration::from_millis(3), 4);

    // Three adders, each through its own queue instance: unique items
    // (one in ten delayed by up to 300 ms) and a few hot keys, faster than
    // the workers take them, so that a backlog, parked re-adds and
    // delayed items are in the slot when it moves.
    let errors_before = cluster.error_stats();
    let mut adders = Vec::new();
    for (a, queue) in queues.iter().take(3).enumerate() {
        let (history, queue) = (history.clone(), queue.clone());
        adders.push(tokio::spawn(async move {
            let until = Instant::now() + Duration::from_millis(2500);
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                let key = if n % 4 == 0 {
                    format!("hot-{}", n % 5)
                } else {
                    format!("item-{a}-{n}")
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                if n % 10 == 1 {
                    let delay = Duration::from_millis(fastrand::u64(1..300));
                    history.add_after(&queue, key, delay, deadline).await;
                } else {
                    history.add(&queue, key, deadline).await;
                }
            }
            n
        }));
    }

    // Two moves, with work on each owner before and after; each holds
    // the slot half-moved for a while.
    // RQ_RESHARD_STAGE_MS holds each stage longer, to see what a slow
    // migration does (past the client's retries, past a lease).
    let stage = std::env::var("RQ_RESHARD_STAGE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(150), Duration::from_millis);
    let mut moves = Vec::new();
    for (from, to) in [(first, second), (second, third)] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let took = Instant::now();
        let moved =
            tokio::task::spawn_blocking(move || three_masters().migrate(slot, from, to, stage))
                .await
                .unwrap();
        moves.push((from, to, moved, took.elapsed()));
        assert!(
            moved > 0,
            "the queue's keys were in slot {slot} on node {from}"
        );
    }
    let mut adds = 0;
    for adder in adders {
        adds += adder.await.unwrap();
    }

    // Drain: nothing queued, parked, leased or delayed.
    let mut conn = cluster_connection().await;
    workload::wait_drained(&mut conn, &keys).await;
    workers.stop().await;

    // The queue lives on the last owner only.
    assert!(cluster.keys_in_slot(first, slot).is_empty());
    assert!(cluster.keys_in_slot(second, slot).is_empty());
    assert!(!cluster.keys_in_slot(third, slot).is_empty());

    let (bad, excused) = history.overlaps(|_| false);
    assert!(bad.is_empty(), "held twice at once:\n{}", bad.join("\n"));
    let unserved = history.unserved(|_| false);
    assert!(
        unserved.is_empty(),
        "adds never served:\n{}",
        unserved.join("\n")
    );
    let unended = history.unended();
    assert!(unended.is_empty(), "never ended:\n{}", unended.join("\n"));
    if let Err(broken) = inspect::check_invariants(&mut conn, &keys).await {
        panic!("invariants broken: {broken}");
    }
    // The clients did meet the slot half-moved (the nodes count the
    // redirections and refusals they answered).
    let errors_after = cluster.error_stats();
    let met: std::collections::BTreeMap<&str, u64> = ["ASK", "TRYAGAIN", "MOVED"]
        .into_iter()
        .map(|code| {
            let count =
                |s: &std::collections::HashMap<String, u64>| s.get(code).copied().unwrap_or(0);
            (code, count(&errors_after) - count(&errors_before))
        })
        .collect();
    assert!(met["TRYAGAIN"] + met["ASK"] > 0, "{met:?}");
    let intervals = history.intervals();
    let lost = intervals.iter().filter(|i| i.lost()).count();
    let not_ok = intervals
        .iter()
        .filter(|i| i.outcome.as_deref() != Some("ok"))
        .count();
    eprintln!(
        "resharding slot {slot}: moves (from, to, keys, took) {moves:?}; redirections and \
         refusals answered {met:?}; {adds} adds by the adders, {} in all; {} processings, {not_ok} not ended ok, {lost} lease losses, {} excused overlaps; \
         errors seen {:?}; took {:?}",
        history.adds().len(),
        intervals.len(),
        excused.len(),
        history.errors(),
        started.elapsed()
    );
}

/// An idle getter blocks on the queue's marker on the node that owns the
/// slot. When the slot moves, that node redirects the blocked `BZPOPMIN`
/// (`MOVED`) and the marker connection follows it, so an add on the new
/// owner wakes the getter at once rather than after its 5 s timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_getter_is_woken_on_the_slots_new_owner() {
    let cluster = three_masters();
    let name = unique("wake");
    let slot = cluster.slot_of(QueueKeys::new(&name).unwrap().queue());
    let build = || RedisQueue::<String>::cluster_builder(cluster.urls(), name.clone()).build();
    let (getter, adder) = (build().await.unwrap(), build().await.unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let getting = tokio::spawn(async move {
        loop {
            let item = getter.get().await.unwrap();
            tx.send(((*item).clone(), Instant::now())).unwrap();
            item.end_async(requeue::engine::Then::Done).await.unwrap();
        }
    });
    // Each round: the getter has just found the queue empty and waits;
    // the slot moves; an add on the new owner must reach it well within
    // the 5 s a getter's timer would take.
    for round in 0..3 {
        let key = format!("round-{round}");
        let from = cluster.owner(slot);
        let to = (from + 1) % 3;
        // The getter's marker wait is blocked on the owner.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut admin(&cluster.nodes[from]))
                .unwrap();
            if clients
                .lines()
                .any(|c| c.contains("cmd=bzpopmin") && c.contains("flags=b"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no marker wait on node {from}: {clients}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::task::spawn_blocking(move || {
            three_masters().migrate(slot, from, to, Duration::ZERO)
        })
        .await
        .unwrap();
        let added = Instant::now();
        adder.add(key.clone()).await.unwrap();
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, key);
        let latency = at - added;
        assert!(
            latency < Duration::from_secs(2),
            "round {round}: woken after {latency:?}, not by the marker"
        );
        eprintln!("round {round}: slot {slot} moved {from} -> {to}; woken after {latency:?}");
    }
    getting.abort();
}
