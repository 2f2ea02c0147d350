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
        .await
        .map_err(|e| wrong_type(e, keys.failures()))?;
    Ok(removed > 0)
}

/// client-go `NumRequeues`: the item's failure count (`HGET failures`).
pub async fn num_requeues<C>(conn: &mut C, keys: &QueueKeys, item: &[u8]) -> Result<u64, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let count: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(keys.failures())
        .arg(item)
        .query_async(conn)
        .await
        .map_err(|e| wrong_type(e, keys.failures()))?;
    let Some(count) = count else { return Ok(0) };
    std::str::from_utf8(&count)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            key: keys.failures().to_owned(),
            field: Some(String::from_utf8_lossy(item).into_owned()),
            problem: "is not a failure count".to_owned(),
        })
}

/// A `WRONGTYPE` reply for a command on `key` as [`Error::Corrupt`].
fn wrong_type(error: redis::RedisError, key: &str) -> Error {
    if error.code() == Some("WRONGTYPE") {
        Error::Corrupt {
            key: key.to_owned(),
            field: None,
            problem: "holds the wrong kind of value".to_owned(),
        }
    } else {
        Error::Redis(error)
    }
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
