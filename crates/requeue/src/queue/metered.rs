//! The per-item timestamps behind the latency, work-duration and
//! unfinished-work metrics; kept only when the queue has metrics.

use crate::metrics::QueueMetrics;
use std::time::Instant;

/// Per-slot timestamps, kept only when metrics are on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Times {
    pub(crate) added: Option<Instant>,
    started: Option<Instant>,
    /// Position in `Metered::in_flight` while processing.
    flight: usize,
}

#[derive(Debug)]
pub(crate) struct Metered {
    pub(crate) metrics: QueueMetrics,
    times: Vec<Times>,
    /// The slots being processed, so the 500 ms tick visits only them and
    /// not every queued item.
    in_flight: Vec<u32>,
}

impl Metered {
    pub(crate) fn new(metrics: QueueMetrics) -> Self {
        Metered {
            metrics,
            times: Vec::new(),
            in_flight: Vec::new(),
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

    /// Sum and maximum of the ages of in-flight items, in seconds.
    pub(crate) fn unfinished_work(&self, now: Instant) -> (f64, f64) {
        self.in_flight
            .iter()
            .filter_map(|&slot| self.times.get(slot as usize).and_then(|t| t.started))
            .map(|started| now.saturating_duration_since(started).as_secs_f64())
            .fold((0.0, 0.0), |(sum, max), age| {
                (sum + age, f64::max(max, age))
            })
    }

    pub(crate) fn times(&mut self, slot: u32) -> &mut Times {
        let i = slot as usize;
        if self.times.len() <= i {
            self.times.resize(i + 1, Times::default());
        }
        &mut self.times[i]
    }

    /// Records an item newly needing processing (client-go's add metric point).
    pub(crate) fn added(&mut self, slot: u32, now: Option<Instant>) {
        self.metrics.depth.inc();
        self.metrics.adds.inc();
        let times = self.times(slot);
        if times.added.is_none() {
            times.added = now;
        }
    }
}

/// Seconds from `from` to `to`, if both are known.
pub(crate) fn seconds_between(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(to?.saturating_duration_since(from?).as_secs_f64())
}
