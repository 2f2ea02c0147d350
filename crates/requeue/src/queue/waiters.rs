//! The line of `get` callers waiting for an item.
//!
//! Blocked threads and pending futures wait the same way: a blocking `get`
//! drives the async one on its own thread, whose waker unparks it. One item
//! wakes one waiter (no thundering herd). A waiter that was woken but gets
//! no item (another consumer took it first) goes back to the front of the
//! line; one that is dropped after being woken passes the wake-up on, so it
//! is never lost.
//!
//! # The sleeper handshake
//!
//! Producers make items ready without any lock a consumer holds, so they
//! learn whether anyone sleeps from [`Line::sleepers`], an atomic copy of the
//! line's length, and only take the line's lock when it is not zero (the
//! common case of busy consumers costs one load). The two sides pair up like
//! Dekker's algorithm:
//!
//! - a consumer joins the line (the count goes up), then a `SeqCst` fence,
//!   then looks for an item once more before it sleeps;
//! - a producer publishes its item, then a `SeqCst` fence, then reads the count.
//!
//! The fences order each side's write before its read, so at least one of
//! them sees the other: the consumer finds the item, or the producer finds
//! the sleeper and wakes it. The loom models in `loom_tests.rs` check it.

use crate::sync::{AtomicUsize, Ordering, QueueMutex, fence};
use std::collections::VecDeque;
use std::task::Waker;

#[derive(Debug, Default)]
struct Waiters {
    /// One per `get` waiting now: a waiter leaves when it is woken, takes
    /// an item, or is dropped (`Waiting`'s and `ItemStream`'s `Drop`).
    line: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl Waiters {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The waiting `get`s and their count.
#[derive(Debug)]
pub(crate) struct Line {
    waiters: QueueMutex<Waiters>,
    /// The line's length, readable without its lock.
    sleepers: AtomicUsize,
}

impl Line {
    pub(crate) fn new() -> Self {
        Line {
            waiters: QueueMutex::new(Waiters::default()),
            sleepers: AtomicUsize::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sleepers.load(Ordering::Relaxed)
    }

    /// Registers (or refreshes) waiter `id`, then fences: the caller must
    /// look for an item once more before sleeping. A waiter whose id is
    /// gone was woken already; it rejoins at the front, keeping its turn.
    pub(crate) fn register(&self, id: Option<u64>, waker: &Waker) -> u64 {
        let id = {
            let mut w = self.waiters.lock();
            let id = match id {
                Some(id) => match w.line.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, current)) => {
                        if !current.will_wake(waker) {
                            current.clone_from(waker);
                        }
                        id
                    }
                    None => {
                        let fresh = w.fresh_id();
                        w.line.push_front((fresh, waker.clone()));
                        fresh
                    }
                },
                None => {
                    let fresh = w.fresh_id();
                    w.line.push_back((fresh, waker.clone()));
                    fresh
                }
            };
            self.sleepers.store(w.line.len(), Ordering::Relaxed);
            id
        };
        fence(Ordering::SeqCst);
        id
    }

    /// Withdraws waiter `id`. Returns `false` if it had been woken already.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut w = self.waiters.lock();
        match w.line.iter().position(|(i, _)| *i == id) {
            Some(pos) => {
                w.line.remove(pos);
                self.sleepers.store(w.line.len(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The producer's side of the handshake: after `items` were made
    /// ready, wakes as many sleepers (longest waiting first).
    pub(crate) fn wake(&self, items: usize) {
        if items == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut woken: [Option<Waker>; 4] = Default::default();
        let mut rest = Vec::new();
        {
            let mut w = self.waiters.lock();
            for i in 0..items {
                let Some((_, waker)) = w.line.pop_front() else {
                    break;
                };
                match woken.get_mut(i) {
                    Some(place) => *place = Some(waker),
                    None => rest.push(waker),
                }
            }
            self.sleepers.store(w.line.len(), Ordering::Relaxed);
        }
        woken.into_iter().flatten().for_each(Waker::wake);
        rest.into_iter().for_each(Waker::wake);
    }

    /// Takes every waiter out of the line, to be woken (shutdown).
    pub(crate) fn take_all(&self) -> Vec<Waker> {
        let mut w = self.waiters.lock();
        self.sleepers.store(0, Ordering::Relaxed);
        w.line.drain(..).map(|(_, waker)| waker).collect()
    }
}

#[cfg(all(test, not(requeue_loom)))]
mod tests {
    use super::*;

    #[test]
    fn woken_waiters_leave_the_line_and_rejoin_at_the_front() {
        let line = Line::new();
        let a = line.register(None, Waker::noop());
        let b = line.register(None, Waker::noop());
        assert_eq!(line.len(), 2);
        line.wake(1);
        assert_eq!(line.len(), 1);
        assert!(!line.remove(a), "a was woken");
        let a2 = line.register(Some(a), Waker::noop());
        assert_ne!(a2, a);
        assert_eq!(line.waiters.lock().line.front().map(|(i, _)| *i), Some(a2));
        assert!(line.remove(b));
        assert_eq!(line.len(), 1);
        assert_eq!(line.take_all().len(), 1);
        assert_eq!(line.len(), 0);
    }
}
