//! loom models of the queue's core: every interleaving (up to the
//! preemption bound) of the operations below is executed, and loom reports
//! a deadlock — a lost wake-up — as a failure.
//!
//! Run with `scripts/loom.sh` (release mode, `--cfg requeue_loom`).

use crate::clock::FakeClock;
use crate::queue::{Added, TryGetError, WorkQueue};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The models' default preemption bound; override with `LOOM_MAX_PREEMPTIONS`.
/// Most concurrency bugs need only two or three preemptions to show
/// (loom's authors' advice); the sharded core has enough synchronisation
/// points that deeper bounds take hours.
const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `f` under every interleaving loom explores (up to `LOOM_MAX_PREEMPTIONS`
/// or `bound`) and reports how many executions that took.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    model_bounded(name, DEFAULT_PREEMPTIONS, f);
}

fn model_bounded(name: &str, bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom model {name}: {} interleavings (preemption bound {:?})",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound
    );
}

fn queue(clock: &FakeClock) -> WorkQueue<u8> {
    WorkQueue::builder()
        .clock(clock.clone())
        .fairness(None)
        .build()
}

/// Takes every ready item; returns how many there were.
fn drain(q: &WorkQueue<u8>) -> usize {
    std::iter::from_fn(|| q.try_get().ok()).count()
}

/// Marks a key held; a second holder at the same time is the bug loom looks for.
struct InHand(AtomicBool);

impl InHand {
    fn take(&self) {
        assert!(
            !self.0.swap(true, Ordering::SeqCst),
            "handed to two workers at once"
        );
    }
    fn release(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[test]
fn loom_readd_while_processing_is_delivered_once_after_done_never_twice_at_once() {
    model(
        "loom_readd_while_processing_is_delivered_once_after_done_never_twice_at_once",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            let in_hand = Arc::new(InHand(AtomicBool::new(false)));
            q.add(1).unwrap_or_else(|_| unreachable!());
            let held = q.try_get().unwrap_or_else(|_| unreachable!("queued"));
            in_hand.take();
            let other = {
                let (q, in_hand) = (q.clone(), in_hand.clone());
                thread::spawn(move || {
                    let added = q.add(1);
                    assert!(matches!(added, Ok(Added::AfterDone) | Ok(Added::Queued)));
                    match q.try_get() {
                        Ok(item) => {
                            in_hand.take();
                            in_hand.release();
                            drop(item);
                            1
                        }
                        Err(_) => 0,
                    }
                })
            };
            in_hand.release();
            drop(held);
            let by_other = other.join().unwrap_or_else(|_| unreachable!());
            assert_eq!(
                by_other + drain(&q),
                1,
                "the re-add is delivered exactly once"
            );
        },
    );
}

#[test]
fn loom_a_blocked_get_returns_when_shutdown_races_an_add() {
    model(
        "loom_a_blocked_get_returns_when_shutdown_races_an_add",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            let getter = {
                let q = q.clone();
                thread::spawn(move || q.get().map(|item| *item))
            };
            let adder = {
                let q = q.clone();
                thread::spawn(move || q.add(7).is_ok())
            };
            q.shut_down();
            let got = getter.join().unwrap_or_else(|_| unreachable!());
            let accepted = adder.join().unwrap_or_else(|_| unreachable!());
            let left = drain(&q);
            if accepted {
                assert_eq!(
                    usize::from(got == Some(7)) + left,
                    1,
                    "an accepted item is not lost"
                );
            } else {
                assert_eq!((got, left), (None, 0));
            }
        },
    );
}

#[test]
fn loom_drain_returns_once_the_racing_done_lands() {
    model("loom_drain_returns_once_the_racing_done_lands", || {
        let clock = FakeClock::new();
        let q = queue(&clock);
        q.add(1).unwrap_or_else(|_| unreachable!());
        let held = q.try_get().unwrap_or_else(|_| unreachable!("queued"));
        let drainer = {
            let q = q.clone();
            thread::spawn(move || q.shut_down_with_drain())
        };
        drop(held);
        let withdrawn = drainer.join().unwrap_or_else(|_| unreachable!());
        assert!(withdrawn.is_empty());
        assert_eq!(q.snapshot().processing, 0);
    });
}

#[test]
fn loom_an_item_coming_due_during_shutdown_is_either_queued_or_handed_back() {
    model(
        "loom_an_item_coming_due_during_shutdown_is_either_queued_or_handed_back",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            q.add_after(1, Duration::from_millis(10))
                .unwrap_or_else(|_| unreachable!());
            let stepper = {
                let clock = clock.clone();
                thread::spawn(move || clock.advance(Duration::from_millis(10)))
            };
            let withdrawn = q.shut_down();
            stepper.join().unwrap_or_else(|_| unreachable!());
            let queued = drain(&q);
            assert_eq!(
                withdrawn.len() + queued,
                1,
                "exactly one of: promoted, handed back"
            );
            assert!(matches!(q.try_get(), Err(TryGetError::ShutDown)));
            assert!(!clock.has_waiters(), "no timer left behind");
        },
    );
}

