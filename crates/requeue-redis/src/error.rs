//! The crate's error type.

/// What can go wrong talking to a queue in Redis.
///
/// Expected outcomes (a deduplicated add, a lost lease, an empty queue) are
/// not errors: the scripts report them as codes in the replies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue name cannot be used in a Redis key (see
    /// [`QueueKeys::new`](crate::keys::QueueKeys::new)).
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No connection to Redis could be made.
    #[error("cannot connect to Redis at {url}")]
    Connect {
        /// The address tried.
        url: String,
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
        Some(field) => format!("{key} field {:?} {problem}", shorten(field, 100)),
        None => format!("{key} {problem}"),
    }
}

/// At most `max` characters of `text`, with `…` in place of the rest.
pub(crate) fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > max => format!("{}…", &text[..cut]).into(),
        _ => text.into(),
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

    #[test]
    fn long_text_is_shortened_to_the_limit() {
        assert_eq!(shorten("abc", 100), "abc");
        let long = "x".repeat(10_000);
        let short = shorten(&long, 100);
        assert_eq!(short.chars().count(), 100);
        assert!(short.ends_with('…'));
    }
}
