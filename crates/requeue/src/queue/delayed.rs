//! The waiting items: buckets of one millisecond, sorted only when due.
//!
//! A binary heap of a million entries spends its time in cache misses on
//! every pop; here an add appends to the bucket of its millisecond (a
//! `BTreeMap` of buckets), and when a bucket comes due it is sorted once
//! and becomes the *front*, from which due items are taken in `(due, seq)`
//! order — the order client-go's heap yields. Entries are lazily deleted:
//! one whose slot no longer names its sequence is skipped.

use std::collections::BTreeMap;
use std::time::Instant;

/// One waiting entry; live while the item's record still names `seq`.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) item: T,
}

impl<T> Waiting<T> {
    fn key(&self) -> (Instant, u64) {
        (self.at, self.seq)
    }
}

#[derive(Debug)]
struct Bucket<T> {
    /// Earliest due time among the entries (possibly of a stale one).
    min_at: Instant,
    entries: Vec<Waiting<T>>,
}

/// Items waiting for their due time.
#[derive(Debug)]
pub(crate) struct DelayHeap<T> {
    /// Instant that bucket numbers count milliseconds from.
    epoch: Option<Instant>,
    buckets: BTreeMap<u64, Bucket<T>>,
    /// The bucket being taken from, sorted latest-first (the next is last).
    front: Vec<Waiting<T>>,
    /// Bucket number of `front`.
    front_tick: Option<u64>,
    live: usize,
    stored: usize,
    next_seq: u64,
}

impl<T> DelayHeap<T> {
    pub(crate) fn new() -> Self {
        DelayHeap {
            epoch: None,
            buckets: BTreeMap::new(),
            front: Vec::new(),
            front_tick: None,
            live: 0,
            stored: 0,
            next_seq: 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn tick(&mut self, at: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(at);
        // Times before the epoch (a fake clock set backwards) share bucket 0.
        u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds an entry; returns its sequence (never 0).
    pub(crate) fn push(&mut self, at: Instant, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let waiting = Waiting { at, seq, item };
        let tick = self.tick(at);
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
        self.live += 1;
        self.stored += 1;
        seq
    }

    /// Records that one live entry was superseded.
    pub(crate) fn mark_stale(&mut self) {
        self.live -= 1;
    }

    /// Sweeps stale entries out once they dominate.
    pub(crate) fn maybe_sweep(&mut self, mut is_live: impl FnMut(&T, u64) -> bool) {
        let stale = self.stored - self.live;
        if stale <= 1024 || stale <= self.live {
            return;
        }
        self.front.retain(|w| is_live(&w.item, w.seq));
        self.buckets.retain(|_, bucket| {
            bucket.entries.retain(|w| is_live(&w.item, w.seq));
            if let Some(min) = bucket.entries.iter().map(|w| w.at).min() {
                bucket.min_at = min;
            }
            !bucket.entries.is_empty()
        });
        self.stored = self.front.len()
            + self
                .buckets
                .values()
                .map(|b| b.entries.len())
                .sum::<usize>();
    }

    /// The earliest due time of a live entry, or (when the front is empty)
    /// of the next bucket, which may belong to a stale entry and so be early.
    pub(crate) fn next_due(&mut self, mut is_live: impl FnMut(&T, u64) -> bool) -> Option<Instant> {
        while let Some(last) = self.front.last() {
            if is_live(&last.item, last.seq) {
                return Some(last.at);
            }
            self.front.pop();
            self.stored -= 1;
        }
        self.front_tick = None;
        self.buckets.first_key_value().map(|(_, b)| b.min_at)
    }

    /// Removes the next entry if it is due at `now`; the caller checks
    /// liveness and calls [`DelayHeap::took_live`] for a live one.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Waiting<T>> {
        loop {
            if let Some(last) = self.front.last() {
                if last.at > now {
                    return None;
                }
                self.stored -= 1;
                return self.front.pop();
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

    /// Records that a popped entry was live.
    pub(crate) fn took_live(&mut self) {
        self.live -= 1;
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
    use std::time::Duration;

    fn drain_due(d: &mut DelayHeap<&'static str>, now: Instant) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(w) = d.pop_due(now) {
            d.took_live();
            out.push(w.item);
        }
        out
    }

    #[test]
    fn due_items_come_out_in_due_order_across_and_within_buckets() {
        let t0 = Instant::now();
        let mut d = DelayHeap::new();
        let us = |n| t0 + Duration::from_micros(n);
        d.push(us(2500), "c");
        d.push(us(100), "a2");
        d.push(us(100), "a3");
        d.push(us(50), "a1");
        d.push(us(1200), "b");
        assert_eq!(d.next_due(|_, _| true), Some(us(50)));
        assert_eq!(drain_due(&mut d, us(120)), ["a1", "a2", "a3"]);
        // Added for a time inside the front bucket: still in order.
        d.push(us(110), "late-a");
        assert_eq!(drain_due(&mut d, us(3000)), ["late-a", "b", "c"]);
        assert_eq!(d.len(), 0);
        assert_eq!(d.next_due(|_, _| true), None);
    }

    #[test]
    fn stale_entries_are_skipped_by_next_due_and_swept() {
        let t0 = Instant::now();
        let mut d = DelayHeap::new();
        let first = d.push(t0, "gone");
        d.push(t0 + Duration::from_millis(5), "kept");
        d.mark_stale();
        assert_eq!(
            d.pop_due(t0).map(|w| w.seq),
            Some(first),
            "the caller checks liveness"
        );
        assert_eq!(
            d.next_due(|_, seq| seq != first),
            Some(t0 + Duration::from_millis(5))
        );
        for i in 0..3000 {
            d.push(t0 + Duration::from_millis(10 + i), "x");
            d.mark_stale();
        }
        d.maybe_sweep(|item, _| *item == "kept");
        assert_eq!(d.stored, 1);
        assert_eq!(d.clear().len(), 1);
    }
}
