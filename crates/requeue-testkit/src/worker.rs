//! The worker side: what a worker process runs, on any engine.

use crate::log::Log;
use requeue::engine::{AsyncQueue, Ended, QueueError, Then};
use requeue::queue::Item;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::future::Future;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that turns the test binary into a worker: its
/// [`Config`] as JSON.
pub const ENV: &str = "RQ_WORKER";

/// The name of the `#[test]` fn that runs a worker: each engine's
/// `tests/processes.rs` has one calling [`run_if_worker`].
pub const ENTRY: &str = "rq_worker_process";

/// What one worker process does.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Config {
    /// The engine's server.
    pub url: String,
    /// The queue's name.
    pub queue: String,
    /// The queue's lease.
    pub lease_ms: u64,
    /// Where the worker logs (see the crate docs).
    pub log: PathBuf,
    /// What it does.
    pub mode: Mode,
    /// How many items its queue fetches ahead (0: off), for an engine
    /// that can.
    #[serde(default)]
    pub prefetch: usize,
}

/// Which ends re-add an item in a [`Mode::Loop`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReAdds {
    /// `Then::Requeue` only.
    Requeue,
    /// `Then::Requeue`, `Then::Retry` (the shared rate limiter's delay) or
    /// `Then::RetryAfter` (1..20 ms), as likely: any re-add, delayed or
    /// not, must be served by a processing that starts after it.
    Any,
}

/// What a worker does.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tasks` concurrent get → work → end loops until stdin closes. Each
    /// processing takes 0..=`max_work_ms`; one in `readd_one_in` adds a
    /// key (its own or one of `k0..k{keys}`) while processing; one in
    /// `requeue_one_in` ends with a re-add as `readds` says (0 = never).
    Loop {
        /// Concurrent loops.
        tasks: usize,
        /// The longest a processing takes.
        max_work_ms: u64,
        /// One processing in this many adds a key (0 = never).
        readd_one_in: u32,
        /// One processing in this many ends with a re-add (0 = never).
        requeue_one_in: u32,
        /// The keys are `k0..k{keys}`.
        keys: u32,
        /// Which ends re-add.
        readds: ReAdds,
    },
    /// Takes one item, logs `S`, and holds it (without ending it) until a
    /// line `end` arrives on stdin; then logs `V`, `D`, ends it with
    /// `Then::Done` and logs `E`.
    Hold,
    /// Takes one item (logs `S`) and ends it with `Then::Done` (logs `D`,
    /// `E`); with `prefetch` on, that end fetches the next item ahead,
    /// which this worker then keeps, unclaimed, until stdin closes.
    FetchAhead,
}

/// The cross-process clock (see the crate docs): one counter per queue in
/// the engine's server, retried across connection losses (a lost reply
/// only skips a number).
pub trait Seq: Clone + Send + Sync + 'static {
    /// Connects to the clock of `queue` at `url` (creating it if needed).
    fn connect(url: &str, queue: &str) -> impl Future<Output = Self> + Send;

    /// The next number: larger than any returned before this call began,
    /// in any process.
    fn next(&self) -> impl Future<Output = u64> + Send;
}

/// What the harness needs of an engine.
pub trait Engine: 'static {
    /// The engine's queue.
    type Queue: AsyncQueue<String>;
    /// Its cross-process clock.
    type Seq: Seq;

    /// Opens a worker's queue as `config` says (`url`, `queue`,
    /// `lease_ms`, `prefetch`).
    fn open(config: &Config) -> impl Future<Output = Self::Queue> + Send;

    /// The queue's (leases lost, leases reaped) counters.
    fn counters(queue: &Self::Queue) -> (u64, u64);
}

/// The worker's entry: returns at once unless [`ENV`] is set; else runs
/// the worker of its config on engine `E` and returns when it is done.
pub fn run_if_worker<E: Engine>() {
    let Ok(json) = std::env::var(ENV) else {
        return;
    };
    let config: Config = serde_json::from_str(&json).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run::<E>(config));
}

