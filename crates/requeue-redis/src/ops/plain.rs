//! `forget`, `num_requeues` (single commands, atomic on their own) and
//! `len` (a script, as it promotes due items first).

use super::reply::uint;
use super::{Now, invocation, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;

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

/// client-go `Len`: items ready in the queue, across all processes.
///
/// A script (`len.lua`): it first promotes the delayed items due at `now`
/// (at most 100), as client-go's waiting loop would have by then, so an
/// item counts from its due time on; then `LLEN queue`.
pub async fn len<C>(conn: &mut C, keys: &QueueKeys, now: Now) -> Result<u64, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let call = invocation(ScriptName::Len, keys, now);
    uint(&run(conn, &call).await?, "len")
}
