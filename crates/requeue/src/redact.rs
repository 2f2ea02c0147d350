//! Server URLs without their credentials, for messages, logs and `Debug`:
//! the one redaction of every engine (Redis, PostgreSQL) and of the CLI.
//!
//! A PostgreSQL URL may carry a password
//! (`postgres://user:password@host/db`, or `?password=…`). A Redis URL may
//! carry one (`redis://user:password@host:6379/0`,
//! `redis://:password@host`, `?pass=…` on a Unix socket URL, or
//! `?sentinel_password=…` on a sentinel URL), and a deployment may be named
//! by a list of them (a cluster's nodes). Every
//! message, log line, error value and `Debug` output of this crate shows
//! URLs through [`redact_url`] or [`RedactedUrl`]; use them too wherever
//! your program prints a URL it was given.
//!
//! ```
//! use requeue::redact::{RedactedUrl, redact_url};
//!
//! assert_eq!(
//!     redact_url("rediss://admin:s3cret@cache.internal:6380/2"),
//!     "rediss://***@cache.internal:6380/2"
//! );
//! assert_eq!(redact_url("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
//!
//! let url = RedactedUrl::new("redis://:s3cret@127.0.0.1/");
//! assert_eq!(url.to_string(), "redis://***@127.0.0.1/");
//! assert!(!format!("{url:?}").contains("s3cret"));
//! ```

use std::fmt;

/// What replaces credentials.
const MASK: &str = "***";

/// Query parameters that carry credentials (Redis Unix socket URLs:
/// `redis+unix:///run/redis.sock?user=…&pass=…`; sentinel URLs:
/// `…?sentinel_username=…&sentinel_password=…`; PostgreSQL's
/// `?user=…&password=…&sslpassword=…`).
const SECRET_PARAMS: [&str; 7] = [
    "pass",
    "password",
    "sslpassword",
    "user",
    "username",
    "sentinel_password",
    "sentinel_username",
];

/// `url` with its credentials replaced by `***`: the user info (everything
/// between `://` and the last `@`) and the values of the `pass`,
/// `password`, `sslpassword` (PostgreSQL's client key passphrase), `user`, `username`, `sentinel_password` and
/// `sentinel_username` query parameters. The scheme, host, port, database
/// and other parameters stay, so the result still says which server is
/// meant. A sentinel or cluster URL's list of hosts
/// (`redis+sentinel://user:pw@h1:26379,h2:26379/mymaster`) is one URL
/// with one user info; a comma-separated list of whole URLs
/// (`redis://u:pw@h1:7000,redis://u:pw@h2:7001`, how a cluster's nodes are
/// shown) is redacted URL by URL, so that every host stays visible, when
/// every URL in it has a user info or none has; otherwise it is redacted
/// as one URL, masking everything up to its last `@`.
///
/// The string need not parse as a URL: a malformed one is redacted by the
/// same rule (a string without `://` loses everything before its last
/// `@`), so nothing that could be a password is ever shown. A URL whose
/// query or fragment contains an `@` loses its host too: over-redacting is
/// the safe side.
///
/// ```
/// use requeue::redact::redact_url;
///
/// assert_eq!(redact_url("redis://:pw@10.0.0.5:6379"), "redis://***@10.0.0.5:6379");
/// assert_eq!(redact_url("redis://user:p@ss@host/"), "redis://***@host/");
/// assert_eq!(redact_url("admin:pw@host:6379"), "***@host:6379");
/// assert_eq!(
///     redact_url("redis+unix:///tmp/redis.sock?db=1&pass=pw"),
///     "redis+unix:///tmp/redis.sock?db=1&pass=***"
/// );
/// assert_eq!(
///     redact_url("redis+sentinel://:pw@h1:26379,h2:26379/mymaster?sentinel_password=spw"),
///     "redis+sentinel://***@h1:26379,h2:26379/mymaster?sentinel_password=***"
/// );
/// assert_eq!(
///     redact_url("redis://u:pw@h1:7000/,redis://u:pw@h2:7001/"),
///     "redis://***@h1:7000/,redis://***@h2:7001/"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let urls = split_list(url);
    let with_userinfo = urls.iter().filter(|u| u.contains('@')).count();
    if urls.len() > 1 && (with_userinfo == 0 || with_userinfo == urls.len()) {
        urls.iter()
            .map(|u| redact_one(u))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        redact_one(url)
    }
}

