//! W8 ratelimited-queue: every key fails three times, backing off through
//! an item-exponential limiter, and succeeds on its fourth attempt.

use crate::crew::Crew;
use crate::{BenchError, Measurement, key_index, keys};
use requeue::limiter::{ItemExponential, RateLimiter};
use requeue::queue::WorkQueue;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The attempt on which a W8 key succeeds (attempts 1–3 fail).
pub const W8_ATTEMPTS: u32 = 4;

/// Consumers of W8.
const CONSUMERS: usize = 2;

/// W8 ratelimited-queue: a queue with an item-exponential limiter (1 ms,
/// 10 ms) gets `n` keys up front (10,000 at full size); 2 consumers
/// retry attempts 1–3 (`add_rate_limited` + done) and forget + done on
/// attempt 4. Every key must succeed once, after exactly 4 attempts.
/// ops = keys; wall and CPU cover the adds and all attempts.
pub fn w8_ratelimited_queue(n: usize) -> Result<Measurement, BenchError> {
    const W: &str = "W8";
    let limiter = Arc::new(ItemExponential::<String>::new(
        Duration::from_millis(1),
        Duration::from_millis(10),
    ));
    let queue: WorkQueue<String> = WorkQueue::builder().rate_limiter(limiter.clone()).build();
    let attempts: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let held: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let succeeded = Arc::new(AtomicU64::new(0));
    let broken: Arc<Mutex<Option<BenchError>>> = Arc::default();
    let mut crew = Crew::new(W);
    for c in 0..CONSUMERS {
        let (queue, attempts, held) = (queue.clone(), attempts.clone(), held.clone());
        let (succeeded, broken) = (succeeded.clone(), broken.clone());
        crew.spawn(&format!("consumer-{c}"), move || {
            let fail = |e: BenchError| {
                broken
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
                queue.shut_down();
            };
            while let Some(item) = queue.get() {
                let Some(i) = key_index(&item).filter(|&i| i < n) else {
                    fail(BenchError::Invariant {
                        workload: W,
                        detail: format!("unknown key {}", *item),
                    });
                    break;
                };
                if held[i].swap(true, Ordering::AcqRel) {
                    fail(BenchError::Duplicate {
                        workload: W,
                        key: item.clone(),
                        detail: "handed to a consumer while another held it".into(),
                    });
                    break;
                }
                let attempt = attempts[i].fetch_add(1, Ordering::Relaxed) + 1;
                held[i].store(false, Ordering::Release);
                if attempt < W8_ATTEMPTS {
                    if item.retry().is_err() {
                        break; // shut down because another consumer failed
                    }
                } else if attempt == W8_ATTEMPTS {
                    item.forget();
                    if succeeded.fetch_add(1, Ordering::Relaxed) + 1 == n as u64 {
                        queue.shut_down();
                    }
                } else {
                    let key = item.clone();
                    drop(item);
                    fail(BenchError::Duplicate {
                        workload: W,
                        key,
                        detail: format!(
                            "attempt {attempt} after it succeeded on attempt {W8_ATTEMPTS}"
                        ),
                    });
                    break;
                }
            }
        });
    }
    if n == 0 {
        queue.shut_down();
    }
    let (prelude, abort) = (queue.clone(), queue.clone());
    let keys = keys(n);
    let timing = crew.run(
        move || {
            for key in keys {
                let _ = prelude.add(key);
            }
        },
        move || drop(abort.shut_down()),
    )?;
    if let Some(e) = broken.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e);
    }
    let wrong: Vec<(usize, u32)> = attempts
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .enumerate()
        .filter(|&(_, a)| a != W8_ATTEMPTS)
        .collect();
    let tracked = limiter.tracked_items();
    if !wrong.is_empty() || tracked != 0 || succeeded.load(Ordering::Relaxed) != n as u64 {
        return Err(BenchError::Invariant {
            workload: W,
            detail: format!(
                "{} keys not tried exactly {W8_ATTEMPTS} times (first: {:?}), {tracked} still tracked by the limiter",
                wrong.len(),
                wrong.first().map(|&(i, a)| (crate::key(i), a)),
            ),
        });
    }
    let mut m = Measurement::new(W, "requeue", n as u64, n as u64, timing.wall);
    m.cpu = timing.cpu;
    Ok(m.with_memory())
}