struct Flag(AtomicBool);
impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn loom_a_dropped_async_waiter_passes_its_wake_up_to_a_blocked_thread() {
    model(
        "loom_a_dropped_async_waiter_passes_its_wake_up_to_a_blocked_thread",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            let blocking = {
                let q = q.clone();
                thread::spawn(move || q.get().map(|item| *item))
            };
            let async_side = {
                let q = q.clone();
                thread::spawn(move || {
                    let waker = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
                    let mut get = Box::pin(q.get_async());
                    // One poll, then the task is cancelled.
                    match get.as_mut().poll(&mut Context::from_waker(&waker)) {
                        Poll::Ready(item) => item.map(|i| *i),
                        Poll::Pending => None,
                    }
                })
            };
            q.add(1).unwrap_or_else(|_| unreachable!());
            let by_async = async_side.join().unwrap_or_else(|_| unreachable!());
            // The blocked thread must get the item unless the async side took it;
            // shutting down only releases it afterwards.
            if by_async.is_some() {
                q.shut_down();
            }
            let by_thread = blocking.join().unwrap_or_else(|_| unreachable!());
            assert_eq!(
                usize::from(by_async.is_some()) + usize::from(by_thread.is_some()),
                1
            );
        },
    );
}

#[test]
fn loom_two_blocking_workers_one_key_deliveries_match_the_adds() {
    // Three threads blocking on the same queue: bounded, or the search explodes.
    model_bounded(
        "loom_two_blocking_workers_one_key_deliveries_match_the_adds",
        3,
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            let in_hand = Arc::new(InHand(AtomicBool::new(false)));
            let delivered = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            q.add(1).unwrap_or_else(|_| unreachable!());
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, in_hand, delivered) = (q.clone(), in_hand.clone(), delivered.clone());
                    thread::spawn(move || {
                        while let Some(item) = q.get() {
                            in_hand.take();
                            delivered.fetch_add(1, Ordering::SeqCst);
                            in_hand.release();
                            drop(item);
                        }
                    })
                })
                .collect();
            let second = q.add(1).unwrap_or_else(|_| unreachable!());
            q.shut_down_with_drain();
            for w in workers {
                w.join().unwrap_or_else(|_| unreachable!());
            }
            let expected = if second == Added::Merged { 1 } else { 2 };
            assert_eq!(delivered.load(Ordering::SeqCst), expected);
        },
    );
}

#[test]
fn loom_a_getter_and_the_timer_promoting_at_once_lose_no_due_item() {
    // The timer (fired inside `advance`) and a getter (which promotes due
    // items itself) race for the promotion; the loser leaves a request.
    model(
        "loom_a_getter_and_the_timer_promoting_at_once_lose_no_due_item",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            q.add_after(1, Duration::from_millis(10))
                .unwrap_or_else(|_| unreachable!());
            let getter = {
                let q = q.clone();
                thread::spawn(move || q.get().map(|item| *item))
            };
            clock.advance(Duration::from_millis(10));
            let got = getter.join().unwrap_or_else(|_| unreachable!());
            assert_eq!(got, Some(1), "the due item reaches the waiting getter");
            assert_eq!(q.snapshot().delayed, 0);
        },
    );
}

#[test]
fn loom_switching_to_priorities_loses_and_duplicates_nothing() {
    // A getter working the lock-free FIFO while another thread's priority
    // add moves the queue to the ordered line.
    model(
        "loom_switching_to_priorities_loses_and_duplicates_nothing",
        || {
            let clock = FakeClock::new();
            let q = queue(&clock);
            q.add(1).unwrap_or_else(|_| unreachable!());
            let getter = {
                let q = q.clone();
                thread::spawn(move || q.try_get().ok().map(|item| item.detach()))
            };
            q.add_with(2, crate::queue::AddOpts::new().priority(5))
                .unwrap_or_else(|_| unreachable!());
            let mut got: Vec<u8> = getter
                .join()
                .unwrap_or_else(|_| unreachable!())
                .into_iter()
                .collect();
            got.extend(std::iter::from_fn(|| {
                q.try_get().ok().map(|item| item.detach())
            }));
            got.sort_unstable();
            assert_eq!(got, [1, 2], "each item handed out exactly once");
            assert_eq!(q.len(), 0);
        },
    );
}

/// Two keys whose hashes fall in different shards (the hasher is fixed under loom).
fn keys_in_two_shards() -> (u8, u8) {
    use crate::queue::shard::shard_of;
    use std::hash::BuildHasher;
    let hasher = foldhash::fast::FixedState::with_seed(0x5EED);
    let first = shard_of(hasher.hash_one(0u8));
    let other = (1..=u8::MAX)
        .find(|k| shard_of(hasher.hash_one(k)) != first)
        .unwrap_or_else(|| unreachable!("two shards, 255 keys"));
    (0, other)
}

#[test]
fn loom_dones_in_two_shards_at_once_end_a_drain() {
    // Each done empties its shard, then looks at the others: one of the two
    // sees both empty (the fences), so the drain never waits forever.
    model_bounded("loom_dones_in_two_shards_at_once_end_a_drain", 3, || {
        let clock = FakeClock::new();
        let q = queue(&clock);
        let (a, b) = keys_in_two_shards();
        q.add(a).unwrap_or_else(|_| unreachable!());
        q.add(b).unwrap_or_else(|_| unreachable!());
        let first = q.try_get().unwrap_or_else(|_| unreachable!("queued"));
        let second = q.try_get().unwrap_or_else(|_| unreachable!("queued"));
        let drainer = {
            let q = q.clone();
            thread::spawn(move || q.shut_down_with_drain())
        };
        let other = thread::spawn(move || drop(second));
        drop(first);
        other.join().unwrap_or_else(|_| unreachable!());
        let withdrawn = drainer.join().unwrap_or_else(|_| unreachable!());
        assert!(withdrawn.is_empty());
        assert_eq!(q.snapshot().processing, 0);
    });
}
