//! The behaviours every [`AsyncQueue`] engine must show, as test bodies
//! an engine's own tests call (feature `conformance`). They follow
//! client-go's workqueue tests (docs/behaviour.md §8.2) and requeue's deviations, so
//! the in-memory and Redis engines are held to one text.
//!
//! Each check takes a fresh, empty queue on a [`FakeClock`] that drives the
//! queue's delays (for Redis: built with `fake_time(clock)`), with the
//! default controller rate limiter unless the check says otherwise, and
//! panics with a message on a violation. Waits are bounded by
//! [`BOUND`] of real time; run them on a tokio runtime with time enabled.
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! use requeue::clock::FakeClock;
//! use requeue::engine::conformance;
//! use requeue::queue::WorkQueue;
//!
//! let clock = FakeClock::new();
//! let queue: WorkQueue<String> = WorkQueue::builder().clock(clock.clone()).build();
//! conformance::reinsert(queue, clock).await;
//! # });
//! ```

pub mod model;

use super::{AsyncQueue, QueueError, Then};
use crate::clock::FakeClock;
use crate::limiter::{Exponential, LimiterSpec};
use crate::queue::{Added, Item};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The longest any single wait in a check may take (real time).
pub const BOUND: Duration = Duration::from_secs(10);

/// A queue name no other test of this process, and no earlier run, uses:
/// `{prefix}-{pid}-{n}-{random}`. An engine that keeps its queues in a
/// server sees every test binary and every earlier run on that server, so
/// a fresh name is what makes a queue fresh.
///
/// ```
/// let (a, b) = (
///     requeue::engine::conformance::unique_name("conf"),
///     requeue::engine::conformance::unique_name("conf"),
/// );
/// assert!(a.starts_with("conf-") && b.starts_with("conf-"));
/// assert_ne!(a, b);
/// ```
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        fastrand::u32(..)
    )
}

/// The limiter [`rate_limited_backoff`] needs, as the [`LimiterSpec`] a
/// remote engine's builder takes: client-go's
/// `ItemExponentialFailureRateLimiter(1 ms, 1 s)` alone.
pub fn backoff_limiter() -> LimiterSpec {
    LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 1,
            max_ms: 1_000,
        }),
        ..LimiterSpec::default()
    }
}

/// Awaits `fut`, panicking with `what` if it takes longer than [`BOUND`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: not done within {BOUND:?}"),
    }
}

/// Gets the next item, which must come within [`BOUND`].
pub async fn next<Q: AsyncQueue<String>>(queue: &Q) -> Item<String> {
    match within("get", queue.get()).await {
        Ok(item) => item,
        Err(error) => panic!("get failed: {error}"),
    }
}

/// Ends `item` as `then` says and checks that it was still held.
pub async fn end(item: Item<String>, then: Then) {
    let key = (*item).clone();
    match within("end", item.end_async(then)).await {
        Ok(ended) => assert!(ended.released, "{key}: the hand-out was already over"),
        Err(error) => panic!("{key}: ending failed: {error}"),
    }
}

async fn add<Q: AsyncQueue<String>>(queue: &Q, key: &str) -> Added {
    match within("add", queue.add(key.to_string())).await {
        Ok(added) => added,
        Err(error) => panic!("add {key}: {error}"),
    }
}

async fn add_after<Q: AsyncQueue<String>>(queue: &Q, key: &str, delay: Duration) -> Added {
    match within("add_after", queue.add_after(key.to_string(), delay)).await {
        Ok(added) => added,
        Err(error) => panic!("add_after {key}: {error}"),
    }
}

async fn len<Q: AsyncQueue<String>>(queue: &Q) -> usize {
    match within("len", queue.len()).await {
        Ok(n) => n,
        Err(error) => panic!("len: {error}"),
    }
}

/// TestLen: two distinct adds make 2; a duplicate keeps 2.
pub async fn len_counts_distinct_items<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    assert_eq!(add(&queue, "a").await, Added::Queued);
    assert_eq!(add(&queue, "b").await, Added::Queued);
    assert_eq!(len(&queue).await, 2);
    assert_eq!(add(&queue, "a").await, Added::Merged);
    assert_eq!(len(&queue).await, 2);
}

/// TestCollapse: two adds of a new item deliver it once.
pub async fn collapse<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    add(&queue, "x").await;
    add(&queue, "x").await;
    let item = next(&queue).await;
    assert_eq!(*item, "x");
    assert_eq!(len(&queue).await, 0, "a duplicate add must not queue twice");
    end(item, Then::Done).await;
    assert_eq!(len(&queue).await, 0);
}

