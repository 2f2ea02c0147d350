//! Building a [`WorkQueue`].

use super::core::Shared;
use super::timer::{UNFINISHED_WORK_PERIOD, wakers};
use super::{Key, WorkQueue};
use crate::clock::{self, Clock, SharedClock, deadline_after};
use crate::limiter::{self, RateLimiter};
use crate::metrics::{MetricsProvider, QueueMetrics};
use crate::sync::Arc;
use std::fmt;

/// Configures a [`WorkQueue`]: client-go's `TypedRateLimitingQueueConfig`
/// plus priorities' fairness.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use requeue::clock::FakeClock;
/// use requeue::limiter::ItemExponential;
/// use requeue::queue::WorkQueue;
///
/// let queue: WorkQueue<String> = WorkQueue::builder()
///     .name("deployments")
///     .clock(FakeClock::new())
///     .rate_limiter(ItemExponential::new(Duration::from_millis(5), Duration::from_secs(60)))
///     .fairness(Some(8))
///     .build();
/// assert_eq!(queue.name(), "deployments");
/// ```
pub struct WorkQueueBuilder<T: Key> {
    name: String,
    clock: Option<SharedClock>,
    limiter: Option<Box<dyn RateLimiter<T>>>,
    metrics: Option<Arc<dyn MetricsProvider>>,
    fairness: Option<u32>,
}

/// By default, after 32 hand-outs in a row that passed over an older item
/// of lower priority, the oldest item goes next.
pub const DEFAULT_FAIRNESS: u32 = 32;

impl<T: Key> Default for WorkQueueBuilder<T> {
    fn default() -> Self {
        WorkQueueBuilder {
            name: String::new(),
            clock: None,
            limiter: None,
            metrics: None,
            fairness: Some(DEFAULT_FAIRNESS),
        }
    }
}

impl<T: Key> fmt::Debug for WorkQueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueueBuilder")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("metrics", &self.metrics.is_some())
            .field("fairness", &self.fairness)
            .finish()
    }
}

impl<T: Key> WorkQueueBuilder<T> {
    /// Names the queue; metrics are only recorded for a named queue, as in client-go.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Measures time on `clock` (default: the real clock). The default rate
    /// limiter's token bucket uses it too.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The limiter behind `add_rate_limited`, `forget` and `num_requeues`
    /// (default: [`limiter::default_controller`] on the queue's clock).
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<T>) -> Self {
        self.limiter = Some(Box::new(limiter));
        self
    }

    /// Where the queue's metrics go (default: nowhere, at no cost).
    pub fn metrics(mut self, provider: Arc<dyn MetricsProvider>) -> Self {
        self.metrics = Some(provider);
        self
    }

    /// The anti-starvation budget for priorities: after `n` consecutive
    /// hand-outs that passed over an older, lower-priority item, the
    /// longest-waiting ready item goes next. `None` gives strict priority
    /// order (controller-runtime's behaviour, which can starve low
    /// priorities). Default: `Some(`[`DEFAULT_FAIRNESS`]`)`.
    pub fn fairness(mut self, n: Option<u32>) -> Self {
        self.fairness = n;
        self
    }

    /// Builds the queue. No thread or task is started: delays and the
    /// metrics tick are timers on the clock.
    pub fn build(self) -> WorkQueue<T> {
        let clock = self.clock.unwrap_or_else(clock::real);
        let limiter = self
            .limiter
            .unwrap_or_else(|| Box::new(limiter::default_controller_with_clock(clock.clone())));
        let metrics = match (&self.metrics, self.name.is_empty()) {
            (Some(provider), false) => Some(QueueMetrics::new(&**provider, &self.name)),
            _ => None,
        };
        let timed = metrics.is_some();
        let fairness = self.fairness;
        let name = self.name;
        let shared = Arc::new_cyclic(|weak| {
            let (promoter, ticker) = wakers(weak);
            Shared::new(clock, limiter, name, fairness, metrics, promoter, ticker)
        });
        if timed {
            shared.schedule_tick(deadline_after(shared.clock.now(), UNFINISHED_WORK_PERIOD));
        }
        WorkQueue { shared }
    }
}