async fn run<E: Engine>(config: Config) {
    // stdin is read on a plain thread (tokio's io-std feature is not
    // enabled); EOF drops the sender, which tells the worker to stop.
    let (tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let log = Arc::new(Log(Mutex::new(
        File::options()
            .create(true)
            .append(true)
            .open(&config.log)
            .unwrap(),
    )));
    let queue = E::open(&config).await;
    let seq = E::Seq::connect(&config.url, &config.queue).await;
    match config.mode {
        Mode::Loop {
            tasks,
            max_work_ms,
            readd_one_in,
            requeue_one_in,
            keys,
            readds,
        } => {
            let plan = Plan {
                max_work_ms,
                readd_one_in,
                requeue_one_in,
                keys,
                readds,
            };
            let loops: Vec<_> = (0..tasks)
                .map(|_| {
                    let (queue, seq, log) = (queue.clone(), seq.clone(), log.clone());
                    tokio::spawn(async move {
                        process_until_shut_down(&queue, &seq, &log, plan).await;
                    })
                })
                .collect();
            while stdin.recv().await.is_some() {}
            queue.shut_down();
            for task in loops {
                task.await.unwrap();
            }
            queue.shut_down_with_drain().await;
        }
        Mode::Hold => {
            let item = queue.get().await.unwrap();
            let (key, token) = started(&item, &seq, &log).await;
            loop {
                match stdin.recv().await.as_deref() {
                    Some("end") => break,
                    Some(_) => {}
                    // Told nothing: the guard's drop ends it in the background.
                    None => return,
                }
            }
            log.line(format!("V {key} {token} {}\n", item.is_valid()));
            end_logged(item, Then::Done, "-", &key, &token, &seq, &log).await;
            while stdin.recv().await.is_some() {}
        }
        Mode::FetchAhead => {
            let item = queue.get().await.unwrap();
            let (key, token) = started(&item, &seq, &log).await;
            end_logged(item, Then::Done, "-", &key, &token, &seq, &log).await;
            while stdin.recv().await.is_some() {}
        }
    }
    let (lost, reaped) = E::counters(&queue);
    log.line(format!("C {lost} {reaped}\n"));
}

#[derive(Clone, Copy)]
struct Plan {
    max_work_ms: u64,
    readd_one_in: u32,
    requeue_one_in: u32,
    keys: u32,
    readds: ReAdds,
}

fn one_in(n: u32) -> bool {
    n > 0 && fastrand::u32(..n) == 0
}

/// Logs `S` for a fresh hand-out; returns its key and token.
async fn started<S: Seq>(item: &Item<String>, seq: &S, log: &Log) -> (String, String) {
    let key = (**item).clone();
    let token = item.token().unwrap();
    let s = seq.next().await;
    log.line(format!("S {key} {token} {s}\n"));
    (key, token)
}

/// Logs `D` (its seq taken before the end is sent, so that `[S, D]` lies
/// inside the lease), ends `item` as `then` says, and logs `E`.
async fn end_logged<S: Seq>(
    item: Item<String>,
    then: Then,
    req: &str,
    key: &str,
    token: &str,
    seq: &S,
    log: &Log,
) {
    let e = seq.next().await;
    log.line(format!("D {key} {token} {e}\n"));
    let rc = rc_of(item.end_async(then).await);
    log.line(format!("E {key} {token} {e} {rc} {req}\n"));
}

fn rc_of(ended: Result<Ended, QueueError>) -> &'static str {
    match ended {
        Ok(ended) if ended.released => "ok",
        Ok(_) => "unreleased",
        Err(QueueError::LeaseLost) => "lost",
        Err(_) => "err",
    }
}

async fn process_until_shut_down<Q: AsyncQueue<String>, S: Seq>(
    queue: &Q,
    seq: &S,
    log: &Log,
    plan: Plan,
) {
    loop {
        let item = match queue.get().await {
            Ok(item) => item,
            Err(QueueError::ShutDown) => return,
            Err(e) => panic!("get failed: {e}"),
        };
        let (key, token) = started(&item, seq, log).await;
        let work = fastrand::u64(0..=plan.max_work_ms);
        if work > 0 {
            tokio::time::sleep(Duration::from_millis(work)).await;
        }
        if one_in(plan.readd_one_in) {
            let other = if fastrand::bool() {
                key.clone()
            } else {
                format!("k{}", fastrand::u32(..plan.keys.max(1)))
            };
            add_logged(queue, seq, log, other).await;
        }
        let (then, req) = if one_in(plan.requeue_one_in) {
            let then = match (plan.readds, fastrand::u8(..3)) {
                (ReAdds::Requeue, _) | (ReAdds::Any, 0) => Then::Requeue,
                (ReAdds::Any, 1) => Then::Retry,
                (ReAdds::Any, _) => Then::RetryAfter(Duration::from_millis(fastrand::u64(1..20))),
            };
            (then, seq.next().await.to_string())
        } else {
            (Then::Done, "-".to_string())
        };
        end_logged(item, then, &req, &key, &token, seq, log).await;
    }
}

/// Adds `key`, retrying connection errors; logs `A` with the seq taken
/// just before the attempt that succeeded.
async fn add_logged<Q: AsyncQueue<String>, S: Seq>(queue: &Q, seq: &S, log: &Log, key: String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = seq.next().await;
        match queue.add(key.clone()).await {
            Ok(_) => {
                log.line(format!("A {key} {a}\n"));
                return;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("add {key} kept failing: {}", e.error),
        }
    }
}
