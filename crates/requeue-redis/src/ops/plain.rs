//! `forget`, `num_requeues`, `len`: single commands, atomic on their own.

use crate::error::Error;
use crate::keys::QueueKeys;

/// client-go `Forget`: clears the item's failure count (`HDEL failures`).
/// Returns whether there was one.
pub async fn forget<C>(conn: &mut C, keys: &QueueKeys, item: &[u8]) -> Result<bool, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let removed: u64 = redis::cmd("HDEL")
        .arg(keys.failures())
        .arg(item)
        .query_async(conn)
        .await?;
    Ok(removed > 0)
}

/// client-go `NumRequeues`: the item's failure count (`HGET failures`).
pub async fn num_requeues<C>(conn: &mut C, keys: &QueueKeys, item: &[u8]) -> Result<u64, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let count: Option<u64> = redis::cmd("HGET")
        .arg(keys.failures())
        .arg(item)
        .query_async(conn)
        .await?;
    Ok(count.unwrap_or(0))
}

/// client-go `Len`: items in the queue, across all processes (`LLEN queue`).
pub async fn len<C>(conn: &mut C, keys: &QueueKeys) -> Result<u64, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    Ok(redis::cmd("LLEN")
        .arg(keys.queue())
        .query_async(conn)
        .await?)
}
