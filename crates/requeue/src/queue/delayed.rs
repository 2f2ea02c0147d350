//! The waiting items: buckets of one millisecond, sorted only when due.
//!
//! A binary heap of a million entries spends its time in cache misses on
//! every pop; here an add appends to the bucket of its millisecond (a
//! `BTreeMap` of buckets), and when a bucket comes due it is sorted once
//! and becomes the *front*, from which due items are taken in `(due, seq)`
//! order — the order client-go's heap yields.
//!
//! Times are nanoseconds on the queue's scale (see `delays::nanos_since`). Entries are lazily
//! deleted: the heap cannot tell a stale entry (its key was re-delayed,
//! made ready or withdrawn) from a live one, because that is known only
//! under the key's shard lock, which is taken before this heap's lock and
//! never after. Whoever pops an entry checks it there. The heap keeps
//! count of the live entries (callers report every entry that goes stale),
//! so that [`DelayHeap::wants_sweep`] can say when stale ones dominate.

use super::delays::Nanos;
use std::collections::BTreeMap;

/// One waiting entry; live while the item's record still names `seq`.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    pub(crate) at: Nanos,
    pub(crate) seq: u64,
    pub(crate) item: T,
}

impl<T> Waiting<T> {
    fn key(&self) -> (Nanos, u64) {
        (self.at, self.seq)
    }
}

#[derive(Debug)]
struct Bucket<T> {
    /// Earliest due time among the entries (possibly of a stale one).
    min_at: Nanos,
    entries: Vec<Waiting<T>>,
}

const NANOS_PER_TICK: Nanos = 1_000_000;

/// Items waiting for their due time.
#[derive(Debug)]
pub(crate) struct DelayHeap<T> {
    /// With `front`, `stored` entries: one live entry per delayed key (the
    /// user's items) plus stale ones, swept once there are more than 1024
    /// of them and more than live ones (by a promotion pass, or by the add
    /// that tipped the balance: `Shared::sweep_if_asked`). So at most
    /// `live + max(1024, live) + 1` entries, and a bucket per distinct
    /// millisecond among them.
    buckets: BTreeMap<Nanos, Bucket<T>>,
    /// The bucket being taken from, sorted latest-first (the next is last).
    front: Vec<Waiting<T>>,
    /// Bucket number of `front`.
    front_tick: Option<Nanos>,
    live: usize,
    stored: usize,
    next_seq: u64,
}

impl<T> DelayHeap<T> {
    pub(crate) fn new() -> Self {
        DelayHeap {
            buckets: BTreeMap::new(),
            front: Vec::new(),
            front_tick: None,
            live: 0,
            stored: 0,
            next_seq: 1,
        }
    }

    /// Entries stored, stale ones included.
    #[cfg(test)]
    pub(crate) fn stored(&self) -> usize {
        self.stored
    }

    /// Adds an entry; returns its sequence (never 0).
    pub(crate) fn push(&mut self, at: Nanos, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(Waiting { at, seq, item });
        self.live += 1;
        seq
    }

    /// Puts back an entry taken out by [`DelayHeap::drain_all`] that is
    /// still live (it kept its place in the live count).
    pub(crate) fn reinsert(&mut self, waiting: Waiting<T>) {
        self.insert(waiting);
    }

    fn insert(&mut self, waiting: Waiting<T>) {
        let at = waiting.at;
        let tick = at / NANOS_PER_TICK;
        if self.front_tick.is_some_and(|front| tick <= front) {
            // Due no later than the bucket being taken from: keep it sorted.
            let key = waiting.key();
            let pos = self.front.partition_point(|w| w.key() > key);
            self.front.insert(pos, waiting);
        } else {
            let bucket = self.buckets.entry(tick).or_insert_with(|| Bucket {
                min_at: at,
                entries: Vec::new(),
            });
            bucket.min_at = bucket.min_at.min(at);
            bucket.entries.push(waiting);
        }
        self.stored += 1;
    }

    /// Records that `n` live entries went stale or were taken (promoted).
    pub(crate) fn forget_live(&mut self, n: usize) {
        self.live = self.live.saturating_sub(n);
    }

