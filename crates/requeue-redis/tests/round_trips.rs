//! What a worker pays per key: ending an item and taking the next in one
//! round trip (`Item::end_then_next`, which `Controller` uses between two
//! keys), the key's failure count delivered with its lease (so a
//! controller need not ask `num_requeues`), and the guarantees kept: the
//! next item is leased to the same worker under its own token, and
//! nothing is lost when a controller is stopped while a worker holds a
//! key taken that way.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::FakeClock;
use requeue::controller::{Action, Controller};
use requeue::engine::{AsyncQueue, Then};
use requeue::wait::Stop;
use requeue_redis::RedisQueue;
use requeue_redis::inspect;
use requeue_redis::keys::QueueKeys;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u64(..))
}

async fn fresh(prefetch: usize) -> (RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = RedisQueue::builder(support::server().url(), unique("next"))
        .fake_time(clock.clone())
        .lease(Duration::from_secs(40))
        .prefetch(prefetch)
        .build()
        .await
        .unwrap();
    (queue, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_done_and_the_next_get_take_one_round_trip() {
    let (queue, _clock) = fresh(0).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    let a = queue.get().await.unwrap();
    let a_token = a.token().unwrap();
    let before = queue.round_trips();
    let (ended, next) = a.end_then_next(Then::Forget).await;
    assert!(ended.unwrap().released);
    assert_eq!(queue.round_trips(), before + 1, "one call for both");
    let b = next.expect("b was ready");
    assert_eq!(*b, "b");
    assert_ne!(b.token().unwrap(), a_token, "its own lease");
    assert!(b.is_valid());
    assert_eq!(queue.held(), 1, "a is ended, b is held");
    // b is an ordinary hand-out: its fenced done works.
    let (ended, next) = b.end_then_next(Then::Done).await;
    assert!(ended.unwrap().released);
    assert!(next.is_none(), "nothing was ready");
    assert_eq!(queue.held(), 0);
    assert_eq!(queue.len().await.unwrap(), 0);
    let mut conn = support::connect(&support::server().url()).await;
    let keys = QueueKeys::new(queue.name()).unwrap();
    inspect::check_invariants(&mut conn, &keys).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_re_added_while_held_is_queued_by_the_done_and_can_come_straight_back() {
    let (queue, _clock) = fresh(0).await;
    queue.add("a".into()).await.unwrap();
    let a = queue.get().await.unwrap();
    queue.add("a".into()).await.unwrap(); // parked while held
    let (ended, next) = a.end_then_next(Then::Done).await;
    assert!(ended.unwrap().released);
    let again = next.expect("the done queued a, the get leased it");
    assert_eq!(*again, "a");
    again.end_async(Then::Done).await.unwrap();
    assert_eq!(queue.len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_reported_and_the_next_item_is_still_handed_over() {
    let (queue, _clock) = fresh(0).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    let a = queue.get().await.unwrap();
    // Someone else holds a now (as after a reap and a new hand-out).
    let mut conn = support::connect(&support::server().url()).await;
    let keys = QueueKeys::new(queue.name()).unwrap();
    redis::cmd("HSET")
        .arg(keys.owners())
        .arg("a")
        .arg("999:elsewhere")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let (ended, next) = a.end_then_next(Then::Done).await;
    assert!(matches!(ended, Err(requeue::engine::QueueError::LeaseLost)));
    let b = next.expect("b was ready");
    assert_eq!(*b, "b");
    b.end_async(Then::Done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prefetch_the_next_item_comes_from_the_items_fetched_ahead() {
    let (queue, _clock) = fresh(4).await;
    for key in ["a", "b"] {
        queue.add(key.into()).await.unwrap();
    }
    let a = queue.get().await.unwrap();
    let (ended, next) = a.end_then_next(Then::Done).await;
    assert!(ended.unwrap().released);
    assert!(next.is_none(), "b waits among the items fetched ahead");
    let before = queue.round_trips();
    let b = queue.get().await.unwrap();
    assert_eq!(*b, "b");
    assert_eq!(queue.round_trips(), before, "served without a call");
    b.end_async(Then::Done).await.unwrap();
}

/// A controller stopped while its workers take keys with their endings
/// handles every key it took: each key is handled or still queued, never
/// dropped on the floor, and no lease is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_controller_handles_every_key_it_took_on_the_way() {
    for round in 0..5 {
        let (queue, _clock) = fresh(0).await;
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        for key in &keys {
            queue.add(key.clone()).await.unwrap();
        }
        let handled = Arc::new(Mutex::new(HashSet::new()));
        let stop = Stop::new();
        let controller = Controller::new(queue.clone(), 4);
        let stop_after = 20 + round * 30;
        let run = {
            let (handled, stop) = (handled.clone(), stop.clone());
            let stop_in_handler = stop.clone();
            async move {
                controller
                    .run_async(&stop, move |key: String| {
                        let handled = handled.clone();
                        let stop = stop_in_handler.clone();
                        async move {
                            let mut handled = handled.lock().unwrap();
                            assert!(handled.insert(key.clone()), "{key} handled twice");
                            if handled.len() == stop_after {
                                stop.stop();
                            }
                            Ok::<_, std::convert::Infallible>(Action::Done)
                        }
                    })
                    .await
            }
        };
        run.await;
        let handled = handled.lock().unwrap().len() as u64;
        assert!(handled >= stop_after as u64);
        let mut conn = support::connect(&support::server().url()).await;
        let keys = QueueKeys::new(queue.name()).unwrap();
        inspect::check_invariants(&mut conn, &keys).await.unwrap();
        let state = inspect::inspect(&mut conn, &keys, 10).await.unwrap();
        assert_eq!(state.processing_count, 0, "no lease left: {state:?}");
        // Every key was handled once or is still queued: a key a worker
        // took with its last ending and then dropped would be neither.
        assert_eq!(handled + state.depth, 200, "{state:?}");
        drop(stop);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_out_carries_the_keys_failure_count() {
    let (queue, clock) = fresh(0).await;
    queue.add("a".into()).await.unwrap();
    for tries in 0..3u32 {
        let a = queue.get().await.unwrap();
        assert_eq!(a.requeues(), Some(tries));
        assert_eq!(AsyncQueue::num_requeues(&queue, &*a).await.unwrap(), tries);
        a.end_async(Then::Retry).await.unwrap();
        // The default limiter's backoff: 5 ms, 10 ms, 20 ms.
        clock.advance(Duration::from_secs(1));
    }
    let a = queue.get().await.unwrap();
    assert_eq!(a.requeues(), Some(3));
    // Forgotten on success: the next hand-out starts from zero.
    a.end_async(Then::Forget).await.unwrap();
    queue.add("a".into()).await.unwrap();
    let a = queue.get().await.unwrap();
    assert_eq!(a.requeues(), Some(0));
    a.end_async(Then::Done).await.unwrap();
}

/// A controller's worker on Redis: one call per key (its done and the
/// next get together), and no `num_requeues` call for the attempt number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_worker_pays_one_round_trip_per_key() {
    let (queue, _clock) = fresh(0).await;
    const KEYS: u64 = 50;
    for i in 0..KEYS {
        queue.add(format!("k{i}")).await.unwrap();
    }
    let before = queue.round_trips();
    let stop = Stop::new();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let controller = Controller::new(queue.clone(), 1);
    let summary = {
        let (handled, stop_in_handler) = (handled.clone(), stop.clone());
        controller
            .run_async(&stop, move |key: String| {
                let (handled, stop) = (handled.clone(), stop_in_handler.clone());
                async move {
                    let mut handled = handled.lock().unwrap();
                    handled.push(key);
                    if handled.len() as u64 == KEYS {
                        stop.stop();
                    }
                    Ok::<_, std::convert::Infallible>(Action::Done)
                }
            })
            .await
    };
    assert_eq!(handled.lock().unwrap().len() as u64, KEYS);
    assert_eq!(summary.succeeded, KEYS);
    let calls = queue.round_trips() - before;
    // The first get, one done-and-get per key, the summary's len.
    assert!(calls <= KEYS + 3, "{calls} calls for {KEYS} keys");
}

/// A controller's handler reads the fencing token of the lease it holds
/// (`requeue::controller::fencing_token`): exactly the token Redis has for
/// the key while the handler runs, a new one for each hand-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_reads_the_fencing_token_of_its_lease() {
    let (queue, _clock) = fresh(0).await;
    for key in ["a", "b", "c"] {
        queue.add(key.into()).await.unwrap();
    }
    let keys = QueueKeys::new(queue.name()).unwrap();
    let conn = support::connect(&support::server().url()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Stop::new();
    let controller = Controller::new(queue.clone(), 2);
    {
        let (seen, stop_in_handler) = (seen.clone(), stop.clone());
        let owners = keys.owners().to_string();
        controller
            .run_async(&stop, move |key: String| {
                let (seen, stop, owners) = (seen.clone(), stop_in_handler.clone(), owners.clone());
                let mut conn = conn.clone();
                async move {
                    let token = requeue::controller::fencing_token().expect("a Redis lease");
                    let held: String = redis::cmd("HGET")
                        .arg(&owners)
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert_eq!(held, token, "{key}: the token Redis holds");
                    let mut seen = seen.lock().unwrap();
                    seen.push(token);
                    if seen.len() == 3 {
                        stop.stop();
                    }
                    Ok::<_, std::convert::Infallible>(Action::Done)
                }
            })
            .await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3, "{seen:?}");
    assert_eq!(
        requeue::controller::fencing_token(),
        None,
        "only inside a handler"
    );
}
