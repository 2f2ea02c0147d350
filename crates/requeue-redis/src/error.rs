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
    /// A reply had a shape the scripts never produce (a different script
    /// version, or a key of the queue overwritten by something else).
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
}
