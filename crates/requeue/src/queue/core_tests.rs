//! The whole core driven through random operations on one thread, every
//! shard's invariants checked after each step, plus the queue-wide ones:
//! the published counts match the shards, and the ready line holds exactly
//! the queued keys.

use super::*;
use crate::clock::FakeClock;
use std::collections::HashSet;
use std::time::Duration;

fn check(queue: &WorkQueue<u8>) {
    let shared = &queue.shared;
    let mut ready = 0;
    for cell in shared.shards.iter() {
        let shard = cell.lock.lock();
        shard.check();
        ready += shard.counts.ready;
    }
    assert_eq!(
        queue.len(),
        ready,
        "published ready counts match the shards"
    );
    if !shared.ordered.load(crate::sync::Ordering::Relaxed) {
        // Every queued key is in the FIFO exactly once.
        let mut seen = HashSet::new();
        let mut handles = Vec::new();
        while let Some(h) = shared.fifo.pop() {
            assert!(seen.insert(h), "a handle twice in the FIFO");
            handles.push(h);
        }
        assert_eq!(handles.len(), ready);
        for h in handles {
            shared.fifo.push(h);
        }
    }
}

fn run(seed: u64, priorities: bool) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let clock = FakeClock::new();
    let queue: WorkQueue<u8> = WorkQueue::builder()
        .clock(clock.clone())
        .fairness(Some(3))
        .build();
    let mut held: Vec<Item<u8>> = Vec::new();
    for _ in 0..20_000 {
        let key = rng.u8(0..16);
        let priority = if priorities && rng.u8(0..50) == 0 {
            rng.i32(-2..3)
        } else {
            0
        };
        match rng.u8(0..9) {
            0 | 1 => {
                let _ = queue.add_with(key, AddOpts::new().priority(priority));
            }
            2 => {
                let after = Duration::from_millis(rng.u64(1..50));
                let _ = queue.add_ref_with(&key, AddOpts::new().after(after).priority(priority));
            }
            3 | 4 => {
                if let Ok(item) = queue.try_get() {
                    assert!(held.iter().all(|h| **h != *item), "handed out twice");
                    held.push(item);
                }
            }
            5 if !held.is_empty() => {
                let item = held.swap_remove(rng.usize(..held.len()));
                if rng.bool() {
                    assert!(item.done());
                } else {
                    let key = *item;
                    let _stale = item.detach();
                    assert!(queue.done(&key));
                }
            }
            6 => {
                if held.iter().all(|h| **h != key) {
                    assert!(!queue.done(&key), "stray done");
                }
            }
            7 if !held.is_empty() => {
                let item = held.swap_remove(rng.usize(..held.len()));
                let _ = item.retry_after(Duration::from_millis(rng.u64(0..20)));
            }
            _ => clock.advance(Duration::from_millis(rng.u64(0..20))),
        }
        check(&queue);
    }
    drop(held);
    check(&queue);
}

#[test]
fn invariants_hold_through_random_operations() {
    run(0x5EED, false);
}

#[test]
fn invariants_hold_through_random_operations_with_priorities() {
    run(0xFEED, true);
}
