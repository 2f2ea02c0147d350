//! The queue's keys over the run and at its end: a TTL on every key while
//! the run goes on (so that a run that cannot clean up, or is killed,
//! leaves nothing behind for long), which never-reconciled keys are still
//! in the queue at the end (not lost: a next run's workers would take
//! them), and removing the queue's keys so that a run leaves nothing
//! behind in the user's Redis.

use redis::aio::ConnectionLike;
use requeue_redis::keys::QueueKeys;
use std::time::Duration;

/// How long the queue's keys outlive the run's planned end, should it fail
/// to delete them (or be killed): they expire on their own then.
pub const TTL_MARGIN: Duration = Duration::from_secs(60);

/// How many of `candidates` the queue still has: queued or parked (its
/// dirty set), delayed, or leased.
pub async fn still_queued<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &QueueKeys,
    candidates: &[&str],
) -> redis::RedisResult<usize> {
    let mut count = 0;
    // In chunks: one round trip per chunk, and no reply too large.
    for chunk in candidates.chunks(1_000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SISMEMBER").arg(keys.dirty()).arg(*key);
            pipe.cmd("ZSCORE").arg(keys.delayed()).arg(*key);
            pipe.cmd("ZSCORE").arg(keys.processing()).arg(*key);
        }
        let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        count += replies
            .chunks(3)
            .filter(|r| {
                r.iter()
                    .any(|v| !matches!(v, redis::Value::Nil | redis::Value::Int(0)))
            })
            .count();
    }
    Ok(count)
}

/// Sets a TTL of `ttl` (whole seconds, at least one) on each of the
/// queue's keys that exists. Scripts delete a key that empties and
/// create it again without a TTL, so this runs again and again.
pub async fn expire<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &QueueKeys,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let seconds = ttl.as_secs().max(1);
    let mut pipe = redis::pipe();
    for key in keys.all() {
        pipe.cmd("EXPIRE").arg(key).arg(seconds).ignore();
    }
    pipe.query_async(conn).await
}

/// Deletes the queue's keys.
pub async fn delete<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &QueueKeys,
) -> redis::RedisResult<()> {
    redis::cmd("DEL").arg(keys.all()).query_async(conn).await
}
