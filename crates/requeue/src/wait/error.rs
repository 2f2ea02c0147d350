//! Why a wait ended without success.

use std::error::Error;
use std::fmt;

/// Why a poll or retry loop ended without its condition being met.
///
/// Upstream's legacy functions could only say "timed out waiting for the
/// condition"; every requeue loop tells the cases apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError<E> {
    /// The timeout passed before the condition was met.
    TimedOut,
    /// The stop signal fired before the condition was met.
    Stopped,
    /// A bounded retry used all its attempts (`Backoff::steps`).
    Exhausted,
    /// The condition returned this error.
    Condition(E),
}

impl<E> WaitError<E> {
    /// Whether the wait was cut short (timed out, stopped or out of
    /// attempts) rather than failed by the condition — apimachinery's
    /// `wait.Interrupted`.
    pub fn is_interrupted(&self) -> bool {
        self.interruption().is_some()
    }

    /// The kind of interruption, or `None` for a condition error.
    pub fn interruption(&self) -> Option<Interrupted> {
        match self {
            WaitError::TimedOut => Some(Interrupted::TimedOut),
            WaitError::Stopped => Some(Interrupted::Stopped),
            WaitError::Exhausted => Some(Interrupted::Exhausted),
            WaitError::Condition(_) => None,
        }
    }

    /// The condition's error, if that is what ended the wait.
    pub fn condition_error(&self) -> Option<&E> {
        match self {
            WaitError::Condition(e) => Some(e),
            _ => None,
        }
    }

    /// Converts the condition's error, keeping interruptions as they are.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> WaitError<F> {
        match self {
            WaitError::TimedOut => WaitError::TimedOut,
            WaitError::Stopped => WaitError::Stopped,
            WaitError::Exhausted => WaitError::Exhausted,
            WaitError::Condition(e) => WaitError::Condition(f(e)),
        }
    }
}

impl<E: fmt::Display> fmt::Display for WaitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Condition(e) => e.fmt(f),
            _ => f.write_str("condition not met"),
        }
    }
}

impl<E: Error + 'static> Error for WaitError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            WaitError::TimedOut => Some(&Interrupted::TimedOut),
            WaitError::Stopped => Some(&Interrupted::Stopped),
            WaitError::Exhausted => Some(&Interrupted::Exhausted),
            WaitError::Condition(e) => e.source(),
        }
    }
}

/// The ways a wait can be cut short; found in the `source()` chain of a
/// [`WaitError`], so [`is_interrupted`] works through wrapping errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Interrupted {
    /// The timeout passed.
    #[error("timed out waiting for the condition")]
    TimedOut,
    /// The stop signal fired.
    #[error("stopped before the condition was met")]
    Stopped,
    /// All attempts were used.
    #[error("gave up after the last attempt")]
    Exhausted,
}

/// Whether `err`, or any error in its `source()` chain, is an
/// [`Interrupted`] — apimachinery's `wait.Interrupted(err)`. Wrappers that
/// do not expose their cause through `source()` hide it, as upstream's
/// non-unwrapping wrappers do.
pub fn is_interrupted(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<Interrupted>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Wrapping(#[source] Box<dyn Error + Send + Sync>);

    #[derive(Debug, thiserror::Error)]
    #[error("opaque: {0}")]
    struct Opaque(String);

    #[test]
    fn interrupted_is_true_for_timeouts_stops_and_exhaustion_even_when_wrapped() {
        let timed_out: WaitError<std::io::Error> = WaitError::TimedOut;
        assert!(is_interrupted(&timed_out));
        assert!(is_interrupted(&WaitError::<std::io::Error>::Stopped));
        assert!(is_interrupted(&WaitError::<std::io::Error>::Exhausted));
        assert!(is_interrupted(&Interrupted::TimedOut));
        assert!(is_interrupted(&Wrapping(Box::new(timed_out.clone_kind()))));
    }

    #[test]
    fn interrupted_is_false_for_condition_errors_and_opaque_wrappers() {
        let cause = std::io::Error::other("boom");
        let failed: WaitError<std::io::Error> = WaitError::Condition(cause);
        assert!(!is_interrupted(&failed));
        assert!(!failed.is_interrupted());
        assert_eq!(failed.to_string(), "boom");
        assert!(!is_interrupted(&Opaque(Interrupted::TimedOut.to_string())));
        assert!(!is_interrupted(&std::io::Error::other("other")));
    }

    #[test]
    fn the_message_chain_says_why() {
        let e: WaitError<std::io::Error> = WaitError::Stopped;
        let source = e.source().map(ToString::to_string);
        assert_eq!(e.to_string(), "condition not met");
        assert_eq!(
            source.as_deref(),
            Some("stopped before the condition was met")
        );
        assert_eq!(e.interruption(), Some(Interrupted::Stopped));
        assert_eq!(
            WaitError::<u8>::Condition(3).map(u32::from),
            WaitError::Condition(3)
        );
    }

    impl WaitError<std::io::Error> {
        fn clone_kind(&self) -> WaitError<std::io::Error> {
            self.interruption()
                .map_or(WaitError::Exhausted, |i| match i {
                    Interrupted::TimedOut => WaitError::TimedOut,
                    Interrupted::Stopped => WaitError::Stopped,
                    Interrupted::Exhausted => WaitError::Exhausted,
                })
        }
    }
}