/// TestReinsert: an add while processing parks the item; done queues it again.
pub async fn reinsert<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    add(&queue, "x").await;
    let item = next(&queue).await;
    assert_eq!(add(&queue, "x").await, Added::AfterDone);
    assert_eq!(len(&queue).await, 0, "a parked item is not ready");
    end(item, Then::Done).await;
    assert_eq!(len(&queue).await, 1, "done re-queues the parked item");
    let again = next(&queue).await;
    assert_eq!(*again, "x");
    end(again, Then::Done).await;
    assert_eq!(len(&queue).await, 0);
}

/// TestCollapseWhileProcessing: two adds during processing come back once.
pub async fn collapse_while_processing<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    add(&queue, "x").await;
    let item = next(&queue).await;
    assert_eq!(add(&queue, "x").await, Added::AfterDone);
    assert_eq!(add(&queue, "x").await, Added::Merged);
    assert_eq!(len(&queue).await, 0, "never handed out twice at once");
    end(item, Then::Done).await;
    let again = next(&queue).await;
    assert_eq!(*again, "x");
    assert_eq!(len(&queue).await, 0, "delivered exactly once more");
    end(again, Then::Done).await;
}

/// client-go's `Done` on a detached guard: the queue's `done` ends the
/// processing (a re-add made meanwhile comes back after it), and a second
/// `done` finds nothing to end.
pub async fn done_ends_a_detached_item<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    add(&queue, "x").await;
    let key = next(&queue).await.detach();
    assert_eq!(add(&queue, "x").await, Added::AfterDone, "still processing");
    assert_eq!(len(&queue).await, 0);
    match within("done", queue.done(&key)).await {
        Ok(ended) => assert!(ended, "the detached hand-out was ended"),
        Err(error) => panic!("done failed: {error}"),
    }
    match within("done again", queue.done(&key)).await {
        Ok(ended) => assert!(!ended, "a second done ends nothing"),
        Err(error) => panic!("done failed: {error}"),
    }
    let again = next(&queue).await;
    assert_eq!(*again, "x", "the re-add came back after the done");
    end(again, Then::Done).await;
}

/// FIFO: items come out in the order they were first added.
pub async fn fifo<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    for key in ["a", "b", "c", "b", "a"] {
        add(&queue, key).await;
    }
    for want in ["a", "b", "c"] {
        let item = next(&queue).await;
        assert_eq!(*item, want);
        end(item, Then::Done).await;
    }
}

/// TestSimpleQueue: a delayed item is not visible before its due time and
/// is once the clock passes it.
pub async fn delayed_item_waits_for_its_time<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    let added = add_after(&queue, "later", Duration::from_millis(50)).await;
    assert!(matches!(added, Added::Delayed { .. }), "{added:?}");
    assert_eq!(len(&queue).await, 0);
    clock.advance(Duration::from_millis(60));
    let item = next(&queue).await;
    assert_eq!(*item, "later");
    end(item, Then::Done).await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(len(&queue).await, 0, "nothing fires twice");
}

/// TestDeduping: of two delays for one item, the earliest wins, once.
pub async fn earliest_delay_wins<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    add_after(&queue, "x", Duration::from_millis(50)).await;
    add_after(&queue, "x", Duration::from_millis(70)).await;
    clock.advance(Duration::from_millis(60));
    let item = next(&queue).await;
    end(item, Then::Done).await;
    clock.advance(Duration::from_millis(20));
    assert_eq!(len(&queue).await, 0, "the later delay must not fire");

    add_after(&queue, "y", Duration::from_millis(50)).await;
    add_after(&queue, "y", Duration::from_millis(30)).await;
    clock.advance(Duration::from_millis(35));
    let item = next(&queue).await;
    assert_eq!(*item, "y");
    end(item, Then::Done).await;
    clock.advance(Duration::from_millis(30));
    assert_eq!(
        len(&queue).await,
        0,
        "the earlier delay replaced the later one"
    );
}

/// TestCopyShifting: items due at 1 s, 500 ms and 250 ms come out in due order.
pub async fn due_order<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    add_after(&queue, "one-second", Duration::from_secs(1)).await;
    add_after(&queue, "half", Duration::from_millis(500)).await;
    add_after(&queue, "quarter", Duration::from_millis(250)).await;
    clock.advance(Duration::from_secs(2));
    for want in ["quarter", "half", "one-second"] {
        let item = next(&queue).await;
        assert_eq!(*item, want);
        end(item, Then::Done).await;
    }
}

