//! The end of a Redis run: which never-reconciled keys are still in the
//! queue (not lost: a next run's workers would take them), and removing
//! the queue's keys so that a run leaves nothing behind in the user's Redis.

use redis::aio::MultiplexedConnection;
use requeue_redis::keys::QueueKeys;

/// How many of `candidates` the queue still has: queued or parked (its
/// dirty set), delayed, or leased.
pub async fn still_queued(
    conn: &mut MultiplexedConnection,
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

/// Deletes the queue's keys.
pub async fn delete(conn: &mut MultiplexedConnection, keys: &QueueKeys) -> redis::RedisResult<()> {
    redis::cmd("DEL").arg(keys.all()).query_async(conn).await
}
