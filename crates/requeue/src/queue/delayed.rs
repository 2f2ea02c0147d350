//! The waiting items: one min-heap by due time, with lazy deletion.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One waiting entry; live while the item's record still names `seq`.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) item: T,
}

impl<T> PartialEq for Waiting<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Waiting<T> {}
impl<T> PartialOrd for Waiting<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Waiting<T> {
    /// Reversed, so the max-heap yields the earliest (then first added) entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Items waiting for their due time. Superseded entries (a shorter delay
/// replaced them, or an immediate add withdrew them) stay in the heap until
/// they surface or until they outnumber the live ones.
#[derive(Debug)]
pub(crate) struct DelayHeap<T> {
    heap: BinaryHeap<Waiting<T>>,
    live: usize,
    next_seq: u64,
}

impl<T> DelayHeap<T> {
    pub(crate) fn new() -> Self {
        DelayHeap {
            heap: BinaryHeap::new(),
            live: 0,
            next_seq: 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Adds an entry; returns its sequence (never 0).
    pub(crate) fn push(&mut self, at: Instant, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Waiting { at, seq, item });
        self.live += 1;
        seq
    }

    /// Records that one live entry was superseded.
    pub(crate) fn mark_stale(&mut self) {
        self.live -= 1;
    }

    fn stale(&self) -> usize {
        self.heap.len() - self.live
    }

    /// Sweeps stale entries out once they dominate.
    pub(crate) fn maybe_sweep(&mut self, is_live: impl FnMut(&T, u64) -> bool) {
        if self.stale() > 1024 && self.stale() > self.live {
            let mut is_live = is_live;
            self.heap.retain(|w| is_live(&w.item, w.seq));
        }
    }

    /// The earliest live due time, discarding stale entries on top.
    pub(crate) fn next_due(&mut self, mut is_live: impl FnMut(&T, u64) -> bool) -> Option<Instant> {
        while let Some(top) = self.heap.peek() {
            if is_live(&top.item, top.seq) {
                return Some(top.at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes the top entry if it is due at `now`; the caller checks liveness
    /// and calls [`DelayHeap::took_live`] for a live one.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Waiting<T>> {
        if self.heap.peek()?.at > now {
            return None;
        }
        let due = self.heap.pop();
        if self.heap.is_empty() && self.heap.capacity() > 4096 {
            // Drained after a burst: give the memory back.
            self.heap = BinaryHeap::new();
        }
        due
    }

    /// Records that a popped entry was live.
    pub(crate) fn took_live(&mut self) {
        self.live -= 1;
    }

    /// Removes every entry (live or stale).
    pub(crate) fn clear(&mut self) -> impl Iterator<Item = Waiting<T>> + '_ {
        self.live = 0;
        self.heap.drain()
    }
}
