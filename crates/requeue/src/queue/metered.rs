//! The per-item timestamps behind the latency, work-duration and
//! unfinished-work metrics; kept (per shard) only when the queue has metrics.

use std::time::Instant;

/// One slot's timestamps.
#[derive(Debug, Default, Clone, Copy)]
struct Times {
    added: Option<Instant>,
    started: Option<Instant>,
    /// Position in `ShardTimes::in_flight` while processing.
    flight: usize,
}

/// The timestamps of one shard's slots, and which of them are in flight,
/// so the 500 ms tick visits only those and not every queued item.
#[derive(Debug, Default)]
pub(crate) struct ShardTimes {
    times: Vec<Times>,
    in_flight: Vec<u32>,
}

impl ShardTimes {
    fn times(&mut self, slot: u32) -> &mut Times {
        let i = slot as usize;
        if self.times.len() <= i {
            self.times.resize(i + 1, Times::default());
        }
        &mut self.times[i]
    }

    /// Clears a slot that was just (re)used.
    pub(crate) fn reset(&mut self, slot: u32) {
        if let Some(t) = self.times.get_mut(slot as usize) {
            t.added = None;
            t.started = None;
        }
    }

    /// Records an item newly needing processing (client-go's add metric
    /// point); the first such time since its last hand-out is kept.
    pub(crate) fn added(&mut self, slot: u32, now: Option<Instant>) {
        let times = self.times(slot);
        if times.added.is_none() {
            times.added = now;
        }
    }

    /// Records a hand-out at `now`; returns when the item was added.
    pub(crate) fn started(&mut self, slot: u32, now: Option<Instant>) -> Option<Instant> {
        let flight = self.in_flight.len();
        self.in_flight.push(slot);
        let times = self.times(slot);
        times.started = now;
        times.flight = flight;
        times.added.take()
    }

    /// Records the end of a processing; returns when it started.
    pub(crate) fn finished(&mut self, slot: u32) -> Option<Instant> {
        let times = self.times(slot);
        let (started, flight) = (times.started.take(), times.flight);
        if self.in_flight.get(flight) == Some(&slot) {
            self.in_flight.swap_remove(flight);
            if let Some(&moved) = self.in_flight.get(flight) {
                self.times(moved).flight = flight;
            }
        }
        started
    }

    /// Sum and maximum of the ages of this shard's in-flight items, in seconds.
    pub(crate) fn unfinished_work(&self, now: Instant) -> (f64, f64) {
        self.in_flight
            .iter()
            .filter_map(|&slot| self.times.get(slot as usize).and_then(|t| t.started))
            .map(|started| now.saturating_duration_since(started).as_secs_f64())
            .fold((0.0, 0.0), |(sum, max), age| {
                (sum + age, f64::max(max, age))
            })
    }
}

/// Seconds from `from` to `to`, if both are known.
pub(crate) fn seconds_between(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(to?.saturating_duration_since(from?).as_secs_f64())
}
