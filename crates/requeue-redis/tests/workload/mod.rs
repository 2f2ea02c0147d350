//! An in-process workload for the deployment tests (`cluster.rs`,
//! `sentinel.rs`): several `RedisQueue`s on one queue, each standing for
//! a process with its own connections and lease table, run worker loops
//! while the test adds items and changes the deployment under them; then
//! the history is checked.
//!
//! Events are numbered by one atomic counter of this process, so their
//! numbers are a total order consistent with real time. A worker numbers
//! its start after its `get` returned and its end before it calls
//! `end_async`, so `[start, end]` lies inside its lease: two such spans of
//! a key overlap only if two holders really held it at once. An add is
//! numbered before it is sent (`sent`) and after it is acknowledged
//! (`acked`).
#![allow(dead_code)] // each test binary uses a part

use requeue::engine::{QueueError, Then};
use requeue::wait::Stop;
use requeue_redis::RedisQueue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One processing of a key.
#[derive(Debug, Clone)]
pub struct Interval {
    pub key: String,
    pub worker: usize,
    pub start: u64,
    /// When it started (for timelines in messages).
    pub at: Instant,
    /// `None` while it runs.
    pub end: Option<u64>,
    /// `item.is_valid()` just before ending: false when a renewal found
    /// the lease lost.
    pub valid: Option<bool>,
    /// How the end went: `ok`, `lost` (LeaseLost) or the error.
    pub outcome: Option<String>,
}

impl Interval {
    /// The holder learnt that its lease was lost (a renewal or its end
    /// said so).
    pub fn lost(&self) -> bool {
        self.valid == Some(false) || self.outcome.as_deref() == Some("lost")
    }
}

/// One add of a key.
#[derive(Debug, Clone)]
pub struct Add {
    pub key: String,
    pub sent: u64,
    /// When the add was acknowledged (`None`: it failed).
    pub acked: Option<u64>,
}

/// Everything the workers and the adder did.
#[derive(Default)]
pub struct History {
    next: AtomicU64,
    intervals: Mutex<Vec<Interval>>,
    adds: Mutex<Vec<Add>>,
    /// Errors the workers' ends and the adder saw (text → count).
    errors: Mutex<HashMap<String, usize>>,
}

impl History {
    /// The next event number.
    pub fn seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn error(&self, text: String) {
        *self.errors.lock().unwrap().entry(text).or_default() += 1;
    }

    pub fn intervals(&self) -> Vec<Interval> {
        self.intervals.lock().unwrap().clone()
    }

    pub fn adds(&self) -> Vec<Add> {
        self.adds.lock().unwrap().clone()
    }

    pub fn errors(&self) -> HashMap<String, usize> {
        self.errors.lock().unwrap().clone()
    }

    /// Adds `key`, retrying until an add is acknowledged (each attempt
    /// recorded); gives up after `deadline`.
    pub async fn add(&self, queue: &RedisQueue<String>, key: String, deadline: Instant) {
        self.add_by("add", key, deadline, |key| queue.add(key))
            .await
    }

    /// As [`add`](Self::add), after `delay` (client-go's `AddAfter`).
    pub async fn add_after(
        &self,
        queue: &RedisQueue<String>,
        key: String,
        delay: Duration,
        deadline: Instant,
    ) {
        self.add_by("add_after", key, deadline, |key| {
            queue.add_after(key, delay)
        })
        .await
    }

