//! The Lua rate limiter of `add_rate_limited` gives the same waits as
//! requeue's in-memory limiters on a FakeClock, rounded as documented
//! (to whole µs, then up to whole ms).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::limiter::{self, ItemExponential, ItemFastSlow, MaxOf, RateLimiter, TokenBucket};
use requeue_redis::ops::{self, Bucket, Exponential, FastSlow, LimiterSpec};
use std::time::Duration;
use support::Fx;

/// The in-memory wait as the Redis limiter reports it.
fn as_ms(wait: Duration) -> u64 {
    let us = (wait.as_nanos() + 500) / 1_000;
    u64::try_from(us.div_ceil(1_000)).unwrap()
}

async fn when(q: &mut Fx, spec: &LimiterSpec, item: &str) -> u64 {
    let at = q.at();
    let reply = ops::add_rate_limited(&mut q.conn, &q.keys, item.as_bytes(), spec, at)
        .await
        .unwrap();
    reply.delay_ms
}

fn bucket(qps: f64, burst: u32) -> LimiterSpec {
    LimiterSpec {
        bucket: Some(Bucket { qps, burst }),
        ..LimiterSpec::default()
    }
}

#[tokio::test]
async fn gcra_bucket_waits_like_a_token_bucket() {
    let mut q = Fx::new("gcra").await;
    let spec = bucket(10.0, 3);
    let mut waits = Vec::new();
    for i in 0..6 {
        waits.push(when(&mut q, &spec, &format!("i{i}")).await);
    }
    assert_eq!(waits, [0, 0, 0, 100, 200, 300]);
    let clock = FakeClock::new();
    let memory = TokenBucket::new(10.0, 3).with_clock(clock.clone());
    let memory: Vec<u64> = (0..6).map(|_| as_ms(memory.reserve())).collect();
    assert_eq!(waits, memory);
    assert_eq!(q.num_requeues("i0").await, 0, "a bucket knows no items");
    q.check().await;
    let state = q.state().await;
    assert_eq!((state.depth, state.delayed, state.retries_total), (3, 3, 6));
}

#[tokio::test]
async fn gcra_matches_the_in_memory_bucket_over_random_steps() {
    for (n, (qps, burst)) in [
        (10.0, 3),
        (4.0, 1),
        (8.0, 5),
        (3.0, 2),
        (7.5, 4),
        (1000.0, 10),
    ]
    .into_iter()
    .enumerate()
    {
        let mut q = Fx::new(&format!("gcra-random-{n}")).await;
        let spec = bucket(qps, burst);
        let clock = FakeClock::new();
        let memory = TokenBucket::new(qps, burst).with_clock(clock.clone());
        let mut rng = fastrand::Rng::with_seed(n as u64);
        for step in 0..60 {
            let ms = rng.u64(0..400);
            q.advance(ms);
            clock.advance(Duration::from_millis(ms));
            let redis = when(&mut q, &spec, "x").await;
            assert_eq!(
                redis,
                as_ms(memory.reserve()),
                "qps {qps} burst {burst} step {step}"
            );
        }
    }
}

#[tokio::test]
async fn degenerate_buckets_match_x_time_rate() {
    let mut q = Fx::new("gcra-degenerate").await;
    let never = as_ms(limiter::NEVER);
    assert_eq!(never, ops::MAX_MS);
    let zero_rate = bucket(0.0, 2);
    let memory = TokenBucket::new(0.0, 2);
    for _ in 0..4 {
        assert_eq!(when(&mut q, &zero_rate, "z").await, as_ms(memory.reserve()));
    }
    let mut q = Fx::new("gcra-empty").await;
    assert_eq!(when(&mut q, &bucket(10.0, 0), "e").await, never);
    assert_eq!(when(&mut q, &bucket(f64::INFINITY, 0), "e2").await, 0);
    q.check().await;
}

