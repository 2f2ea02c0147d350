//! A small log-linear latency histogram (about 1.6 % resolution, fixed
//! 30 KiB), so that recording a million latencies allocates nothing.

use std::time::Duration;

/// p50, p99 and max of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest value (exact).
    pub max: Duration,
}

/// Sub-buckets per power of two: 2^6 = 64.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64` nanosecond count.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of nanosecond values in log-linear buckets: exact below 64 ns,
/// then 64 buckets per power of two.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("summary", &self.summary())
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s records to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below which a fraction `q` (0–1) of the records lie
    /// (the middle of its bucket, never above the max); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bucket_range(index);
                return Duration::from_nanos((low + width / 2).min(self.max));
            }
        }
        Duration::from_nanos(self.max)
    }

    /// p50, p99 and max; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        (self.total > 0).then(|| LatencySummary {
            p50: self.quantile(0.50),
            p99: self.quantile(0.99),
            max: Duration::from_nanos(self.max),
        })
    }
}

fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    let mantissa = (ns >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (exp - SUB_BITS + 1) as usize * SUB + mantissa
}

/// Lowest value and width of bucket `index`.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < SUB {
        return (index as u64, 1);
    }
    let exp = (index / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (index % SUB) as u64;
    let shift = exp - SUB_BITS;
    ((SUB as u64 + mantissa) << shift, 1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for ns in [0, 1, 63, 64, 65, 127, 128, 1_000, 1 << 40, u64::MAX] {
            let b = bucket(ns);
            assert!(b >= last && b < BUCKETS, "{ns} -> {b}");
            let (low, width) = bucket_range(b);
            assert!(low <= ns && ns - low < width, "{ns} in [{low}, +{width})");
            last = b;
        }
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary().expect("recorded");
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms * 0.02;
        assert!(near(s.p50, 500.0), "{s:?}");
        assert!(near(s.p99, 990.0), "{s:?}");
        assert_eq!(s.max, Duration::from_millis(1000));
        let mut other = LatencyHistogram::new();
        other.record(Duration::from_secs(5));
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.summary().map(|s| s.max), Some(Duration::from_secs(5)));
        assert_eq!(LatencyHistogram::new().summary(), None);
    }
}