    /// Whether stale entries dominate enough to be worth sweeping out.
    pub(crate) fn wants_sweep(&self) -> bool {
        let stale = self.stored.saturating_sub(self.live);
        stale > 1024 && stale > self.live
    }

    /// The earliest due time among the stored entries: exact when the
    /// front is not empty, else the next bucket's, which may belong to a
    /// stale entry and so be early (a spurious wake-up, never a late one).
    pub(crate) fn next_due(&self) -> Option<Nanos> {
        match self.front.last() {
            Some(last) => Some(last.at),
            None => self.buckets.first_key_value().map(|(_, b)| b.min_at),
        }
    }

    /// Removes the next entry if it is due at `now`; the caller checks
    /// liveness and reports live ones with [`DelayHeap::forget_live`].
    pub(crate) fn pop_due(&mut self, now: Nanos) -> Option<Waiting<T>> {
        loop {
            if let Some(last) = self.front.last() {
                if last.at > now {
                    return None;
                }
                self.stored -= 1;
                return self.front.pop();
            }
            if self.front_tick.is_some() {
                self.front_tick = None;
            }
            let (&tick, bucket) = self.buckets.first_key_value()?;
            if bucket.min_at > now {
                return None;
            }
            let mut bucket = self.buckets.remove(&tick)?;
            bucket
                .entries
                .sort_unstable_by_key(|w| std::cmp::Reverse(w.key()));
            self.front = bucket.entries;
            self.front_tick = Some(tick);
        }
    }

    /// Takes every entry out (live or stale), earliest first, keeping the
    /// live count: the caller puts the live ones back with [`DelayHeap::reinsert`].
    pub(crate) fn drain_all(&mut self) -> Vec<Waiting<T>> {
        let live = self.live;
        let all = self.clear();
        self.live = live;
        all
    }

    /// Removes every entry (live or stale), earliest first.
    pub(crate) fn clear(&mut self) -> Vec<Waiting<T>> {
        let mut all: Vec<Waiting<T>> = std::mem::take(&mut self.front).into_iter().rev().collect();
        for (_, mut bucket) in std::mem::take(&mut self.buckets) {
            bucket.entries.sort_unstable_by_key(Waiting::key);
            all.append(&mut bucket.entries);
        }
        self.front_tick = None;
        self.live = 0;
        self.stored = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_due(d: &mut DelayHeap<&'static str>, now: Nanos) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(w) = d.pop_due(now) {
            d.forget_live(1);
            out.push(w.item);
        }
        out
    }

    const US: Nanos = 1_000;

    #[test]
    fn due_items_come_out_in_due_order_across_and_within_buckets() {
        let mut d = DelayHeap::new();
        d.push(2500 * US, "c");
        d.push(100 * US, "a2");
        d.push(100 * US, "a3");
        d.push(50 * US, "a1");
        d.push(1200 * US, "b");
        assert_eq!(d.next_due(), Some(50 * US));
        assert_eq!(drain_due(&mut d, 120 * US), ["a1", "a2", "a3"]);
        // Added for a time inside the front bucket: still in order.
        d.push(110 * US, "late-a");
        assert_eq!(drain_due(&mut d, 3000 * US), ["late-a", "b", "c"]);
        assert_eq!(d.live, 0);
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn drained_entries_keep_their_sequence_and_the_live_count() {
        let mut d = DelayHeap::new();
        let first = d.push(5 * US, "x");
        d.push(5 * US, "y");
        for i in 0..3000_u32 {
            d.push(10_000 * US + Nanos::from(i), "stale");
        }
        d.forget_live(3000);
        assert!(d.wants_sweep());
        let all = d.drain_all();
        assert_eq!(all.len(), 3002);
        assert_eq!(d.stored(), 0);
        for w in all.into_iter().filter(|w| w.item != "stale") {
            d.reinsert(w);
        }
        assert!(!d.wants_sweep());
        let w = d.pop_due(5 * US).map(|w| (w.item, w.seq));
        assert_eq!(
            w,
            Some(("x", first)),
            "order and sequence survive the sweep"
        );
        assert_eq!(d.clear().len(), 1);
    }
}
