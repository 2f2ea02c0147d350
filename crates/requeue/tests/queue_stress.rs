//! Many producers and consumers, threads and tasks mixed: nothing lost,
//! nothing handed to two workers at once, empty at the end.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::queue::{AddOpts, WorkQueue};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEYS: u32 = 20_000;
const PRODUCERS: u32 = 8;
const ROUNDS: u32 = 5;

/// Keys currently held by some worker; a second holder is a bug.
#[derive(Default)]
struct InHand(Mutex<HashSet<u32>>);

impl InHand {
    fn take(&self, key: u32) {
        assert!(
            self.0.lock().expect("lock").insert(key),
            "key {key} handed to two workers at once"
        );
    }
    fn give_back(&self, key: u32) {
        self.0.lock().expect("lock").remove(&key);
    }
}

#[test]
fn eight_by_eight_threads_and_tasks_lose_nothing_and_never_share_a_key() {
    let q: WorkQueue<u32> = WorkQueue::new();
    let in_hand = Arc::new(InHand::default());
    let delivered: Arc<Vec<AtomicUsize>> =
        Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let handle = |key: u32, in_hand: &InHand, delivered: &[AtomicUsize]| {
        in_hand.take(key);
        delivered[key as usize].fetch_add(1, Ordering::SeqCst);
        std::hint::spin_loop();
        in_hand.give_back(key);
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (q, in_hand, delivered) = (q.clone(), in_hand.clone(), delivered.clone());
            runtime.spawn(async move {
                while let Some(item) = q.get_async().await {
                    handle(*item, &in_hand, &delivered);
                    if *item % 7 == 0 {
                        let _ = item.retry_after(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (q, in_hand, delivered) = (q.clone(), in_hand.clone(), delivered.clone());
            s.spawn(move || {
                while let Some(item) = q.get() {
                    handle(*item, &in_hand, &delivered);
                }
            });
        }
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = q.clone();
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        for key in (p..KEYS).step_by(PRODUCERS as usize) {
                            let opts = AddOpts::new().priority((key % 3) as i32 - round as i32 % 2);
                            q.add_with(key, opts).expect("running");
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().expect("producer");
        }
        // Let the delayed retries land, then drain everything.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while q.snapshot().delayed > 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "delayed items never came due"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Retries racing with the shutdown are handed back, not lost silently.
        for key in q.shut_down_with_drain() {
            assert!(delivered[key as usize].load(Ordering::SeqCst) >= 1);
        }
    });
    runtime.block_on(async {
        for t in tasks {
            t.await.expect("task");
        }
    });
    assert!(
        delivered.iter().all(|d| d.load(Ordering::SeqCst) >= 1),
        "every key delivered at least once"
    );
    let snapshot = q.snapshot();
    assert_eq!(
        (snapshot.ready, snapshot.processing, snapshot.delayed),
        (0, 0, 0)
    );
    assert!(in_hand.0.lock().expect("lock").is_empty());
}

/// Many threads racing delayed adds against the promotion timer on the real
/// clock: no item may be left waiting without a timer armed for it.
#[test]
fn racing_delayed_adds_all_come_due_on_the_real_clock() {
    let q: WorkQueue<u32> = WorkQueue::new();
    const PER_THREAD: u32 = 5_000;
    let got = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let q = q.clone();
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(u64::from(t));
                for i in 0..PER_THREAD {
                    let delay = Duration::from_micros(rng.u64(0..3_000));
                    q.add_after(t * PER_THREAD + i, delay).expect("running");
                }
            });
        }
        for _ in 0..2 {
            let (q, got) = (q.clone(), got.clone());
            s.spawn(move || {
                while let Ok(item) = q.get_timeout(Duration::from_secs(10)) {
                    drop(item);
                    if got.fetch_add(1, Ordering::SeqCst) + 1 == (4 * PER_THREAD) as usize {
                        q.shut_down();
                    }
                }
            });
        }
    });
    assert_eq!(
        got.load(Ordering::SeqCst),
        (4 * PER_THREAD) as usize,
        "an item was stranded in the delay heap"
    );
}

/// The same race on a fake clock moved by another thread.
#[test]
fn racing_delayed_adds_and_clock_steps_strand_nothing() {
    let clock = requeue::clock::FakeClock::new();
    let q: WorkQueue<u32> = WorkQueue::builder().clock(clock.clone()).build();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        let stepper = {
            let (clock, stop) = (clock.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    clock.advance(Duration::from_micros(100));
                    std::thread::yield_now();
                }
            })
        };
        let producers: Vec<_> = (0..4u32)
            .map(|t| {
                let q = q.clone();
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(u64::from(t) + 99);
                    for i in 0..5_000 {
                        q.add_after(t * 5_000 + i, Duration::from_micros(rng.u64(0..2_000)))
                            .expect("running");
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().expect("producer");
        }
        stop.store(true, Ordering::SeqCst);
        stepper.join().expect("stepper");
    });
    clock.advance(Duration::from_secs(1));
    assert_eq!(q.snapshot().delayed, 0);
    assert_eq!(q.len(), 20_000);
}