#[tokio::test]
async fn per_item_backoff_doubles_and_forget_resets() {
    let mut q = Fx::new("backoff").await;
    let spec = LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 5,
            max_ms: 60,
        }),
        ..LimiterSpec::default()
    };
    let mut waits = Vec::new();
    for _ in 0..6 {
        waits.push(when(&mut q, &spec, "a").await);
    }
    assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    assert_eq!(when(&mut q, &spec, "b").await, 5, "per item");
    assert_eq!(q.num_requeues("a").await, 6);
    assert!(ops::forget(&mut q.conn, &q.keys, b"a").await.unwrap());
    assert_eq!(q.num_requeues("a").await, 0);
    assert_eq!(when(&mut q, &spec, "a").await, 5);
    q.check().await;
}

#[tokio::test]
async fn client_go_backoff_sequence_and_num_requeues() {
    let mut q = Fx::new("backoff-5").await;
    let spec = LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 5,
            max_ms: 1_000_000,
        }),
        ..LimiterSpec::default()
    };
    let memory: ItemExponential<&str> =
        ItemExponential::new(Duration::from_millis(5), Duration::from_secs(1000));
    for expected in [5, 10, 20, 40, 80] {
        assert_eq!(when(&mut q, &spec, "one").await, expected);
        assert_eq!(as_ms(memory.when(&"one")), expected);
    }
    assert_eq!(q.num_requeues("one").await, 5);
    // The first wait queued "one" after 5 ms; later ones found it delayed
    // earlier already, so the earliest due stands.
    assert_eq!(q.state().await.next_due, Some((b"one".to_vec(), q.now + 5)));
}

#[tokio::test]
async fn fast_slow_matches_in_memory() {
    let mut q = Fx::new("fast-slow").await;
    let spec = LimiterSpec {
        fast_slow: Some(FastSlow {
            fast_ms: 5,
            slow_ms: 10_000,
            max_fast: 3,
        }),
        ..LimiterSpec::default()
    };
    let memory: ItemFastSlow<&str> =
        ItemFastSlow::new(Duration::from_millis(5), Duration::from_secs(10), 3);
    for _ in 0..5 {
        assert_eq!(when(&mut q, &spec, "a").await, as_ms(memory.when(&"a")));
    }
    assert_eq!(q.num_requeues("a").await, 5);
    let never_fast = LimiterSpec {
        fast_slow: Some(FastSlow {
            fast_ms: 5,
            slow_ms: 7,
            max_fast: 0,
        }),
        ..LimiterSpec::default()
    };
    assert_eq!(when(&mut q, &never_fast, "b").await, 7);
}

#[tokio::test]
async fn max_of_matches_in_memory_default_controller() {
    let mut q = Fx::new("default-controller").await;
    let spec = LimiterSpec::default_controller();
    let clock = FakeClock::new();
    let memory: MaxOf<String> = limiter::default_controller_with_clock(clock.clone());
    let mut rng = fastrand::Rng::with_seed(7);
    for step in 0..300 {
        let item = format!("k{}", rng.u32(0..6));
        let ms = rng.u64(0..30);
        q.advance(ms);
        clock.advance(Duration::from_millis(ms));
        let redis = when(&mut q, &spec, &item).await;
        assert_eq!(redis, as_ms(memory.when(&item)), "step {step} item {item}");
        if rng.u32(0..20) == 0 {
            ops::forget(&mut q.conn, &q.keys, item.as_bytes())
                .await
                .unwrap();
            memory.forget(&item);
        }
        assert_eq!(
            q.num_requeues(&item).await,
            u64::from(memory.num_requeues(&item))
        );
    }
    q.check().await;
}

#[tokio::test]
async fn max_of_fast_slow_and_exponential_matches_in_memory() {
    let mut q = Fx::new("max-of").await;
    let spec = LimiterSpec {
        exponential: Some(Exponential {
            base_ms: 1,
            max_ms: 1_000,
        }),
        fast_slow: Some(FastSlow {
            fast_ms: 5,
            slow_ms: 3_000,
            max_fast: 3,
        }),
        bucket: None,
    };
    let memory: MaxOf<&str> = MaxOf::default()
        .with(ItemFastSlow::new(
            Duration::from_millis(5),
            Duration::from_secs(3),
            3,
        ))
        .with(ItemExponential::new(
            Duration::from_millis(1),
            Duration::from_secs(1),
        ));
    for _ in 0..6 {
        assert_eq!(when(&mut q, &spec, "one").await, as_ms(memory.when(&"one")));
    }
    assert_eq!(q.num_requeues("one").await, 6);
}

