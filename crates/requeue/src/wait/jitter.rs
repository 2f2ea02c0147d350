//! Randomised durations and float scaling that never panic.

use std::time::Duration;

/// A random duration in `[duration, duration * (1 + max_factor))`
/// (apimachinery's `wait.Jitter`).
///
/// As upstream, a `max_factor` of zero or less means `1.0` **here only**:
/// every loop in this module treats jitter `<= 0` as "no jitter". The
/// result saturates at [`Duration::MAX`].
///
/// ```
/// use std::time::Duration;
/// let d = requeue::wait::jitter(Duration::from_secs(1), 0.5);
/// assert!(d >= Duration::from_secs(1) && d < Duration::from_millis(1500));
/// ```
pub fn jitter(duration: Duration, max_factor: f64) -> Duration {
    jitter_with(duration, max_factor, fastrand::f64())
}

/// [`jitter`] with the random sample in `[0, 1)` supplied by the caller.
pub fn jitter_with(duration: Duration, max_factor: f64, sample: f64) -> Duration {
    let factor = if max_factor <= 0.0 { 1.0 } else { max_factor };
    duration.saturating_add(scale(duration, sample * factor))
}

/// `duration * factor`, truncated to whole nanoseconds; negative or NaN
/// results are zero and too large ones saturate.
pub(crate) fn scale(duration: Duration, factor: f64) -> Duration {
    let nanos = duration.as_nanos() as f64 * factor;
    if nanos.is_nan() || nanos <= 0.0 {
        Duration::ZERO
    } else if nanos < u64::MAX as f64 {
        Duration::from_nanos(nanos as u64)
    } else {
        Duration::try_from_secs_f64(nanos / 1e9).unwrap_or(Duration::MAX)
    }
}

/// The loops' rule: jitter only when the factor is positive.
pub(crate) fn jitter_if_positive(duration: Duration, factor: f64) -> Duration {
    if factor > 0.0 {
        jitter(duration, factor)
    } else {
        duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        let base = Duration::from_millis(100);
        for _ in 0..1000 {
            let d = jitter(base, 0.25);
            assert!(d >= base && d < Duration::from_millis(125), "{d:?}");
        }
    }

    #[test]
    fn jitter_with_a_non_positive_factor_means_factor_one() {
        let base = Duration::from_secs(1);
        assert_eq!(jitter_with(base, 0.0, 0.5), Duration::from_millis(1500));
        assert_eq!(jitter_with(base, -3.0, 0.5), Duration::from_millis(1500));
        assert_eq!(jitter_if_positive(base, 0.0), base);
        assert_eq!(jitter_if_positive(base, -1.0), base);
    }

    #[test]
    fn scaling_saturates_and_never_goes_negative() {
        assert_eq!(scale(Duration::MAX, 2.0), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(1), -2.0), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(1), f64::NAN), Duration::ZERO);
        assert_eq!(
            scale(Duration::from_secs(3), 2.5),
            Duration::from_millis(7500)
        );
        assert_eq!(jitter_with(Duration::MAX, 1.0, 0.9), Duration::MAX);
    }
}
