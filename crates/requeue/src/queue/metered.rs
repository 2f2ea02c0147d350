//! The per-item timestamps behind the latency, work-duration and
//! unfinished-work metrics; kept only when the queue has metrics.

use crate::metrics::QueueMetrics;
use std::time::Instant;

/// Per-slot timestamps, kept only when metrics are on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Times {
    pub(crate) added: Option<Instant>,
    pub(crate) started: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Metered {
    pub(crate) metrics: QueueMetrics,
    pub(crate) times: Vec<Times>,
}

impl Metered {
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
