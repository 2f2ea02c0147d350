//! The engine conformance checks of `requeue::engine::conformance` — the
//! same bodies the in-memory `WorkQueue` passes — on `RedisQueue` against
//! a real redis-server, with the scripts on the test's fake clock.
#![allow(clippy::unwrap_used)]

mod support;

use requeue::clock::FakeClock;
use requeue::engine::conformance;
use requeue_redis::RedisQueue;
use requeue_redis::ops::{Exponential, LimiterSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A queue name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        fastrand::u32(..)
    )
}

async fn fresh() -> (RedisQueue<String>, FakeClock) {
    let clock = FakeClock::new();
    let queue = RedisQueue::builder(support::server().url(), unique("conf"))
        .fake_time(clock.clone())
        .build()
        .await
        .unwrap();
    (queue, clock)
}

requeue::conformance_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_backoff() {
    let clock = FakeClock::new();
    let queue = RedisQueue::builder(support::server().url(), unique("conf-rl"))
        .fake_time(clock.clone())
        .limiter(LimiterSpec {
            exponential: Some(Exponential {
                base_ms: 1,
                max_ms: 1_000,
            }),
            ..LimiterSpec::default()
        })
        .build()
        .await
        .unwrap();
    conformance::rate_limited_backoff(queue, clock).await;
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
