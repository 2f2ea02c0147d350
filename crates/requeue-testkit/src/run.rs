//! The parent's side of a run: adding hot keys, waiting for the workers,
//! and in-process workers that ride out a server crash.

use crate::log::Line;
use crate::parent::Worker;
use crate::worker::Seq;
use requeue::engine::{AsyncQueue, QueueError, Then};
use requeue::queue::Added;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A directory for a test's worker files, removed when dropped.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The parent's adders of a hot-key run: tasks that add random keys
/// `k0..k{keys}` until stopped, each add numbered (before it is sent) so
/// that the history can tell whether it was served.
pub struct Adders {
    stop: Arc<AtomicBool>,
    adds: Arc<Mutex<HashMap<String, u64>>>,
    tasks: Vec<JoinHandle<usize>>,
}

impl Adders {
    /// Starts `tasks` adders on `parent`; each pauses `pace` between adds
    /// (if any), so that the keys stay hot without flooding the server.
    pub fn spawn<Q: AsyncQueue<String>, S: Seq>(
        tasks: usize,
        parent: &Q,
        seq: &S,
        keys: u32,
        pace: Option<Duration>,
    ) -> Adders {
        let adds: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let (parent, seq, adds, stop) =
                    (parent.clone(), seq.clone(), adds.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("k{}", fastrand::u32(..keys));
                        let deadline = Instant::now() + Duration::from_secs(30);
                        loop {
                            // Taken before the add is sent: see the crate docs.
                            let a = seq.next().await;
                            match parent.add(key.clone()).await {
                                Ok(_) => {
                                    let mut adds = adds.lock().unwrap();
                                    let last = adds.entry(key).or_insert(0);
                                    *last = (*last).max(a);
                                    break;
                                }
                                Err(e) => {
                                    assert!(
                                        Instant::now() < deadline,
                                        "add kept failing: {}",
                                        e.error
                                    );
                                    tokio::time::sleep(ms(20)).await;
                                }
                            }
                        }
                        n += 1;
                        if let Some(pace) = pace {
                            tokio::time::sleep(pace).await;
                        }
                    }
                    n
                })
            })
            .collect();
        Adders { stop, adds, tasks }
    }

    /// Stops the adders; returns how many adds they made and, per key,
    /// the seq of its last add.
    pub async fn stop(self) -> (usize, HashMap<String, u64>) {
        self.stop.store(true, Ordering::SeqCst);
        let mut n = 0;
        for task in self.tasks {
            n += task.await.unwrap();
        }
        let adds = self.adds.lock().unwrap().clone();
        (n, adds)
    }
}

/// Waits (at most 20 s) until every worker but `skip` has started a
/// processing after `since`: a stuck worker fails here.
pub async fn wait_started_after(workers: &[Worker], since: u64, skip: Option<usize>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for (w, worker) in workers.iter().enumerate() {
        if skip == Some(w) {
            continue;
        }
        loop {
            let resumed = worker
                .lines()
                .iter()
                .any(|l| matches!(l, Line::Start { seq, .. } if *seq > since));
            if resumed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} processed nothing after seq {since}; output:\n{}",
                worker.name,
                worker.output()
            );
            tokio::time::sleep(ms(10)).await;
        }
    }
}

/// What the in-process workers of a crash test ([`drain`]) saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Keys being processed now.
    pub active: HashSet<String>,
    /// How often each key was processed.
    pub processed: HashMap<String, u32>,
    /// Keys handed out while already being processed.
    pub twice_at_once: Vec<String>,
    /// How the ends went (`ok`, `lost`, `err`, `unreleased`), counted.
    pub ends: HashMap<&'static str, usize>,
}

impl Seen {
    /// Panics if a key was handed out while it was being processed.
    pub fn assert_never_twice_at_once(&self) {
        assert!(
            self.twice_at_once.is_empty(),
            "processed twice at once: {:?}",
            self.twice_at_once
        );
    }

    /// The keys processed more than once, with how often.
    pub fn again(&self) -> Vec<(&String, &u32)> {
        self.processed.iter().filter(|(_, n)| **n > 1).collect()
    }
}

/// Adds `a0..a{count}` to `queue`, `tasks` adds at a time (a durable
/// server flushes every write: one at a time they are slow); each must be
/// newly queued.
pub async fn add_numbered<Q: AsyncQueue<String>>(queue: &Q, count: usize, tasks: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let adders: Vec<_> = (0..tasks)
        .map(|_| {
            let (queue, next) = (queue.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        return;
                    }
                    let added = queue.add(format!("a{i}")).await.unwrap();
                    assert_eq!(added, Added::Queued, "a{i}");
                }
            })
        })
        .collect();
    for adder in adders {
        adder.await.unwrap();
    }
}

/// An in-process worker of a crash test: processes (1 ms each) until the
/// queue shuts down, recording in `seen`. Its getters must ride out the
/// crash: a failed get panics.
pub async fn drain<Q: AsyncQueue<String>>(queue: Q, seen: Arc<Mutex<Seen>>) {
    loop {
        let item = match queue.get().await {
            Ok(item) => item,
            Err(QueueError::ShutDown) => return,
            Err(e) => panic!("get failed (getters must ride out the crash): {e}"),
        };
        let key = (*item).clone();
        {
            let mut seen = seen.lock().unwrap();
            if !seen.active.insert(key.clone()) {
                seen.twice_at_once.push(key.clone());
            }
            *seen.processed.entry(key.clone()).or_default() += 1;
        }
        tokio::time::sleep(ms(1)).await;
        // Out of the active set while the lease is still held: another
        // holder can only start after the done below.
        seen.lock().unwrap().active.remove(&key);
        let rc = match item.end_async(Then::Done).await {
            Ok(e) if e.released => "ok",
            Ok(_) => "unreleased",
            Err(QueueError::LeaseLost) => "lost",
            Err(_) => "err",
        };
        *seen.lock().unwrap().ends.entry(rc).or_default() += 1;
    }
}
