//! The engine conformance checks of `requeue::engine::conformance` — the
//! same bodies the in-memory `WorkQueue` passes — on `RedisQueue` against
//! a real redis-server, with the scripts on the test's fake clock.
#![allow(clippy::unwrap_used)]

mod support;

use requeue::clock::FakeClock;
use requeue::engine::conformance::unique_name;
use requeue_redis::RedisQueue;
use requeue_redis::ops::LimiterSpec;
use std::time::Duration;

/// A fresh queue on the binary's server, on a fake clock of its own.
async fn open(
    prefix: &str,
    prefetch: usize,
    limiter: Option<LimiterSpec>,
) -> (RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let mut builder = RedisQueue::builder(support::server().url(), unique_name(prefix))
        .fake_time(clock.clone())
        .prefetch(prefetch);
    if let Some(limiter) = limiter {
        builder = builder.limiter(limiter);
    }
    (builder.build().await.unwrap(), clock)
}

async fn fresh() -> (RedisQueue<String>, FakeClock) {
    open("conf", 0, None).await
}

async fn fresh_rate_limited(limiter: LimiterSpec) -> (RedisQueue<String>, FakeClock) {
    open("conf-rl", 0, Some(limiter)).await
}

requeue::conformance_tests!(fresh, rate_limited: fresh_rate_limited);

/// The same checks with fetching ahead on: every rule the checks pin down
/// holds (their adds never meet an item fetched ahead but unclaimed, the
/// one documented difference, which `tests/prefetch.rs` shows).
mod fetching_ahead {
    use super::*;

    async fn fresh() -> (RedisQueue<String>, FakeClock) {
        open("conf-ahead", 8, None).await
    }

    requeue::conformance_tests!(fresh);
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_error_naming_the_url() {
    // A port nothing listens on: bind one, read it, drop the listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let error = RedisQueue::<String>::builder(&url, "q")
        .build()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(matches!(error, requeue_redis::error::Error::Connect { .. }));
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let url = support::server().url();
    for (builder, what) in [
        (RedisQueue::<String>::builder(&url, "a{b"), "name"),
        (
            RedisQueue::<String>::builder(&url, "ok").lease(Duration::from_millis(1)),
            "lease",
        ),
        (RedisQueue::<String>::builder(&url, "ok").batch(0), "batch"),
    ] {
        assert!(builder.build().await.is_err(), "a bad {what} was accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_client_go_with_lease_counters() {
    use requeue::engine::Then;
    use requeue::metrics::InMemoryMetrics;
    let clock = FakeClock::new();
    let metrics = std::sync::Arc::new(InMemoryMetrics::new());
    let name = unique_name("metrics");
    let queue: RedisQueue<String> = RedisQueue::builder(support::server().url(), &name)
        .fake_time(clock.clone())
        .lease(Duration::from_millis(300))
        .metrics(metrics.clone())
        .build()
        .await
        .unwrap();
    let record = metrics.queue(&name).unwrap();
    queue.add("a".into()).await.unwrap();
    queue.add("a".into()).await.unwrap(); // deduplicated: not an add
    queue.add("b".into()).await.unwrap();
    assert_eq!((record.adds(), record.depth()), (2, 2));
    clock.advance(Duration::from_millis(50));
    let a = queue.get().await.unwrap();
    assert_eq!(record.depth(), 1);
    assert_eq!(record.latency(), [0.05], "queued for 50 ms of fake time");
    queue.add("a".into()).await.unwrap(); // parked behind its processing: an add
    assert_eq!(record.adds(), 3);
    clock.advance(Duration::from_millis(20));
    a.end_async(Then::Retry).await.unwrap();
    assert_eq!(record.retries(), 1);
    assert_eq!(record.work_duration(), [0.02]);
    // A holder that dies: a second "process" (same fake clock) leases an
    // item and vanishes without ending it; after the lease, a get reaps it.
    let other: RedisQueue<String> = RedisQueue::builder(support::server().url(), &name)
        .fake_time(clock.clone())
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let taken = other.get().await.unwrap().detach();
    drop(other);
    clock.advance(Duration::from_millis(400));
    let next = queue.get().await.unwrap();
    assert_eq!(record.lease_expired(), 1, "{taken}'s lease was reaped");
    assert_eq!(queue.leases_reaped(), 1);
    // A holder whose lease is gone: its end is refused and counted.
    queue.shut_down_and_release().await.unwrap();
    assert!(matches!(
        next.end_async(Then::Done).await,
        Err(requeue::engine::QueueError::LeaseLost)
    ));
    assert_eq!(record.lease_lost(), 1);
    assert_eq!(queue.leases_lost(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_key_is_a_typed_error_and_stays_in_redis() {
    use requeue::engine::QueueError;
    use requeue_redis::inspect::inspect;
    use requeue_redis::keys::QueueKeys;
    let clock = FakeClock::new();
    let name = unique_name("decode");
    let queue: RedisQueue<String> = RedisQueue::builder(support::server().url(), &name)
        .fake_time(clock.clone())
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    // Another writer (or another item type) put bytes that are not UTF-8.
    let raw = vec![0xff, 0xfe, b'x'];
    let mut conn = support::connect(&support::server().url()).await;
    let keys = QueueKeys::new(&name).unwrap();
    redis::cmd("LPUSH")
        .arg(keys.queue())
        .arg(&raw)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("SADD")
        .arg(keys.dirty())
        .arg(&raw)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    queue.add("good".to_string()).await.unwrap();
    match queue.get().await {
        Err(QueueError::Decode { raw: got, reason }) => {
            assert_eq!(got, raw);
            assert!(reason.contains("utf-8"), "{reason}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Left in place: leased to nobody, it comes back after the lease with
    // backoff (counted as a failure) instead of hot-looping; the good key
    // behind it is served meanwhile.
    let state = inspect(&mut conn, &keys, 10).await.unwrap();
    assert_eq!(state.processing_count, 1);
    let good = queue.get().await.unwrap();
    assert_eq!(*good, "good");
    // Ended before the clock moves: a dropped guard ends its lease in the
    // background, and if that lagged behind the advance below, the good
    // key's lease would expire and be reaped too.
    good.end_async(requeue::engine::Then::Done).await.unwrap();
    clock.advance(Duration::from_millis(400));
    // The next get reaps the expired lease into a 5 ms backoff ...
    assert!(queue.try_get().await.unwrap().is_none());
    let state = inspect(&mut conn, &keys, 10).await.unwrap();
    assert_eq!(state.lease_expired_total, 1, "reaped once");
    assert_eq!(state.delayed, 1, "backing off, not hot-looping");
    // ... after which it is handed out (and refused) again.
    clock.advance(Duration::from_millis(10));
    assert!(matches!(queue.get().await, Err(QueueError::Decode { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_lease_is_renewed_until_the_queues_done_ends_it() {
    // `Item::detach` used to drop the lease's guard with no way to end it:
    // the lease was renewed for as long as the process lived.
    let clock = FakeClock::new();
    let queue: RedisQueue<String> =
        RedisQueue::builder(support::server().url(), unique_name("detach"))
            .fake_time(clock.clone())
            .build()
            .await
            .unwrap();
    queue.add("k".into()).await.unwrap();
    let key = queue.get().await.unwrap().detach();
    assert_eq!(queue.held(), 1, "detached, still held (and renewed)");
    assert!(queue.done(&key).await.unwrap());
    assert_eq!(queue.held(), 0, "ended: no longer renewed");
    assert!(!queue.done(&key).await.unwrap());
    assert_eq!(queue.len().await.unwrap(), 0);
}