    /// Sends `key` with `send` until an attempt is acknowledged, recording
    /// each attempt; gives up after `deadline`.
    async fn add_by<F, Fut>(&self, what: &str, key: String, deadline: Instant, send: F)
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<
                Output = Result<requeue::queue::Added, requeue::engine::AddError<String>>,
            >,
    {
        loop {
            let sent = self.seq();
            let index = {
                let mut adds = self.adds.lock().unwrap();
                adds.push(Add {
                    key: key.clone(),
                    sent,
                    acked: None,
                });
                adds.len() - 1
            };
            match send(key.clone()).await {
                Ok(_) => {
                    let acked = self.seq();
                    self.adds.lock().unwrap()[index].acked = Some(acked);
                    return;
                }
                Err(error) => {
                    self.error(format!("{what}: {}", error.error));
                    assert!(Instant::now() < deadline, "{key}: no add went through");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Pairs of processings of one key that overlapped: those where neither
    /// holder learnt its lease was lost and `excused` excuses neither, and
    /// the excused ones.
    pub fn overlaps(&self, excused: impl Fn(&Interval) -> bool) -> (Vec<String>, Vec<String>) {
        let mut by_key: HashMap<String, Vec<Interval>> = HashMap::new();
        for interval in self.intervals() {
            by_key
                .entry(interval.key.clone())
                .or_default()
                .push(interval);
        }
        let (mut bad, mut ok) = (Vec::new(), Vec::new());
        for intervals in by_key.values_mut() {
            intervals.sort_by_key(|i| i.start);
            for (j, later) in intervals.iter().enumerate() {
                for earlier in &intervals[..j] {
                    if earlier.end.is_none_or(|end| end > later.start) {
                        let text = format!("{earlier:?} overlaps {later:?}");
                        if earlier.lost() || later.lost() || excused(earlier) || excused(later) {
                            ok.push(text);
                        } else {
                            bad.push(text);
                        }
                    }
                }
            }
        }
        (bad, ok)
    }

    /// Acknowledged adds that no processing started after, except those
    /// `excused` excuses.
    pub fn unserved(&self, excused: impl Fn(&Add) -> bool) -> Vec<String> {
        let mut last_start: HashMap<String, u64> = HashMap::new();
        for interval in self.intervals() {
            let start = last_start.entry(interval.key).or_insert(0);
            *start = (*start).max(interval.start);
        }
        let mut unserved: Vec<String> = self
            .adds()
            .into_iter()
            .filter(|add| add.acked.is_some() && !excused(add))
            .filter(|add| last_start.get(&add.key).is_none_or(|&s| s < add.sent))
            .map(|add| format!("{add:?}"))
            .collect();
        unserved.sort();
        unserved
    }

    /// How many processings started in each `bucket` after `from`.
    pub fn timeline(&self, from: Instant, bucket: Duration) -> Vec<usize> {
        let mut counts = Vec::new();
        for interval in self.intervals() {
            if let Some(after) = interval.at.checked_duration_since(from) {
                let i = (after.as_millis() / bucket.as_millis().max(1)) as usize;
                if counts.len() <= i {
                    counts.resize(i + 1, 0);
                }
                counts[i] += 1;
            }
        }
        counts
    }

    /// Processings that never ended.
    pub fn unended(&self) -> Vec<String> {
        self.intervals()
            .into_iter()
            .filter(|i| i.end.is_none() || i.outcome.is_none())
            .map(|i| format!("{i:?}"))
            .collect()
    }
}

/// Worker loops on some queues; stopped by [`Workers::stop`].
pub struct Workers {
    stop: Stop,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// `tasks` loops per queue: get, work up to `max_work`, one in
    /// `readd_one_in` re-adds its own key while holding it (so it parks
    /// and is processed again), end with `Then::Done`.
    pub fn start(
        history: &Arc<History>,
        queues: &[RedisQueue<String>],
        tasks: usize,
        max_work: Duration,
        readd_one_in: u32,
    ) -> Workers {
        let stop = Stop::new();
        let mut handles = Vec::new();
        for (n, queue) in queues.iter().enumerate() {
            for t in 0..tasks {
                let (queue, history, stop) = (queue.clone(), history.clone(), stop.clone());
                let worker = n * tasks + t;
                handles.push(tokio::spawn(async move {
                    work(worker, queue, history, stop, max_work, readd_one_in).await;
                }));
            }
        }
        Workers {
            stop,
            tasks: handles,
        }
    }

    /// Stops the loops (a processing under way is finished first).
    pub async fn stop(self) {
        self.stop.stop();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

async fn work(
    worker: usize,
    queue: RedisQueue<String>,
    history: Arc<History>,
    stop: Stop,
    max_work: Duration,
    readd_one_in: u32,
) {
    loop {
        let item = match queue.get_until(&stop).await {
            Ok(item) => item,
            Err(QueueError::Stopped | QueueError::ShutDown) => return,
            Err(error) => {
                history.error(format!("get: {error}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let key = (*item).clone();
        let index = {
            let start = history.seq();
            let mut intervals = history.intervals.lock().unwrap();
            intervals.push(Interval {
                key: key.clone(),
                worker,
                start,
                at: Instant::now(),
                end: None,
                valid: None,
                outcome: None,
            });
            intervals.len() - 1
        };
        let work = fastrand::u64(..=max_work.as_micros() as u64);
        tokio::time::sleep(Duration::from_micros(work)).await;
        if readd_one_in > 0 && fastrand::u32(..readd_one_in) == 0 {
            history
                .add(
                    &queue,
                    key.clone(),
                    Instant::now() + Duration::from_secs(30),
                )
                .await;
        }
        let valid = item.is_valid();
        let end = history.seq();
        {
            let mut intervals = history.intervals.lock().unwrap();
            intervals[index].end = Some(end);
            intervals[index].valid = Some(valid);
        }
        let outcome = match item.end_async(Then::Done).await {
            Ok(_) => "ok".to_string(),
            Err(QueueError::LeaseLost) => "lost".to_string(),
            Err(error) => {
                history.error(format!("end: {error}"));
                format!("error: {error}")
            }
        };
        history.intervals.lock().unwrap()[index].outcome = Some(outcome);
    }
}

/// Waits (at most 30 s) until the queue holds nothing: nothing queued,
/// parked, leased or delayed. A failed reading is tried again until the
/// deadline (a failover may still cut the connection, which a
/// reconnecting connection then replaces).
pub async fn wait_drained<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    keys: &requeue_redis::keys::QueueKeys,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = match requeue_redis::inspect::inspect(conn, keys, 10).await {
            Ok(s) => s,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot read the queue to see it drain: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if s.depth == 0 && s.dirty == 0 && s.processing_count == 0 && s.delayed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never drained: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
