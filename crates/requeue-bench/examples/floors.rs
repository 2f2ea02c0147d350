//! The machine's own costs that bound every queue on it: a load that
//! misses the caches, a cache line passed between the two cores, an
//! uncontended lock, an atomic add, a clock read and a key's clone.
//!
//! The bench README's "Floors" section adds these up per workload to show
//! which goals no design can reach here. Run with
//! `cargo run --release -p requeue-bench --example floors`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds per step of `f`, best of three runs of `steps` steps.
fn per_step(steps: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for i in 0..steps {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / steps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Latency of a dependent load in a working set of `bytes` (one random
/// cycle through it, so neither the prefetcher nor the caches help once
/// it outgrows them).
fn dependent_load(bytes: usize) -> f64 {
    let n = bytes / std::mem::size_of::<usize>();
    let mut next: Vec<usize> = (0..n).collect();
    // Sattolo's shuffle: a single cycle through every element.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        next.swap(i, (state % i as u64) as usize);
    }
    let mut at = 0;
    per_step(4_000_000, |_| at = next[at])
}

/// One-way latency of a cache line written by one core and read by the other.
fn line_transfer() -> f64 {
    let rounds = 1_000_000_u64;
    let line = Arc::new(AtomicU64::new(0));
    let other = line.clone();
    let echo = std::thread::spawn(move || {
        for i in 0..rounds {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    let start = Instant::now();
    for i in 0..rounds {
        line.store(2 * i + 1, Ordering::Release);
        while line.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    if echo.join().is_err() {
        eprintln!("the echo thread panicked");
    }
    elapsed.as_nanos() as f64 / rounds as f64 / 2.0
}

fn main() {
    println!("| cost | ns |");
    println!("|---|---|");
    for mib in [1_usize, 4, 16, 64] {
        println!(
            "| dependent load, {mib} MiB working set | {:.1} |",
            dependent_load(mib << 20)
        );
    }
    println!(
        "| cache line passed from one core to the other (one way) | {:.1} |",
        line_transfer()
    );
    let lock = parking_lot::Mutex::new(0_u64);
    println!(
        "| parking_lot lock + unlock, uncontended | {:.1} |",
        per_step(20_000_000, |_| *lock.lock() += 1)
    );
    let counter = AtomicU64::new(0);
    println!(
        "| atomic fetch_add, uncontended | {:.1} |",
        per_step(20_000_000, |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
    );
    println!(
        "| Instant::now (vDSO clock_gettime) | {:.1} |",
        per_step(10_000_000, |_| {
            black_box(Instant::now());
        })
    );
    let key = requeue_bench::key(123_456);
    println!(
        "| clone + drop of a key `{key}` (cached) | {:.1} |",
        per_step(10_000_000, |_| {
            black_box(key.clone());
        })
    );
    let hasher = foldhash::fast::FixedState::with_seed(7);
    println!(
        "| foldhash of that key | {:.1} |",
        per_step(20_000_000, |i| {
            black_box(std::hash::BuildHasher::hash_one(&hasher, (&key, i)));
        })
    );
}