/// Deviation: an immediate add cancels a pending delay.
pub async fn immediate_add_cancels_delay<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    add_after(&queue, "x", Duration::from_secs(3600)).await;
    assert_eq!(add(&queue, "x").await, Added::Queued);
    let item = next(&queue).await;
    end(item, Then::Done).await;
    clock.advance(Duration::from_secs(3601));
    assert_eq!(len(&queue).await, 0, "the cancelled delay must not fire");
}

/// TestRateLimitingQueue: needs a queue whose limiter is client-go's
/// `ItemExponentialFailureRateLimiter(1 ms, 1 s)` alone.
pub async fn rate_limited_backoff<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    let due = |added: Added, clock: &FakeClock| match added {
        Added::Delayed { at } => at.saturating_duration_since(crate::clock::Clock::now(clock)),
        other => panic!("expected a delay, got {other:?}"),
    };
    let one = "one".to_string();
    let a = within("add_rate_limited", queue.add_rate_limited(one.clone())).await;
    assert_eq!(
        due(a.unwrap_or_else(|e| panic!("{e}")), &clock),
        Duration::from_millis(1)
    );
    // The second asks for 2 ms; the pending 1 ms is earlier and is kept.
    let b = within("add_rate_limited", queue.add_rate_limited(one.clone())).await;
    assert_eq!(b.ok(), Some(Added::Merged), "the earlier due time is kept");
    assert_eq!(
        within("num_requeues", queue.num_requeues(&one)).await.ok(),
        Some(2)
    );
    within("forget", queue.forget(&one))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        within("num_requeues", queue.num_requeues(&one)).await.ok(),
        Some(0)
    );
    clock.advance(Duration::from_millis(5));
    let item = next(&queue).await;
    assert_eq!(*item, "one");
    end(item, Then::Retry).await;
    assert_eq!(
        within("num_requeues", queue.num_requeues(&one)).await.ok(),
        Some(1)
    );
    clock.advance(Duration::from_millis(5));
    let item = next(&queue).await;
    end(item, Then::Forget).await;
    assert_eq!(
        within("num_requeues", queue.num_requeues(&one)).await.ok(),
        Some(0)
    );
}

/// After shut down: adds are refused with the item handed back, and
/// waiting gets return [`QueueError::ShutDown`].
pub async fn shut_down_refuses_adds_and_releases_getters<Q: AsyncQueue<String>>(
    queue: Q,
    _clock: FakeClock,
) {
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.get().await.map(|item| (*item).clone()) })
    };
    tokio::task::yield_now().await;
    queue.shut_down();
    let got = within("a waiting get", waiting).await;
    assert!(matches!(got, Ok(Err(QueueError::ShutDown))), "{got:?}");
    match within("add", queue.add("late".to_string())).await {
        Err(refused) => assert_eq!(refused.item, "late"),
        Ok(added) => panic!("an add after shut down was accepted: {added:?}"),
    }
    assert!(queue.is_shutting_down());
}

/// TestQueueDrainageUsingShutDownWithDrain (with a dirty item): the drain
/// waits for held items; a re-add while draining is still delivered.
pub async fn drain_waits_for_held_items<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    add(&queue, "a").await;
    add(&queue, "b").await;
    let a = next(&queue).await;
    let b = next(&queue).await;
    let drain = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.shut_down_with_drain().await })
    };
    tokio::task::yield_now().await;
    assert!(!drain.is_finished(), "the drain must wait for held items");
    end(a, Then::Done).await;
    tokio::task::yield_now().await;
    assert!(!drain.is_finished(), "one item is still held");
    end(b, Then::Done).await;
    within("the drain", drain)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        within("get", queue.get()).await,
        Err(QueueError::ShutDown)
    ));
}

