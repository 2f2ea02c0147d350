//! Soak test: 8 producer threads, 8 consumer threads and 8 async tasks
//! (which consume and produce) on the real clock for a configurable time,
//! with delays, priorities and rate-limited retries, checking continuously
//! that nothing is lost, nothing is processed twice at once, the counts add
//! up, and memory returns to its baseline.
//!
//! Ignored by default. Run it with
//!
//! ```text
//! REQUEUE_SOAK_SECS=60 cargo test --release -p requeue --test soak -- --ignored soak --nocapture
//! ```
//!
//! # What "nothing is lost" means here
//!
//! Every add is numbered per key *before* it is called (`started[k]`, so the
//! number is taken before the add can take effect). A worker that is handed
//! key `k` reads `started[k]` *after* the hand-out returned and keeps it as
//! `seen[k]`: every add numbered above `seen[k]` began after that hand-out,
//! so it took effect after it. Such an add, if accepted, must lead to a
//! later hand-out of `k` — whether it was queued, collapsed into a pending
//! instance that had not been handed out yet, parked until the current
//! processing ends, or delayed (client-go's contract, with deviation 3). So
//! whenever the queue is quiescent (nothing ready, delayed or in flight),
//! `last_accepted[k] <= seen[k]` must hold for every key; at the end, after
//! `shut_down_with_drain`, the same holds except for the delayed keys that
//! the shutdown reported (deviation 4). Adds numbered at or below `seen[k]`
//! may have taken effect on either side of the hand-out and are not judged
//! (the check never raises a false alarm; it can only miss a loss inside
//! that window of a few instructions).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use futures_util::StreamExt;
use requeue::limiter::ItemExponential;
use requeue::queue::{AddOpts, Added, Item, QueueSnapshot, ShutDown, WorkQueue};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const KEYS: u64 = 4096;
const PRODUCERS: usize = 8;
const CONSUMER_THREADS: usize = 8;
const TASKS: usize = 8;
/// Time between two quiescent checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for the queue to go quiet or drain; never reached when it works.
const BOUND: Duration = Duration::from_secs(30);
/// Keys parked with a long delay at each checkpoint (an exact count to compare).
const PARKED: u64 = 256;
/// How far the resident set may stay above the baseline once everything is
/// dropped. The allocator keeps freed memory in its per-thread arenas and
/// returns it to the system only now and then, and thread stacks are cached
/// for reuse, so the end is rarely exactly the baseline; 32 MiB covers that
/// slack several times over. A leak proportional to the work — the queue
/// forgetting to free one 16-byte slot per hand-out, say — would be tens of
/// millions of hand-outs × 16 bytes, hundreds of MiB, far beyond it.
const RSS_SLACK_KIB: u64 = 32 * 1024;

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn soak_secs() -> u64 {
    std::env::var("REQUEUE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Everything the test knows independently of the queue.
struct Book {
    /// Per key: number of the latest add begun (taken before calling add).
    started: Vec<AtomicU64>,
    /// Per key: the highest add number that was accepted.
    last_accepted: Vec<AtomicU64>,
    /// Per key: `started` as read right after the latest hand-out.
    seen: Vec<AtomicU64>,
    /// Keys held by some worker; a second holder is a bug.
    in_hand: Mutex<HashSet<u64>>,
    /// Producers: stop adding (checkpoint); consumers: stop retrying.
    pause: AtomicBool,
    /// Producers currently parked by `pause`.
    paused_producers: AtomicUsize,
    /// Tasks between their check of `pause` and the end of their add.
    adding: AtomicUsize,
    /// Producers: stop for good.
    stop: AtomicBool,
    processed: AtomicU64,
    retries: AtomicU64,
    adds: AtomicU64,
    refused: AtomicU64,
    get_timeouts: AtomicU64,
}

impl Book {
    fn new() -> Self {
        let zeros = || (0..KEYS).map(|_| AtomicU64::new(0)).collect();
        Book {
            started: zeros(),
            last_accepted: zeros(),
            seen: zeros(),
            in_hand: Mutex::new(HashSet::new()),
            pause: AtomicBool::new(false),
            paused_producers: AtomicUsize::new(0),
            adding: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            processed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            adds: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            get_timeouts: AtomicU64::new(0),
        }
    }

    /// Numbers an add of `key`, runs it, and books the outcome.
    fn add(
        &self,
        key: u64,
        add: impl FnOnce() -> Result<Added, ShutDown<u64>>,
    ) -> Result<Added, ShutDown<u64>> {
        let k = key as usize;
        let number = self.started[k].fetch_add(1, SeqCst) + 1;
        let result = add();
        self.adds.fetch_add(1, SeqCst);
        match result {
            Ok(_) => {
                self.last_accepted[k].fetch_max(number, SeqCst);
            }
            Err(_) => {
                self.refused.fetch_add(1, SeqCst);
            }
        }
        result
    }

    /// Runs `add` unless a checkpoint or the end is pending. A checkpoint
    /// sets `pause`, then waits for `adding` to be 0: an add that saw
    /// `pause` unset has announced itself by then.
    fn add_unless_paused(&self, add: impl FnOnce()) {
        self.adding.fetch_add(1, SeqCst);
        if !self.pause.load(SeqCst) && !self.stop.load(SeqCst) {
            add();
        }
        self.adding.fetch_sub(1, SeqCst);
    }

    /// A worker got `key`: nobody else may hold it.
    fn take(&self, key: u64) {
        self.seen[key as usize].store(self.started[key as usize].load(SeqCst), SeqCst);
        assert!(
            self.in_hand.lock().unwrap().insert(key),
            "key {key} handed to two workers at once"
        );
        self.processed.fetch_add(1, SeqCst);
    }

    /// Keys with an accepted add that began after their latest hand-out.
    fn unsatisfied(&self) -> Vec<u64> {
        (0..KEYS)
            .filter(|&k| {
                self.last_accepted[k as usize].load(SeqCst) > self.seen[k as usize].load(SeqCst)
            })
            .collect()
    }
}

/// One random add of a producer: plain, delayed 0–5 ms, with a priority in
/// -1..=1, or both.
fn random_add(q: &WorkQueue<u64>, book: &Book, rng: &mut fastrand::Rng) {
    let key = rng.u64(0..KEYS);
    let delay = Duration::from_micros(rng.u64(0..=5_000));
    let priority = rng.i32(-1..=1);
    let _ = book.add(key, || match rng.u8(0..10) {
        0..4 => q.add(key),
        4..7 => q.add_after(key, delay),
        7..9 => q.add_with(key, AddOpts::new().priority(priority)),
        _ => q.add_with(key, AddOpts::new().priority(priority).after(delay)),
    });
}

/// What a worker does with an item: a little work, then ~20% rate-limited
/// retries (none while a checkpoint is pending), success otherwise.
fn process(item: Item<u64>, book: &Book, rng: &mut fastrand::Rng) {
    let key = *item;
    book.take(key);
    for _ in 0..rng.u32(0..200) {
        std::hint::spin_loop();
    }
    // Released before the item is done: right after, another worker may get it.
    book.in_hand.lock().unwrap().remove(&key);
    if !book.pause.load(SeqCst) && rng.u8(0..5) == 0 {
        book.retries.fetch_add(1, SeqCst);
        let _ = book.add(key, || item.retry());
    } else {
        item.forget();
    }
}

fn producer(q: WorkQueue<u64>, book: Arc<Book>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ops = 0_u64;
    while !book.stop.load(SeqCst) {
        if book.pause.load(SeqCst) {
            book.paused_producers.fetch_add(1, SeqCst);
            while book.pause.load(SeqCst) {
                thread::sleep(Duration::from_micros(200));
            }
            book.paused_producers.fetch_sub(1, SeqCst);
            continue;
        }
        random_add(&q, &book, &mut rng);
        ops += 1;
        if ops.is_multiple_of(16) {
            thread::yield_now();
        }
    }
}

fn consumer_thread(q: WorkQueue<u64>, book: Arc<Book>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    if seed.is_multiple_of(2) {
        while let Some(item) = q.get() {
            process(item, &book, &mut rng);
        }
    } else {
        // Short timeouts: waits end without an item, over and over.
        loop {
            match q.get_timeout(Duration::from_micros(rng.u64(100..3_000))) {
                Ok(item) => process(item, &book, &mut rng),
                Err(requeue::queue::GetError::TimedOut) => {
                    book.get_timeouts.fetch_add(1, SeqCst);
                }
                Err(_) => return,
            }
        }
    }
}

/// An async worker; every third one drops pending `get` futures on a timeout.
async fn consumer_task(q: WorkQueue<u64>, book: Arc<Book>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let handle = |item: Item<u64>, rng: &mut fastrand::Rng| {
        process(item, &book, rng);
        // Tasks produce too: now and then one more random add.
        if rng.u8(0..4) == 0 {
            book.add_unless_paused(|| random_add(&q, &book, rng));
        }
    };
    match seed % 3 {
        0 => {
            while let Some(item) = q.get_async().await {
                handle(item, &mut rng);
            }
        }
        1 => {
            let mut items = q.stream();
            while let Some(item) = items.next().await {
                handle(item, &mut rng);
            }
        }
        _ => loop {
            let wait = Duration::from_micros(rng.u64(50..2_000));
            match tokio::time::timeout(wait, q.get_async()).await {
                Ok(Some(item)) => handle(item, &mut rng),
                Ok(None) => return,
                Err(_) => {
                    book.get_timeouts.fetch_add(1, SeqCst);
                }
            }
        },
    }
}

/// Waits (real time, at most [`BOUND`]) for `cond`, else fails with `what`.
fn wait_for(what: &str, q: &WorkQueue<u64>, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + BOUND;
    while !cond() {
        assert!(
            Instant::now() < give_up,
            "timed out waiting for {what}: {:?}",
            q.snapshot()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn idle(s: &QueueSnapshot) -> bool {
    s.ready == 0 && s.processing == 0 && s.added_while_processing == 0 && s.delayed == 0
}

/// Stops the producers and retries, waits for the queue to go quiet and
/// checks the exact counts; then parks [`PARKED`] keys with a long delay,
/// checks that count, and releases them with immediate adds.
fn checkpoint(q: &WorkQueue<u64>, book: &Book) {
    book.pause.store(true, SeqCst);
    wait_for("the producers to pause", q, || {
        book.paused_producers.load(SeqCst) == PRODUCERS && book.adding.load(SeqCst) == 0
    });
    // With producers parked and no retries, the work runs out; once nothing
    // is ready, delayed or in flight, no one can add anything.
    wait_for("the queue to go quiet", q, || {
        idle(&q.snapshot()) && book.in_hand.lock().unwrap().is_empty()
    });
    let s = q.snapshot();
    assert!(idle(&s), "{s:?}");
    assert_eq!(q.len(), 0);
    assert!(!s.shutting_down);
    let lost = book.unsatisfied();
    assert!(
        lost.is_empty(),
        "accepted adds never handed out: keys {lost:?}"
    );

    // An exact non-zero count: park keys far in the future...
    let parked: Vec<u64> = (0..PARKED).map(|i| (i * 7919) % KEYS).collect();
    for &key in &parked {
        let added = book.add(key, || q.add_after(key, Duration::from_secs(3600)));
        assert!(matches!(added, Ok(Added::Delayed { .. })), "{added:?}");
    }
    let s = q.snapshot();
    assert_eq!(
        (s.ready, s.processing, s.added_while_processing, s.delayed),
        (0, 0, 0, PARKED as usize)
    );
    assert_eq!(q.len(), 0);
    // ...then an immediate add withdraws each delay (deviation 3).
    for &key in &parked {
        assert_eq!(book.add(key, || q.add(key)), Ok(Added::Queued));
    }
    wait_for("the released keys to be processed", q, || {
        idle(&q.snapshot()) && book.in_hand.lock().unwrap().is_empty()
    });
    let lost = book.unsatisfied();
    assert!(
        lost.is_empty(),
        "accepted adds never handed out: keys {lost:?}"
    );
    book.pause.store(false, SeqCst);
}

#[derive(Debug)]
struct Figures {
    processed: u64,
    retries: u64,
    adds: u64,
    refused: u64,
    get_timeouts: u64,
    checkpoints: u32,
    withdrawn: usize,
    peak_rss_kib: u64,
}

/// Runs the whole workload for `secs` on a fresh queue, checks everything,
/// and drops every thread, task, runtime and queue before returning.
fn run(secs: u64, checkpoints: bool) -> Figures {
    let q: WorkQueue<u64> = WorkQueue::builder()
        .rate_limiter(ItemExponential::new(
            Duration::from_millis(1),
            Duration::from_millis(20),
        ))
        .build();
    let book = Arc::new(Book::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| runtime.spawn(consumer_task(q.clone(), book.clone(), 100 + i as u64)))
        .collect();
    let consumers: Vec<_> = (0..CONSUMER_THREADS)
        .map(|i| {
            let (q, book) = (q.clone(), book.clone());
            thread::spawn(move || consumer_thread(q, book, 200 + i as u64))
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let (q, book) = (q.clone(), book.clone());
            thread::spawn(move || producer(q, book, 300 + i as u64))
        })
        .collect();

    // A monitor: sanity bounds on every snapshot, and the peak RSS.
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (q, stop) = (q.clone(), monitor_stop.clone());
        thread::spawn(move || {
            let mut peak = rss_kib();
            while !stop.load(SeqCst) {
                let s = q.snapshot();
                assert!(s.processing <= CONSUMER_THREADS + TASKS, "{s:?}");
                assert!(s.added_while_processing <= s.processing, "{s:?}");
                // A key is ready or delayed, never both.
                assert!(
                    s.ready + s.delayed <= KEYS as usize,
                    "more pending items than keys: {s:?}"
                );
                peak = peak.max(rss_kib());
                thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };

    let end = Instant::now() + Duration::from_secs(secs);
    let mut next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
    let mut done_checkpoints = 0;
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(20));
        if checkpoints && Instant::now() >= next_checkpoint && Instant::now() < end {
            checkpoint(&q, &book);
            done_checkpoints += 1;
            next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
        }
        assert!(
            producers.iter().chain(&consumers).all(|t| !t.is_finished()),
            "a worker thread died"
        );
    }

    // Stop producing, then drain: workers keep pulling until nothing is
    // queued or in flight; delayed keys are withdrawn and reported.
    book.stop.store(true, SeqCst);
    for p in producers {
        p.join().unwrap();
    }
    let withdrawn = q.shut_down_with_drain();
    let s = q.snapshot();
    assert!(idle(&s), "drained means drained: {s:?}");
    assert!(s.shutting_down);
    assert_eq!(q.len(), 0);
    assert_eq!(q.add(0), Err(ShutDown(0)));
    for c in consumers {
        c.join().unwrap();
    }
    runtime.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(runtime);
    let s = q.snapshot();
    assert_eq!(
        s,
        QueueSnapshot {
            ready: 0,
            processing: 0,
            added_while_processing: 0,
            delayed: 0,
            waiting_gets: 0,
            shutting_down: true,
        }
    );
    assert!(book.in_hand.lock().unwrap().is_empty());

    let withdrawn_keys: HashSet<u64> = withdrawn.iter().copied().collect();
    assert_eq!(
        withdrawn_keys.len(),
        withdrawn.len(),
        "a key withdrawn twice"
    );
    let lost: Vec<u64> = book
        .unsatisfied()
        .into_iter()
        .filter(|k| !withdrawn_keys.contains(k))
        .collect();
    assert!(
        lost.is_empty(),
        "accepted adds never handed out: keys {lost:?}"
    );

    monitor_stop.store(true, SeqCst);
    let peak_rss_kib = monitor.join().unwrap();
    drop(q);
    Figures {
        processed: book.processed.load(SeqCst),
        retries: book.retries.load(SeqCst),
        adds: book.adds.load(SeqCst),
        refused: book.refused.load(SeqCst),
        get_timeouts: book.get_timeouts.load(SeqCst),
        checkpoints: done_checkpoints,
        withdrawn: withdrawn.len(),
        peak_rss_kib,
    }
}

#[test]
#[ignore = "soak test: run with --release -- --ignored soak (REQUEUE_SOAK_SECS, default 60)"]
fn soak_threads_and_tasks_lose_nothing_share_nothing_and_give_memory_back() {
    let secs = soak_secs();
    // Warm-up: the same workload briefly, so the allocator's arenas, the
    // thread-stack cache and the runtime's one-time allocations exist
    // before the baseline is taken.
    run(2, true);
    let baseline = rss_kib();
    let started = Instant::now();
    let f = run(secs, true);
    let elapsed = started.elapsed();
    let end = rss_kib();
    println!(
        "soak: {:.1} s, {} items processed ({:.0}/s), {} retries, {} adds ({} refused at shutdown), \
         {} withdrawn at shutdown, {} get timeouts, {} quiescent checkpoints, \
         RSS baseline {:.1} MiB, peak {:.1} MiB, final {:.1} MiB",
        elapsed.as_secs_f64(),
        f.processed,
        f.processed as f64 / elapsed.as_secs_f64(),
        f.retries,
        f.adds,
        f.refused,
        f.withdrawn,
        f.get_timeouts,
        f.checkpoints,
        baseline as f64 / 1024.0,
        f.peak_rss_kib as f64 / 1024.0,
        end as f64 / 1024.0,
    );
    assert!(f.processed > 0 && f.retries > 0);
    assert!(
        end <= baseline + RSS_SLACK_KIB,
        "memory not given back: baseline {baseline} KiB, end {end} KiB"
    );
}
