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

/// An add that withdraws a long delay leaves a stale entry in the delay
/// heap. Promotion passes sweep such entries, but with nothing coming due
/// for an hour none runs: without a sweep triggered by the adds
/// themselves, this loop left one entry per round (20,000) in the heap.
#[test]
fn withdrawn_delays_do_not_pile_up_while_nothing_comes_due() {
    let clock = FakeClock::new();
    let queue: WorkQueue<u8> = WorkQueue::builder().clock(clock.clone()).build();
    const ROUNDS: u32 = 20_000;
    for round in 0..ROUNDS {
        // A resync an hour away, overtaken at once by a change.
        queue
            .add_after((round % 4) as u8, Duration::from_secs(3600))
            .expect("running");
        queue.add((round % 4) as u8).expect("running");
        drop(queue.try_get().expect("the change is ready"));
        let stored = queue.shared.delays.lock().heap.stored();
        assert!(
            stored <= 1025,
            "round {round}: {stored} heap entries for no live delay"
        );
    }
    check(&queue);
    assert_eq!(queue.snapshot().delayed, 0);
    // The sweep kept live delays: one still comes due on time.
    queue.add_after(7, Duration::from_secs(1)).expect("running");
    clock.advance(Duration::from_secs(1));
    assert_eq!(queue.try_get().map(|item| *item).ok(), Some(7));
}

/// A drain future dropped before the queue drained withdraws its waker:
/// before, each of these 1,000 attempts left one behind until the drain.
#[test]
fn abandoned_drain_waits_leave_no_waker_behind() {
    use std::future::Future;
    let queue: WorkQueue<u32> = WorkQueue::builder().clock(FakeClock::new()).build();
    queue.add(1).expect("running");
    let held = queue.try_get().expect("ready");
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1000 {
        let mut drain = std::pin::pin!(queue.shut_down_with_drain_async());
        assert!(drain.as_mut().poll(&mut cx).is_pending(), "an item is held");
    }
    assert_eq!(queue.shared.drain_waiters.lock().len(), 0);
    drop(held);
    assert!(queue.shared.drain_finished());
}
