//! The figures on which requeue is compared with client-go, and requeue's
//! advantage on each ("x client-go").

use crate::{Measurement, Workload, report};
use std::time::Duration;

/// One figure of a [`Measurement`] that is compared across engines
/// ([`Workload::compared_figures`] says which ones a workload compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Figure {
    /// The workload's rate in its unit ([`Workload::unit`]): ops/s, items/s
    /// (W3, W4), processed/s (W5), adds/s (W6), keys/s (W8).
    Rate,
    /// Peak resident set size of the process (VmHWM), in bytes.
    PeakRss,
    /// W6: median lateness, in seconds.
    LatencyP50,
    /// W6: 99th-percentile lateness, in seconds.
    LatencyP99,
    /// CPU time of the timed part, in seconds.
    Cpu,
    /// Wall time of the timed part, in seconds.
    Wall,
}

impl Figure {
    /// The field of a `requeue bench --json` row that holds this figure.
    pub const fn json_field(self, workload: Workload) -> &'static str {
        match self {
            Figure::Rate => match workload {
                Workload::W3 | Workload::W4 => "items_per_sec",
                _ => "ops_per_sec",
            },
            Figure::PeakRss => "peak_rss_bytes",
            Figure::LatencyP50 => "latency_p50_seconds",
            Figure::LatencyP99 => "latency_p99_seconds",
            Figure::Cpu => "cpu_seconds",
            Figure::Wall => "wall_seconds",
        }
    }

    /// A short name for tables: the rate's unit, `peak RSS`, `lateness p50` …
    pub const fn label(self, workload: Workload) -> &'static str {
        match self {
            Figure::Rate => workload.unit(),
            Figure::PeakRss => "peak RSS",
            Figure::LatencyP50 => "lateness p50",
            Figure::LatencyP99 => "lateness p99",
            Figure::Cpu => "CPU",
            Figure::Wall => "wall",
        }
    }

    /// Whether more is better (rates); otherwise less is (memory, lateness, time).
    pub const fn higher_is_better(self) -> bool {
        matches!(self, Figure::Rate)
    }

    /// The figure's value in `m` (per second, bytes or seconds); `None`
    /// where `m` has no such figure.
    pub fn value(self, m: &Measurement) -> Option<f64> {
        match self {
            Figure::Rate => Some(m.ops_per_sec()),
            Figure::PeakRss => m.peak_rss_bytes.map(|b| b as f64),
            Figure::LatencyP50 => m.latency.map(|l| l.p50.as_secs_f64()),
            Figure::LatencyP99 => m.latency.map(|l| l.p99.as_secs_f64()),
            Figure::Cpu => m.cpu.map(|d| d.as_secs_f64()),
            Figure::Wall => Some(m.wall.as_secs_f64()),
        }
    }

    /// `value` for a table: `1.55 M items/s`, `145 MiB`, `212.86 ms`.
    pub fn format(self, workload: Workload, value: f64) -> String {
        match self {
            Figure::Rate => format!("{} {}", report::si(value), workload.unit()),
            Figure::PeakRss => format!("{:.0} MiB", value / (1024.0 * 1024.0)),
            Figure::LatencyP50 | Figure::LatencyP99 | Figure::Cpu | Figure::Wall => {
                Duration::try_from_secs_f64(value).map_or_else(|_| "-".into(), report::duration)
            }
        }
    }

    /// requeue's advantage over `other` on this figure: `requeue / other`
    /// for a rate, `other / requeue` for memory, lateness and time, so
    /// that above 1 always means requeue did better. `None` when either
    /// lacks the figure or the ratio is not a finite number (a zero).
    pub fn advantage(self, requeue: &Measurement, other: &Measurement) -> Option<f64> {
        let (ours, theirs) = (self.value(requeue)?, self.value(other)?);
        let ratio = if self.higher_is_better() {
            ours / theirs
        } else {
            theirs / ours
        };
        ratio.is_finite().then_some(ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_is_above_one_when_requeue_does_better() {
        let mut fast = Measurement::new("W3", "requeue", 2_000, 2_000, Duration::from_millis(1));
        fast.peak_rss_bytes = Some(100 << 20);
        let mut slow = Measurement::new("W3", "client-go", 1_000, 1_000, Duration::from_millis(1));
        slow.peak_rss_bytes = Some(150 << 20);
        assert_eq!(Figure::Rate.advantage(&fast, &slow), Some(2.0));
        assert_eq!(Figure::PeakRss.advantage(&fast, &slow), Some(1.5));
        assert_eq!(Figure::Cpu.advantage(&fast, &slow), None);
        assert_eq!(Figure::Rate.json_field(Workload::W3), "items_per_sec");
        assert_eq!(Figure::Rate.label(Workload::W5), "processed/s");
        assert_eq!(Figure::Rate.format(Workload::W3, 1.55e6), "1.55 M items/s");
        assert_eq!(
            Figure::PeakRss.format(Workload::W3, 145.0 * 1024.0 * 1024.0),
            "145 MiB"
        );
        let mut zero = slow.clone();
        zero.peak_rss_bytes = Some(0);
        assert_eq!(Figure::PeakRss.advantage(&zero, &slow), None);
    }
}
