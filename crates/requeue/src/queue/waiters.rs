//! The line of `get` callers waiting for an item.
//!
//! Blocked threads and pending futures wait the same way: a blocking `get`
//! drives the async one on its own thread, whose waker unparks it. One item
//! wakes one waiter (no thundering herd). A waiter that was woken but gets
//! no item (another consumer took it first) goes back to the front of the
//! line; one that is dropped after being woken passes the wake-up on, so it
//! is never lost.

use std::collections::VecDeque;
use std::task::Waker;

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    line: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl Waiters {
    pub(crate) fn len(&self) -> usize {
        self.line.len()
    }

    /// Registers (or refreshes) the waiter `id`. A waiter whose id is gone
    /// was woken already; it rejoins at the front, keeping its turn.
    pub(crate) fn register(&mut self, id: Option<u64>, waker: &Waker) -> u64 {
        if let Some(id) = id {
            if let Some((_, w)) = self.line.iter_mut().find(|(i, _)| *i == id) {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                return id;
            }
            let fresh = self.fresh_id();
            self.line.push_front((fresh, waker.clone()));
            return fresh;
        }
        let fresh = self.fresh_id();
        self.line.push_back((fresh, waker.clone()));
        fresh
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Withdraws waiter `id`. Returns `false` if it had been woken already.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match self.line.iter().position(|(i, _)| *i == id) {
            Some(pos) => {
                self.line.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Takes the longest-waiting waiter out of the line, to be woken.
    pub(crate) fn pop(&mut self) -> Option<Waker> {
        self.line.pop_front().map(|(_, w)| w)
    }

    /// Takes every waiter out of the line, to be woken.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.line.drain(..).map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn woken_waiters_leave_the_line_and_rejoin_at_the_front() {
        let mut w = Waiters::default();
        let a = w.register(None, Waker::noop());
        let b = w.register(None, Waker::noop());
        assert!(w.pop().is_some());
        assert!(!w.remove(a), "a was woken");
        let a2 = w.register(Some(a), Waker::noop());
        assert_ne!(a2, a);
        assert_eq!(w.line.front().map(|(i, _)| *i), Some(a2));
        assert!(w.remove(b));
        assert_eq!(w.len(), 1);
    }
}
