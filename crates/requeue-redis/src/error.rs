//! The crate's error type, and how to print an error chain.
//!
//! The rule for messages: an error's `Display` says what failed at its own
//! layer and never repeats its [`source`](std::error::Error::source); the
//! causes are reached through `source()` and printed once each, joined by
//! `: ` (as [`Chain`] and `anyhow`'s `{:#}` do). Input a user gave (a
//! queue name, a URL) is shown at most [`SHOWN_CHARS`] characters long,
//! URLs without their credentials (see [`redact`](crate::redact)).

use crate::redact::RedactedUrl;
use std::borrow::Cow;
use std::fmt;

/// At most this many characters of a user's input appear in a message.
pub const SHOWN_CHARS: usize = 100;

/// What can go wrong talking to a queue in Redis.
///
/// Expected outcomes (a deduplicated add, a lost lease, an empty queue) are
/// not errors: the scripts report them as codes in the replies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue name cannot be used in a Redis key (see
    /// [`QueueKeys::new`](crate::keys::QueueKeys::new)).
    #[error("invalid queue name {}: {reason}", shorten_quoted(.name))]
    InvalidQueueName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No connection to Redis could be made.
    #[error("cannot connect to Redis at {}", shorten(.url.as_str()))]
    Connect {
        /// The address tried, without its credentials.
        url: RedactedUrl,
        /// Why it failed.
        #[source]
        source: redis::RedisError,
    },
    /// A builder setting is out of range.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// Redis or the connection reported an error.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// A key of the queue holds something the scripts never write there
    /// (a key of the wrong type, or a field that should hold a number).
    /// The script stopped before its first write, so nothing changed;
    /// `requeue repair` or a fix by hand clears it.
    #[error("queue state is corrupt: {}", describe_corruption(key, field.as_deref(), problem))]
    Corrupt {
        /// The Redis key, e.g. `rq:{emails}:meta`.
        key: String,
        /// The hash field, if the problem is one field (for `failures`,
        /// the stored item, shown lossily as UTF-8).
        field: Option<String>,
        /// What is wrong, e.g. "is not an integer".
        problem: String,
    },
    /// A reply had a shape the scripts never produce (a different script
    /// version, or a key of the queue overwritten by something else).
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
}

/// `key field "f" problem`, with a long field shortened.
fn describe_corruption(key: &str, field: Option<&str>, problem: &str) -> String {
    match field {
        Some(field) => format!("{key} field {:?} {problem}", shorten(field)),
        None => format!("{key} {problem}"),
    }
}

impl Error {
    /// The [`Error::Corrupt`] a script reported (an error reply
    /// `REQUEUE_CORRUPT <key> <hex field or -> <problem>`), if that is
    /// what `error` is.
    pub(crate) fn corruption(error: &redis::RedisError) -> Option<Error> {
        if error.code() != Some("REQUEUE_CORRUPT") {
            return None;
        }
        Self::parse_corruption(error.detail()?)
    }

    /// The [`Error::Corrupt`] in the detail of a `REQUEUE_CORRUPT` reply.
    fn parse_corruption(detail: &str) -> Option<Error> {
        // Redis appends " script: <sha>, on @user_script:<line>." to errors
        // raised by a script.
        let detail = detail.split(" script: ").next().unwrap_or(detail);
        let mut words = detail.splitn(3, ' ');
        let key = words.next()?.to_owned();
        let field = match words.next()? {
            "-" => None,
            hex => Some(String::from_utf8_lossy(&unhex(hex)?).into_owned()),
        };
        let problem = words
            .next()
            .unwrap_or("is malformed")
            .trim_end_matches('.')
            .to_owned();
        Some(Error::Corrupt {
            key,
            field,
            problem,
        })
    }
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `text`, cut to [`SHOWN_CHARS`] characters (the first 99 and `…`) when
/// it is longer.
///
/// ```
/// use requeue_redis::error::{SHOWN_CHARS, shorten};
///
/// assert_eq!(shorten("emails"), "emails");
/// let long = "x".repeat(10_000);
/// assert_eq!(shorten(&long).chars().count(), SHOWN_CHARS);
/// assert!(shorten(&long).ends_with('…'));
/// ```
pub fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = text
                .char_indices()
                .nth(SHOWN_CHARS - 1)
                .map_or(text.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..keep]))
        }
    }
}

/// `text` quoted and escaped as `{:?}` would, cut to at most
/// [`SHOWN_CHARS`] characters.
fn shorten_quoted(text: &str) -> String {
    shorten(&format!("{text:?}")).into_owned()
}

/// An error and its causes on one line, each cause once: `Display` walks
/// [`source`](std::error::Error::source) and joins the messages with `: `,
/// skipping a cause whose message the previous one already ends with.
///
/// The skip is for errors of other crates that show their source in their
/// own message *and* return it from `source()` — `redis::RedisError` does
/// (an I/O failure displays as `Connection refused (os error 111)` and has
/// that `io::Error` as its source), so a plain walk would print it twice.
///
/// ```
/// use requeue_redis::error::Chain;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let redis = redis::RedisError::from(io);
/// assert_eq!(Chain(&redis).to_string(), "refused");
/// ```
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corruption_reply_names_key_field_and_problem_once() {
        let error = Error::parse_corruption(
            "rq:{q}:failures 6e732f61 is not an integer script: 1234, on @user_script:80.",
        )
        .expect("recognised");
        assert_eq!(
            error.to_string(),
            "queue state is corrupt: rq:{q}:failures field \"ns/a\" is not an integer"
        );
        assert_eq!(
            Error::parse_corruption("rq:{q}:owners - is a string where a hash belongs")
                .map(|e| e.to_string())
                .as_deref(),
            Some("queue state is corrupt: rq:{q}:owners is a string where a hash belongs")
        );
        assert!(Error::parse_corruption("rq:{q}:failures zz is not an integer").is_none());
        assert!(Error::parse_corruption("").is_none());
    }

    fn refused() -> redis::RedisError {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )
        .into()
    }

    #[test]
    fn each_cause_is_shown_once() {
        let error = Error::Connect {
            url: RedactedUrl::new("redis://admin:s3cretpass@127.0.0.1:1/"),
            source: refused(),
        };
        let text = Chain(&error).to_string();
        assert_eq!(
            text,
            "cannot connect to Redis at redis://***@127.0.0.1:1/: Connection refused (os error 111)"
        );
        let debug = format!("{error:?}");
        assert!(!debug.contains("s3cretpass"), "{debug}");
        assert!(!format!("{error}").contains("s3cretpass"));
        // A transparent wrapper: once, not `X: X`.
        let error = Error::Redis(refused());
        assert_eq!(
            Chain(&error).to_string(),
            "Connection refused (os error 111)"
        );
    }

    #[test]
    fn long_names_are_shown_once_and_short() {
        let name = "q".repeat(10_000);
        let error = Error::InvalidQueueName {
            name: name.clone(),
            reason: "it is longer than 200 bytes",
        };
        let text = Chain(&error).to_string();
        assert!(text.len() < 200, "{text}");
        assert_eq!(text.matches(&"q".repeat(50)).count(), 1, "{text}");
        assert!(text.matches('q').count() <= 100, "{text}");
        assert!(text.contains('…'), "{text}");
        assert_eq!(shorten("é".repeat(150).as_str()).chars().count(), 100);
        assert_eq!(shorten(&"é".repeat(100)), "é".repeat(100));
    }
}
