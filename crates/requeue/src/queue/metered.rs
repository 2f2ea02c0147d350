//! The per-item timestamps behind the latency, work-duration and
//! unfinished-work metrics; kept (per shard) only when the queue has metrics.
//!
//! Two 8-byte stamps per slot (nanoseconds after the queue's epoch, plus
//! one, so that 0 means "none"), in an array parallel to the shard's slots:
//! the tick that publishes unfinished work walks that array in order
//! (a few milliseconds for millions of slots, twice a second) rather than
//! every hand-out and done keeping a list of the items in flight.

use std::time::Instant;

/// One slot's stamps: when it was added (until handed out) and when its
/// current processing started.
#[derive(Debug, Default, Clone, Copy)]
struct Stamps {
    added: u64,
    started: u64,
}

/// The stamps of one shard's slots.
#[derive(Debug)]
pub(crate) struct ShardTimes {
    epoch: Instant,
    /// Grows to the highest slot stamped, so at most the shard's slab
    /// length; cleared when the shard gives its slab back.
    stamps: Vec<Stamps>,
}

impl ShardTimes {
    pub(crate) fn new(epoch: Instant) -> Self {
        ShardTimes {
            epoch,
            stamps: Vec::new(),
        }
    }

    fn encode(&self, at: Option<Instant>) -> u64 {
        at.map_or(0, |at| {
            let nanos = at.saturating_duration_since(self.epoch).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
        })
    }

    fn stamps(&mut self, slot: u32) -> &mut Stamps {
        let i = slot as usize;
        if self.stamps.len() <= i {
            self.stamps.resize(i + 1, Stamps::default());
        }
        &mut self.stamps[i]
    }

    /// Clears a slot that was just (re)used.
    pub(crate) fn reset(&mut self, slot: u32) {
        if let Some(s) = self.stamps.get_mut(slot as usize) {
            *s = Stamps::default();
        }
    }

    /// Forgets every slot (the shard gave its memory back).
    pub(crate) fn clear(&mut self) {
        self.stamps = Vec::new();
    }

    /// Records an item newly needing processing (client-go's add metric
    /// point); the first such time since its last hand-out is kept.
    pub(crate) fn added(&mut self, slot: u32, now: Option<Instant>) {
        let now = self.encode(now);
        let s = self.stamps(slot);
        if s.added == 0 {
            s.added = now;
        }
    }

    /// Records a hand-out at `now`; returns how long the item waited, in seconds.
    pub(crate) fn started(&mut self, slot: u32, now: Option<Instant>) -> Option<f64> {
        let now = self.encode(now);
        let s = self.stamps(slot);
        let added = std::mem::take(&mut s.added);
        s.started = now;
        seconds(added, now)
    }

    /// Records the end of a processing at `now`; returns how long it took, in seconds.
    pub(crate) fn finished(&mut self, slot: u32, now: Option<Instant>) -> Option<f64> {
        let now = self.encode(now);
        let started = std::mem::take(&mut self.stamps(slot).started);
        seconds(started, now)
    }

    /// Sum and maximum of the ages of this shard's in-flight items, in seconds.
    pub(crate) fn unfinished_work(&self, now: Instant) -> (f64, f64) {
        let now = self.encode(Some(now));
        self.stamps
            .iter()
            .filter_map(|s| seconds(s.started, now))
            .fold((0.0, 0.0), |(sum, max), age| {
                (sum + age, f64::max(max, age))
            })
    }
}

/// Seconds between two stamps, if both are set.
fn seconds(from: u64, to: u64) -> Option<f64> {
    (from != 0 && to != 0).then(|| to.saturating_sub(from) as f64 / 1e9)
}
