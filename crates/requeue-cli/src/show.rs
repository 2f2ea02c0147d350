//! What the command shows of what it was given: Redis URLs without their
//! credentials, long input cut short, and an error with its causes on one
//! line, each cause once.
//!
//! The rule for error messages (the same as `requeue_redis::error`'s): a
//! layer's message says what failed at that layer and never repeats its
//! cause; causes are attached with `anyhow`'s `context` (never formatted
//! into the outer message) and printed by [`one_line`], which walks the
//! chain and skips a cause whose text the previous layer already ends with
//! (`redis::RedisError` shows its `io::Error` and also returns it as its
//! source).

use requeue_redis::error::{Chain, shorten};
use requeue_redis::redact::redact_url;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A Redis URL as the user gave it (`--redis` or `REDIS_URL`). Connect
/// with [`expose`](Self::expose); `Display` and `Debug` show it without
/// credentials and at most 100 characters long.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL with its credentials, for the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        RedisUrl(url)
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(RedisUrl(url.to_string()))
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shorten(&redact_url(&self.0)))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.to_string()).finish()
    }
}

/// A PostgreSQL URL as the user gave it (`--postgres` or `DATABASE_URL`):
/// the same wrapper, credentials hidden in `Display` and `Debug`.
pub type PgUrl = RedisUrl;

/// A user's input as a message shows it: without credentials if it looks
/// like a URL, at most 100 characters.
pub fn input(text: &str) -> Cow<'_, str> {
    if text.contains("://") || text.contains('@') {
        Cow::Owned(shorten(&redact_url(text)).into_owned())
    } else {
        shorten(text)
    }
}

/// `text` with every word that contains `://` redacted as a URL: a last
/// guard for messages that may quote a URL (clap's errors quote the
/// arguments they reject).
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.contains("://") {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The error and its causes on one line, each cause once, URLs redacted.
pub fn one_line(error: &anyhow::Error) -> String {
    let root: &(dyn std::error::Error + 'static) = error.as_ref();
    redact_urls_in(&Chain(root).to_string()).replace('\n', " ")
}

/// A failed Redis call as one error: a timeout names the server and how
/// long it was given (an I/O timeout otherwise reads as `Resource
/// temporarily unavailable`); anything else keeps its cause under `what`.
pub fn redis_failure(
    url: &RedisUrl,
    what: &str,
    error: redis::RedisError,
    within: Duration,
) -> anyhow::Error {
    if error.is_timeout() {
        did_not_answer(url, within)
    } else {
        anyhow::Error::new(error).context(format!("{what} {url}"))
    }
}

/// `Redis at URL did not answer within N s`.
pub fn did_not_answer(url: &RedisUrl, within: Duration) -> anyhow::Error {
    anyhow::anyhow!("Redis at {url} did not answer within {}", seconds(within))
}

/// `2 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_shows_no_password_in_display_or_debug() {
        let url: RedisUrl = "redis://admin:s3cretpass@127.0.0.1:1/"
            .parse()
            .unwrap_or_else(|never| match never {});
        assert_eq!(url.to_string(), "redis://***@127.0.0.1:1/");
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("s3cretpass") && debug.contains("***"),
            "{debug}"
        );
        assert_eq!(url.expose(), "redis://admin:s3cretpass@127.0.0.1:1/");
    }

    #[test]
    fn messages_redact_and_shorten() {
        let text = "error: unexpected argument 'redis://:s3cretpass@host:6379' found\n\nUsage: x\n";
        let shown = redact_urls_in(text);
        assert_eq!(
            shown,
            "error: unexpected argument 'redis://***@host:6379' found\n\nUsage: x\n"
        );
        assert_eq!(input(&"q".repeat(10_000)).chars().count(), 100);
        assert_eq!(input("u:pw@host"), "***@host");
        assert_eq!(input("W99"), "W99");
    }

    #[test]
    fn each_cause_once_and_timeouts_named() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let url = RedisUrl::from("redis://:s3cretpass@127.0.0.1:1/".to_string());
        let error = redis_failure(
            &url,
            "cannot reach Redis at",
            io.into(),
            Duration::from_secs(2),
        );
        assert_eq!(
            one_line(&error),
            "cannot reach Redis at redis://***@127.0.0.1:1/: Connection refused (os error 111)"
        );
        let frozen = std::io::Error::from(std::io::ErrorKind::WouldBlock);
        let error = redis_failure(&url, "x", frozen.into(), Duration::from_secs(2));
        assert_eq!(
            one_line(&error),
            "Redis at redis://***@127.0.0.1:1/ did not answer within 2 s"
        );
    }
}
