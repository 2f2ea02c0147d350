//! `BlockingRedisQueue`: the Redis queue from plain threads (no runtime of
//! the caller's), with the same guard; several worker threads never hold
//! one key at once and lose nothing.
#![allow(clippy::unwrap_used)]

mod support;

use requeue::engine::{QueueError, Then};
use requeue_redis::RedisQueue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand::u32(..))
}

#[test]
fn blocking_facade_serves_threads_with_the_same_rules() {
    let queue = RedisQueue::<String>::builder(support::server().url(), unique("blocking"))
        .build_blocking()
        .unwrap();
    for n in 0..200 {
        queue.add(format!("key-{}", n % 50)).unwrap(); // 4 adds per key: deduplicated
    }
    assert_eq!(queue.len().unwrap(), 50);
    let seen = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let holding = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (queue, seen, holding) = (queue.clone(), seen.clone(), holding.clone());
            std::thread::spawn(move || {
                loop {
                    let item = match queue.get() {
                        Ok(item) => item,
                        Err(QueueError::ShutDown) => return,
                        Err(e) => panic!("{e}"),
                    };
                    let key = (*item).clone();
                    {
                        let mut holding = holding.lock().unwrap();
                        let n = holding.entry(key.clone()).or_default();
                        *n += 1;
                        assert_eq!(*n, 1, "{key} held twice");
                    }
                    let first = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.entry(key.clone()).or_default();
                        *n += 1;
                        *n == 1
                    };
                    if first {
                        // Re-added while held: parked, delivered once more after done.
                        queue.add(key.clone()).unwrap();
                    }
                    *holding.lock().unwrap().get_mut(&key).unwrap() -= 1;
                    // The guard's synchronous end works from a thread too.
                    assert!(item.end(Then::Done).released);
                    if seen.lock().unwrap().values().filter(|&&n| n == 2).count() == 50 {
                        queue.shut_down();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 50);
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
    assert!(queue.is_shutting_down());
    queue.shut_down_with_drain();
}
