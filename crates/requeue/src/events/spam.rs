//! The spam filter: a token bucket per event source and object
//! (client-go's `EventSourceObjectSpamFilter`).

use super::lru::Lru;
use crate::clock::SharedClock;
use std::time::Instant;

/// client-go's `defaultSpamBurst`.
pub const DEFAULT_SPAM_BURST: u32 = 25;
/// client-go's `defaultSpamQPS`: one event per five minutes.
pub const DEFAULT_SPAM_QPS: f64 = 1.0 / 300.0;

/// One key's bucket: x/time/rate's `Allow` (take a token only if one is there).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Decides, per spam key, whether an event may pass: each key has a bucket
/// that starts full with `burst` tokens and refills at `qps` per second on
/// the injected clock. The buckets live in an LRU of `cache_size` keys; a
/// key evicted and seen again starts full, as upstream.
#[derive(Debug)]
pub(crate) struct SpamFilter {
    /// At most `cache_size` keys (client-go's 4096), least recently used evicted.
    buckets: Lru<String, Bucket>,
    qps: f64,
    burst: f64,
    clock: SharedClock,
}

impl SpamFilter {
    pub(crate) fn new(cache_size: usize, qps: f64, burst: u32, clock: SharedClock) -> Self {
        SpamFilter {
            buckets: Lru::new(cache_size),
            qps: if qps.is_finite() && qps > 0.0 {
                qps
            } else {
                0.0
            },
            burst: f64::from(burst),
            clock,
        }
    }

    /// Whether the event with `key` must be skipped (no token left). Every
    /// call refreshes the key's place in the cache, as upstream's `Filter`.
    pub(crate) fn skip(&mut self, key: &str) -> bool {
        let now = self.clock.now();
        let (burst, qps) = (self.burst, self.qps);
        if self.buckets.get(key).is_none() {
            self.buckets.add(
                key.to_string(),
                Bucket {
                    tokens: burst,
                    last: now,
                },
            );
        }
        let Some(bucket) = self.buckets.get(key) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * qps).min(burst);
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_burst_of_25_passes_then_one_per_five_minutes() {
        let clock = FakeClock::new();
        let mut filter = SpamFilter::new(
            4096,
            DEFAULT_SPAM_QPS,
            DEFAULT_SPAM_BURST,
            Arc::new(clock.clone()),
        );
        let passed = (0..30).filter(|_| !filter.skip("pod-a")).count();
        assert_eq!(passed, 25, "the 26th rapid event is skipped");
        clock.advance(Duration::from_secs(299));
        assert!(filter.skip("pod-a"));
        clock.advance(Duration::from_secs(1));
        assert!(!filter.skip("pod-a"), "one token after 300 s");
        assert!(filter.skip("pod-a"));
        assert!(!filter.skip("pod-b"), "keys have their own buckets");
    }

    #[test]
    fn a_burst_of_one_filters_the_second_event() {
        let clock = FakeClock::new();
        let mut filter = SpamFilter::new(16, DEFAULT_SPAM_QPS, 1, Arc::new(clock));
        assert!(!filter.skip("k"));
        assert!(filter.skip("k"));
    }
}