#[tokio::test]
async fn rate_limited_add_of_an_item_already_due_is_ignored() {
    let mut q = Fx::new("rate-limited-dirty").await;
    q.add("a").await;
    let at = q.at();
    let reply = ops::add_rate_limited(
        &mut q.conn,
        &q.keys,
        b"a",
        &LimiterSpec::default_item_based(),
        at,
    )
    .await
    .unwrap();
    assert_eq!(
        (reply.code, reply.delay_ms, reply.depth),
        (ops::AddCode::Deduplicated, 1, 1)
    );
    assert_eq!(q.num_requeues("a").await, 1, "the attempt still counts");
    let reply = ops::add_rate_limited(&mut q.conn, &q.keys, b"b", &LimiterSpec::default(), at)
        .await
        .unwrap();
    assert_eq!(
        (reply.code, reply.delay_ms),
        (ops::AddCode::Queued, 0),
        "no limiter: no wait"
    );
    q.check().await;
}

/// A limiter of the user's own: 42 ms for every attempt, counting them.
struct FortyTwo(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl RateLimiter<String> for FortyTwo {
    fn when(&self, item: &String) -> Duration {
        *self.0.lock().unwrap().entry(item.clone()).or_default() += 1;
        Duration::from_millis(42)
    }
    fn forget(&self, item: &String) {
        self.0.lock().unwrap().remove(item);
    }
    fn num_requeues(&self, item: &String) -> u32 {
        self.0.lock().unwrap().get(item).copied().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_rate_limiter_can_pace_a_redis_queue_from_this_process() {
    // The builder used to take only the closed LimiterSpec.
    use requeue::engine::Then;
    use requeue::queue::Added;
    use requeue_redis::RedisQueue;
    let clock = FakeClock::new();
    let name = format!("local-limiter-{}", std::process::id());
    let queue: RedisQueue<String> = RedisQueue::builder(support::server().url(), &name)
        .fake_time(clock.clone())
        .rate_limiter(FortyTwo(Default::default()))
        .build()
        .await
        .unwrap();
    let key = "ns/web".to_string();
    let added = queue.add_rate_limited(key.clone()).await.unwrap();
    let due = |added: Added| match added {
        Added::Delayed { at } => at.saturating_duration_since(clock.now()),
        other => panic!("expected a delay, got {other:?}"),
    };
    assert_eq!(due(added), Duration::from_millis(42));
    assert_eq!(queue.num_requeues(&key).await.unwrap(), 1);
    clock.advance(Duration::from_millis(42));
    let item = queue.get().await.unwrap();
    // A failure re-adds it by the same limiter.
    let ended = item.end_async(Then::Retry).await.unwrap();
    assert_eq!(due(ended.added.unwrap()), Duration::from_millis(42));
    assert_eq!(queue.num_requeues(&key).await.unwrap(), 2);
    clock.advance(Duration::from_millis(42));
    let item = queue.get().await.unwrap();
    // A success forgets its history there too.
    item.end_async(Then::Forget).await.unwrap();
    assert_eq!(queue.num_requeues(&key).await.unwrap(), 0);
    // And the client-go limiters work the same way.
    let queue: RedisQueue<String> =
        RedisQueue::builder(support::server().url(), format!("{name}-exp"))
            .fake_time(clock.clone())
            .rate_limiter(ItemExponential::new(
                Duration::from_millis(5),
                Duration::from_secs(1),
            ))
            .build()
            .await
            .unwrap();
    let first = due(queue.add_rate_limited(key.clone()).await.unwrap());
    assert_eq!(first, Duration::from_millis(5));
    queue.forget(&key).await.unwrap();
    assert_eq!(queue.num_requeues(&key).await.unwrap(), 0);
}