/// TestAddWhileProcessing with many workers: each worker re-adds every
/// item once while processing it; every item is processed exactly twice
/// and never by two workers at once.
pub async fn add_while_processing_many_workers<Q: AsyncQueue<String>>(queue: Q, _clock: FakeClock) {
    const ITEMS: usize = 40;
    const WORKERS: usize = 6;
    for i in 0..ITEMS {
        add(&queue, &format!("item-{i}")).await;
    }
    let in_flight = std::sync::Arc::new(parking_lot::Mutex::new(HashMap::<String, usize>::new()));
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(HashMap::<String, usize>::new()));
    let progress = std::sync::Arc::new(tokio::sync::Notify::new());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, in_flight, seen, progress) = (
                queue.clone(),
                in_flight.clone(),
                seen.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let item = match queue.get().await {
                        Ok(item) => item,
                        Err(QueueError::ShutDown) => return,
                        Err(error) => panic!("get: {error}"),
                    };
                    let key = (*item).clone();
                    {
                        let mut held = in_flight.lock();
                        let n = held.entry(key.clone()).or_default();
                        *n += 1;
                        assert_eq!(*n, 1, "{key} is processed by two workers at once");
                    }
                    let times = {
                        let mut seen = seen.lock();
                        let n = seen.entry(key.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    if times == 1 {
                        let _ = queue.add(key.clone()).await;
                    }
                    tokio::task::yield_now().await;
                    *in_flight.lock().entry(key).or_default() -= 1;
                    end(item, Then::Done).await;
                    progress.notify_one();
                }
            })
        })
        .collect();
    // Wait (bounded) until every item was processed twice, then drain.
    within("every item processed twice", async {
        while seen.lock().values().filter(|&&n| n == 2).count() < ITEMS {
            progress.notified().await;
        }
    })
    .await;
    within("the drain", queue.shut_down_with_drain()).await;
    for worker in workers {
        within("a worker", worker)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    let seen = seen.lock();
    assert_eq!(seen.len(), ITEMS);
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
}

/// A [`Controller`](crate::controller::Controller) over the engine: 60
/// keys, every 10th failing once and one panicking once; every key is
/// reconciled, failures retried with backoff, and the summary adds up.
pub async fn controller_settles_every_key<Q: AsyncQueue<String>>(queue: Q, clock: FakeClock) {
    use crate::controller::{Action, Controller};
    const KEYS: u64 = 60;
    for n in 0..KEYS {
        add(&queue, &format!("ns/obj-{n}")).await;
    }
    let controller = Controller::new(queue.clone(), 3);
    let stop = crate::wait::Stop::new();
    let run = {
        let (controller, stop, queue) = (controller.clone(), stop.clone(), queue.clone());
        tokio::spawn(async move {
            controller
                .run_async(&stop, move |key: String| {
                    let queue = queue.clone();
                    async move {
                        let tries = queue.num_requeues(&key).await.unwrap_or(0);
                        match (key.as_str(), tries) {
                            ("ns/obj-7", 0) => panic!("{key}: unexpected state"),
                            (k, 0) if k.ends_with('0') => Err(format!("{key}: timed out")),
                            _ => Ok(Action::Done),
                        }
                    }
                })
                .await
        })
    };
    // Retries wait out their backoff on the fake clock: keep it moving
    // until every key succeeded.
    within("every key reconciled", async {
        while controller.counts().succeeded < KEYS {
            clock.advance(Duration::from_millis(5));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    stop.stop();
    let summary = within("the controller", run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.succeeded, KEYS, "{summary:?}");
    assert_eq!(summary.failed, 7, "{summary:?}");
    assert_eq!(summary.panicked, 1, "{summary:?}");
    assert_eq!(summary.requeued, 7, "{summary:?}");
    assert_eq!(summary.lease_lost, 0, "{summary:?}");
    assert_eq!(summary.left_queued, 0, "{summary:?}");
}

/// Generates one `#[tokio::test]` per check that needs only the default
/// limiter, each on a fresh queue from `$make`: an async closure (or
/// function) returning `(queue, FakeClock)`. Needs `tokio` with the
/// `macros` and `rt-multi-thread` features in the calling crate.
///
/// With `rate_limited: $limited`, also `rate_limited_backoff`, on a queue
/// from `$limited`: an async function of a [`LimiterSpec`]
/// ([`backoff_limiter`]) returning `(queue, FakeClock)`, for an engine
/// whose builder takes its limiter as a spec.
///
/// [`LimiterSpec`]: crate::limiter::LimiterSpec
/// [`backoff_limiter`]: crate::engine::conformance::backoff_limiter
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr, rate_limited: $limited:expr) => {
        $crate::conformance_tests!($make);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rate_limited_backoff() {
            let limiter = $crate::engine::conformance::backoff_limiter();
            let (queue, clock) = ($limited)(limiter).await;
            $crate::engine::conformance::rate_limited_backoff(queue, clock).await;
        }
    };
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            len_counts_distinct_items,
            collapse,
            reinsert,
            collapse_while_processing,
            done_ends_a_detached_item,
            fifo,
            delayed_item_waits_for_its_time,
            earliest_delay_wins,
            due_order,
            immediate_add_cancels_delay,
            shut_down_refuses_adds_and_releases_getters,
            drain_waits_for_held_items,
            add_while_processing_many_workers,
            controller_settles_every_key
        );
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (queue, clock) = ($make)().await;
                $crate::engine::conformance::$check(queue, clock).await;
            }
        )*
    };
}
