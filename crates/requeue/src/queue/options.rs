//! What an add asks for.

use std::time::Duration;

/// Options for [`WorkQueue::add_with`](super::WorkQueue::add_with)
/// (controller-runtime's `AddOpts`).
///
/// ```
/// use std::time::Duration;
/// use requeue::queue::AddOpts;
///
/// let opts = AddOpts::new().after(Duration::from_secs(5)).priority(-100);
/// assert_eq!(opts.after, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOpts {
    /// Make the item ready only after this long (`Some(ZERO)` counts as a
    /// retry for the metrics but adds at once, like client-go's `AddAfter(x, 0)`).
    pub after: Option<Duration>,
    /// Ask the rate limiter for a delay too; the shorter of that and
    /// `after` wins when both are given (controller-runtime's rule).
    pub rate_limited: bool,
    /// Higher is served first; 0 is the default and controller-runtime's
    /// `LowPriority` is -100.
    pub priority: i32,
}

impl AddOpts {
    /// The delay this add asks for once the rate limiter has answered
    /// (`limited`, for a rate-limited add): the shorter of `after` and the
    /// limiter's delay wins (controller-runtime's rule), and a zero delay
    /// is none. `None`: add at once. Every engine applies this one rule.
    ///
    /// ```
    /// use std::time::Duration;
    /// use requeue::queue::AddOpts;
    ///
    /// let ms = Duration::from_millis;
    /// let opts = AddOpts::new().after(ms(50)).rate_limited();
    /// assert_eq!(opts.delay(Some(ms(200))), Some(ms(50)));
    /// assert_eq!(opts.delay(Some(ms(10))), Some(ms(10)));
    /// assert_eq!(AddOpts::new().after(Duration::ZERO).delay(None), None);
    /// ```
    pub fn delay(&self, limited: Option<Duration>) -> Option<Duration> {
        let after = self.after.filter(|d| !d.is_zero());
        let delay = match (after, limited) {
            (Some(after), Some(limited)) => Some(after.min(limited)),
            (after, limited) => after.or(limited),
        };
        delay.filter(|d| !d.is_zero())
    }

    /// An immediate add at priority 0.
    pub const fn new() -> Self {
        AddOpts {
            after: None,
            rate_limited: false,
            priority: 0,
        }
    }

    /// Adds after `delay`.
    pub const fn after(mut self, delay: Duration) -> Self {
        self.after = Some(delay);
        self
    }

    /// Asks the rate limiter for the delay.
    pub const fn rate_limited(mut self) -> Self {
        self.rate_limited = true;
        self
    }

    /// Sets the priority.
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}
