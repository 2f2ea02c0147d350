//! The item-keyed limiters with many items and many threads, through the
//! public API only: every count exact, `tracked_items` exact, and memory
//! given back by `forget` (observed as the limiter working on, empty, at
//! the same answers).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use requeue::limiter::{ItemExponential, ItemFastSlow, RateLimiter};
use std::sync::Arc;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn key(i: usize) -> String {
    format!("ns-{}/obj-{i}", i % 100)
}

#[test]
fn a_hundred_thousand_keys_are_counted_apart_and_forgotten() {
    let limiter = ItemExponential::new(5 * MS, Duration::from_secs(1000));
    let n = 100_000;
    for round in 0..2 {
        for i in 0..n {
            assert_eq!(limiter.when(&key(i)), 5 * MS);
        }
        assert_eq!(limiter.tracked_items(), n);
        for i in 0..n {
            assert_eq!(limiter.when(&key(i)), 10 * MS);
            assert_eq!(limiter.num_requeues(&key(i)), 2);
        }
        // Forget every other key, then the rest: the others keep their counts.
        for i in (0..n).step_by(2) {
            limiter.forget(&key(i));
        }
        assert_eq!(limiter.tracked_items(), n / 2);
        for i in 0..n {
            let expected = if i % 2 == 0 { 0 } else { 2 };
            assert_eq!(limiter.num_requeues(&key(i)), expected, "round {round}");
        }
        for i in (1..n).step_by(2) {
            limiter.forget(&key(i));
        }
        assert_eq!(limiter.tracked_items(), 0);
        assert_eq!(limiter.num_requeues(&key(7)), 0);
    }
}

#[test]
fn threads_on_shared_and_on_own_keys_lose_no_count() {
    let limiter = Arc::new(ItemFastSlow::new(MS, 2 * MS, 1_000_000));
    let threads = 8;
    let per_thread = 5_000;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let limiter = &limiter;
            scope.spawn(move || {
                for i in 0..per_thread {
                    // 64 hot keys every thread hits, and keys of its own.
                    limiter.when(&format!("hot-{}", i % 64));
                    let own = format!("t{t}-{i}");
                    limiter.when(&own);
                    limiter.when(&own);
                    if i % 3 == 0 {
                        limiter.forget(&own);
                    }
                }
            });
        }
    });
    for h in 0..64 {
        let expected = (per_thread / 64 + usize::from(h < per_thread % 64)) * threads;
        assert_eq!(limiter.num_requeues(&format!("hot-{h}")), expected as u32);
    }
    let mut own = 0;
    for t in 0..threads {
        for i in 0..per_thread {
            let expected = if i % 3 == 0 { 0 } else { 2 };
            own += usize::from(expected > 0);
            assert_eq!(limiter.num_requeues(&format!("t{t}-{i}")), expected);
        }
    }
    assert_eq!(limiter.tracked_items(), 64 + own);
}

#[test]
fn churn_keeps_tracked_items_exact() {
    // A controller's life: keys fail, succeed and are forgotten, fail again.
    let limiter = ItemExponential::new(MS, Duration::from_secs(1));
    let mut rng = fastrand::Rng::with_seed(42);
    let mut model = std::collections::HashMap::new();
    for step in 0..200_000 {
        let k = rng.u32(0..5_000);
        if rng.u8(0..4) == 0 {
            limiter.forget(&k);
            model.remove(&k);
        } else {
            let count = model.entry(k).or_insert(0_u32);
            *count += 1;
            let wait = limiter.when(&k);
            assert_eq!(
                wait,
                (MS * 2_u32.pow((*count - 1).min(10))).min(Duration::from_secs(1))
            );
        }
        if step % 10_000 == 0 {
            assert_eq!(limiter.tracked_items(), model.len());
        }
    }
    assert_eq!(limiter.tracked_items(), model.len());
    for (k, count) in &model {
        assert_eq!(limiter.num_requeues(k), *count);
    }
}