/// `text` cut before every comma that starts another URL (`,scheme://`).
fn split_list(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (comma, _) in text.match_indices(',') {
        let next = &text[comma + 1..];
        let scheme_len = next.find("://").filter(|&end| {
            end > 0
                && next[..end].starts_with(|c: char| c.is_ascii_alphabetic())
                && next[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        if scheme_len.is_some() {
            pieces.push(&text[start..comma]);
            start = comma + 1;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// One URL redacted (see [`redact_url`]).
fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let rest = match rest.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            &rest[at..]
        }
        None => rest,
    };
    let (before_fragment, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _))
                        if SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s)) =>
                    {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

/// A URL with its credentials already removed (see [`redact_url`]):
/// safe to keep in error values, log fields and structs that derive
/// `Debug`. It holds only the redacted text, so it cannot leak the
/// password even through [`as_str`](Self::as_str); it is for showing, not
/// for connecting.
///
/// ```
/// use requeue::redact::RedactedUrl;
///
/// let url = RedactedUrl::new("redis://admin:s3cret@127.0.0.1:6379/0");
/// assert_eq!(url.as_str(), "redis://***@127.0.0.1:6379/0");
/// assert_eq!(format!("{url}"), "redis://***@127.0.0.1:6379/0");
/// assert_eq!(format!("{url:?}"), "\"redis://***@127.0.0.1:6379/0\"");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Redacts `url`.
    pub fn new(url: &str) -> Self {
        RedactedUrl(redact_url(url))
    }

    /// The redacted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&str> for RedactedUrl {
    fn from(url: &str) -> Self {
        RedactedUrl::new(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive() {
        for (url, want) in [
            (
                "redis://admin:s3cretpass@127.0.0.1:1/",
                "redis://***@127.0.0.1:1/",
            ),
            ("redis://:s3cretpass@host", "redis://***@host"),
            (
                "rediss://user:s3cretpass@host:6380/3",
                "rediss://***@host:6380/3",
            ),
            ("redis://user@host/", "redis://***@host/"),
            (
                "valkey://u:s3cretpass@[::1]:7000",
                "valkey://***@[::1]:7000",
            ),
            // Not URLs the client accepts: still nothing of the password.
            ("redis://u:s3cretpass@", "redis://***@"),
            ("redis://u:s3c/ret?pass@host:x", "redis://***@host:x"),
            (
                "redis://u:s3cretpass@host:notaport",
                "redis://***@host:notaport",
            ),
            ("u:s3cretpass@host", "***@host"),
            ("://u:s3cretpass@host", "://***@host"),
            (
                "redis+unix:///tmp/r.sock?db=2&user=u&PASS=s3cretpass#x",
                "redis+unix:///tmp/r.sock?db=2&user=***&PASS=***#x",
            ),
            (
                "unix:///tmp/r.sock?password=s3cretpass",
                "unix:///tmp/r.sock?password=***",
            ),
            // Sentinel and cluster URLs: one user info for the host list.
            (
                "redis+sentinel://app:s3cretpass@h1:26379,h2:26380/mymaster/2",
                "redis+sentinel://***@h1:26379,h2:26380/mymaster/2",
            ),
            (
                "rediss+cluster://app:s3cretpass@h1:7000,h2:7001",
                "rediss+cluster://***@h1:7000,h2:7001",
            ),
            (
                "redis+sentinel://h1,h2/m?sentinel_username=u&sentinel_password=s3cretpass",
                "redis+sentinel://h1,h2/m?sentinel_username=***&sentinel_password=***",
            ),
            // Lists of whole URLs (a cluster's nodes), URL by URL.
            (
                "redis://u:s3cretpass@h1:7000/,rediss://u:s3cretpass@h2:7001/",
                "redis://***@h1:7000/,rediss://***@h2:7001/",
            ),
            (
                "redis://h1:7000/?pass=s3cretpass,redis://h2:7001/",
                "redis://h1:7000/?pass=***,redis://h2:7001/",
            ),
            // A password that looks like a list: one URL, masked to its last @.
            (
                "redis://u:s3cret,redis://pass@h2:7001/",
                "redis://***@h2:7001/",
            ),
            (
                "redis://h1:7000/,redis://u:s3cretpass@h2:7001/",
                "redis://***@h2:7001/",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
            assert!(!redact_url(url).contains("s3cret"), "{url}");
            let shown = RedactedUrl::new(url);
            assert!(!format!("{shown} {shown:?}").contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for url in [
            "redis://127.0.0.1:6379/",
            "redis://127.0.0.1",
            "rediss://cache.internal:6380/2#insecure",
            "redis://127.0.0.1/?protocol=resp3",
            "redis+unix:///tmp/r.sock?db=1",
            "local",
            "",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }
}
