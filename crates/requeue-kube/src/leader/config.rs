//! The elector's settings and their validation.

use std::time::Duration;

/// client-go's default `LeaseDuration`: how long others wait, after they
/// last saw the Lease change, before they may take it.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// client-go's default `RenewDeadline`: how long the leader keeps leading
/// without a successful renewal.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// client-go's default `RetryPeriod`: the pause between two attempts to
/// acquire or renew.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The longest identity or name accepted (a Kubernetes object name is at
/// most 253 characters; the holder identity is free text, bounded here so a
/// mistaken value cannot bloat every write).
pub const MAX_NAME_LEN: usize = 253;

/// A setting the elector cannot run safely with, reported by
/// [`LeaderElectorBuilder::build`](super::LeaderElectorBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The namespace, lease name or identity is empty.
    #[error("the {0} must not be empty")]
    Empty(&'static str),
    /// The namespace, lease name or identity is longer than [`MAX_NAME_LEN`].
    #[error("the {0} is longer than {MAX_NAME_LEN} characters")]
    TooLong(&'static str),
    /// The lease duration is not a whole number of seconds from 1 to
    /// `i32::MAX` (it is written as `leaseDurationSeconds`).
    #[error("the lease duration must be a whole number of seconds, at least 1 (got {0:?})")]
    LeaseDuration(Duration),
    /// The renew deadline is not shorter than the lease duration: the
    /// leader could still believe it leads after others may take over.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    RenewDeadlineNotBelowLeaseDuration {
        /// The renew deadline asked for.
        renew_deadline: Duration,
        /// The lease duration asked for.
        lease_duration: Duration,
    },
    /// The retry period is zero, or not shorter than the renew deadline
    /// (the leader would get at most one chance to renew).
    #[error(
        "the retry period ({retry_period:?}) must be above zero and shorter than the renew deadline ({renew_deadline:?})"
    )]
    RetryPeriod {
        /// The retry period asked for.
        retry_period: Duration,
        /// The renew deadline asked for.
        renew_deadline: Duration,
    },
}

/// The validated timing of an elector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) lease_duration: Duration,
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
}

impl Timing {
    /// Checks client-go's rules (lease duration > renew deadline > retry
    /// period > 0), plus what the Lease's integer field demands.
    pub(crate) fn validate(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Timing, ConfigError> {
        let whole = lease_duration.subsec_nanos() == 0
            && lease_duration.as_secs() >= 1
            && i32::try_from(lease_duration.as_secs()).is_ok();
        if !whole {
            return Err(ConfigError::LeaseDuration(lease_duration));
        }
        if renew_deadline >= lease_duration {
            return Err(ConfigError::RenewDeadlineNotBelowLeaseDuration {
                renew_deadline,
                lease_duration,
            });
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(ConfigError::RetryPeriod {
                retry_period,
                renew_deadline,
            });
        }
        Ok(Timing {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// `leaseDurationSeconds` as written (validated to fit).
    pub(crate) fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Checks one of the names.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(ConfigError::Empty(what))
    } else if value.len() > MAX_NAME_LEN {
        Err(ConfigError::TooLong(what))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_go_defaults_are_valid_and_unsafe_timings_are_not() {
        assert!(
            Timing::validate(
                DEFAULT_LEASE_DURATION,
                DEFAULT_RENEW_DEADLINE,
                DEFAULT_RETRY_PERIOD
            )
            .is_ok()
        );
        let s = Duration::from_secs;
        assert!(matches!(
            Timing::validate(s(10), s(10), s(2)),
            Err(ConfigError::RenewDeadlineNotBelowLeaseDuration { .. })
        ));
        assert!(matches!(
            Timing::validate(s(15), s(10), s(10)),
            Err(ConfigError::RetryPeriod { .. })
        ));
        assert!(matches!(
            Timing::validate(s(15), s(10), Duration::ZERO),
            Err(ConfigError::RetryPeriod { .. })
        ));
        assert!(matches!(
            Timing::validate(
                Duration::from_millis(1500),
                s(1),
                Duration::from_millis(100)
            ),
            Err(ConfigError::LeaseDuration(_))
        ));
        assert_eq!(
            check_name("identity", ""),
            Err(ConfigError::Empty("identity"))
        );
        assert_eq!(
            check_name("identity", &"x".repeat(254)),
            Err(ConfigError::TooLong("identity"))
        );
    }
}
