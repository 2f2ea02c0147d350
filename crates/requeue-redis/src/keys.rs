//! The Redis keys of one queue.

use crate::error::Error;

/// The parts of a queue's keys, in the order every script receives them.
const PARTS: [&str; 10] = [
    "queue",
    "dirty",
    "processing",
    "owners",
    "delayed",
    "failures",
    "limiter",
    "meta",
    "marker",
    "added_at",
];

/// The 10 keys of the queue `<name>`: `rq:{<name>}:<part>`.
///
/// The name is a Redis Cluster hash tag, so the whole queue lives in one
/// slot and every script may touch all of its keys (Redis Cluster, Sentinel
/// and standalone alike).
///
/// ```
/// use requeue_redis::keys::QueueKeys;
///
/// let keys = QueueKeys::new("emails")?;
/// assert_eq!(keys.queue(), "rq:{emails}:queue");
/// assert_eq!(keys.all()[9], "rq:{emails}:added_at");
/// # Ok::<(), requeue_redis::error::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueKeys {
    name: String,
    keys: [String; 10],
}

impl QueueKeys {
    /// The longest queue name accepted, in bytes.
    pub const MAX_NAME_LEN: usize = 200;

    /// The keys of queue `name`.
    ///
    /// The name must be non-empty, at most [`MAX_NAME_LEN`](Self::MAX_NAME_LEN)
    /// bytes, and free of `{`, `}` (they would change the hash tag),
    /// whitespace and control characters (they make keys hard to read and
    /// type in `redis-cli`). Otherwise [`Error::InvalidQueueName`].
    pub fn new(name: &str) -> Result<Self, Error> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > Self::MAX_NAME_LEN {
            Some("it is longer than 200 bytes")
        } else if name.contains(['{', '}']) {
            Some("it contains `{` or `}`")
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("it contains whitespace or a control character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidQueueName {
                name: name.to_owned(),
                reason,
            });
        }
        Ok(QueueKeys {
            name: name.to_owned(),
            keys: PARTS.map(|part| format!("rq:{{{name}}}:{part}")),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All 10 keys in script order: queue, dirty, processing, owners,
    /// delayed, failures, limiter, meta, marker, added_at.
    pub fn all(&self) -> &[String; 10] {
        &self.keys
    }

    /// LIST of ready items (`LPUSH` = tail, `RPOP` = head).
    pub fn queue(&self) -> &str {
        &self.keys[0]
    }

    /// SET of items needing processing (queued or parked).
    pub fn dirty(&self) -> &str {
        &self.keys[1]
    }

    /// ZSET item → lease deadline (ms): the items being processed.
    pub fn processing(&self) -> &str {
        &self.keys[2]
    }

    /// HASH item → fencing token of the current holder.
    pub fn owners(&self) -> &str {
        &self.keys[3]
    }

    /// ZSET item → due time (ms) of a pending delayed add.
    pub fn delayed(&self) -> &str {
        &self.keys[4]
    }

    /// HASH item → failure count (`NumRequeues`).
    pub fn failures(&self) -> &str {
        &self.keys[5]
    }

    /// HASH with the shared token bucket's state.
    pub fn limiter(&self) -> &str {
        &self.keys[6]
    }

    /// HASH with the fencing epoch (`seq`) and Redis-side counters.
    pub fn meta(&self) -> &str {
        &self.keys[7]
    }

    /// ZSET that blocked waiters pop (`BZPOPMIN`) to wake up.
    pub fn marker(&self) -> &str {
        &self.keys[8]
    }

    /// HASH item → time (ms) it became dirty, for the queue-time metric.
    pub fn added_at(&self) -> &str {
        &self.keys[9]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag_in_script_order() {
        let keys = QueueKeys::new("a:b-c.d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.name(), "a:b-c.d");
        for (key, part) in keys.all().iter().zip(PARTS) {
            assert_eq!(key, &format!("rq:{{a:b-c.d}}:{part}"));
        }
        let accessors = [
            keys.queue(),
            keys.dirty(),
            keys.processing(),
            keys.owners(),
            keys.delayed(),
            keys.failures(),
            keys.limiter(),
            keys.meta(),
            keys.marker(),
            keys.added_at(),
        ];
        assert_eq!(accessors, keys.all().each_ref().map(|k| k.as_str()));
    }

    #[test]
    fn bad_names_are_refused() {
        let long = "x".repeat(QueueKeys::MAX_NAME_LEN + 1);
        for bad in [
            "",
            "a{b",
            "b}",
            "a b",
            "tab\there",
            "nl\n",
            "nul\0",
            "nbsp\u{a0}",
            &long,
        ] {
            assert!(
                matches!(QueueKeys::new(bad), Err(Error::InvalidQueueName { .. })),
                "{bad:?}"
            );
        }
        assert!(QueueKeys::new(&"x".repeat(QueueKeys::MAX_NAME_LEN)).is_ok());
        assert!(QueueKeys::new("ünïcode").is_ok());
    }
}
