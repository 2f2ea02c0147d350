//! `extend`, `release`, `reap`: the rest of a lease's life.

use super::reply::{bytes, fields, int, list, uint};
use super::{GetArgs, MAX_BATCH, Now, Token, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;

/// Renews the leases of `held` (item, token) to run until now + `lease_ms`
/// (never shortening one), and returns the items whose lease is lost: the
/// token is no longer the holder's (reaped, maybe leased to someone else,
/// or already done). Idempotent, so safe to retry.
///
/// One atomic call per [`MAX_BATCH`] pairs. A lease that expired but was
/// not reaped yet is still renewed: nobody else can have it.
pub async fn extend<C, I>(
    conn: &mut C,
    keys: &QueueKeys,
    lease_ms: u64,
    held: &[(I, Token)],
    now: Now,
) -> Result<Vec<Vec<u8>>, Error>
where
    C: redis::aio::ConnectionLike + Send,
    I: AsRef<[u8]> + Sync,
{
    let mut lost = Vec::new();
    for chunk in held.chunks(MAX_BATCH) {
        let mut call = invocation(ScriptName::Extend, keys, now);
        call.arg(ms(lease_ms));
        for (item, token) in chunk {
            call.arg(item.as_ref()).arg(token.to_string());
        }
        for item in list(run(conn, &call).await?, "extend")? {
            lost.push(bytes(item, "extend")?);
        }
    }
    Ok(lost)
}

/// What a [`release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseCode {
    /// The lease ended and the item is at the head of the queue.
    Released,
    /// The token is not the current holder's: nothing changed.
    LeaseLost,
}

/// The reply of [`release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReleaseReply {
    /// What happened.
    pub code: ReleaseCode,
    /// Items in the queue afterwards.
    pub depth: u64,
}

/// Gives a leased item back without processing it (shutting down): ends
/// the lease, fenced by `token`, and puts the item at the HEAD of the
/// queue so it is handed out next. No failure is counted.
///
/// The item is queued exactly once, also when it was re-added (parked)
/// while held; a delayed add pending for it is cancelled (the work is due
/// now).
pub async fn release<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    token: Token,
    now: Now,
) -> Result<ReleaseReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::Release, keys, now);
    call.arg(item).arg(token.to_string());
    let [code, depth] = fields(run(conn, &call).await?, "release")?;
    let code = match int(&code, "release")? {
        1 => ReleaseCode::Released,
        -1 => ReleaseCode::LeaseLost,
        other => return Err(Error::Protocol(format!("unknown release code {other}"))),
    };
    Ok(ReleaseReply {
        code,
        depth: uint(&depth, "release")?,
    })
}

/// The arguments of [`reap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReapArgs {
    /// At most this many expired leases per call.
    pub batch: u32,
    /// Backoff after an item's first failure, in ms.
    pub base_ms: u64,
    /// Longest backoff, in ms.
    pub max_ms: u64,
}

impl Default for ReapArgs {
    /// The reaping half of [`GetArgs::default`].
    fn default() -> Self {
        ReapArgs::from(&GetArgs::default())
    }
}

impl From<&GetArgs> for ReapArgs {
    fn from(args: &GetArgs) -> Self {
        ReapArgs {
            batch: args.batch,
            base_ms: args.reap_base_ms,
            max_ms: args.reap_max_ms,
        }
    }
}

/// Reaps up to `batch` expired leases, as [`get`](super::get) does,
/// without leasing anything (for a janitor timer). Returns how many. As
/// `get`, it first promotes up to `batch` due delayed items, so a reaped
/// item added at once goes behind them.
pub async fn reap<C>(
    conn: &mut C,
    keys: &QueueKeys,
    args: &ReapArgs,
    now: Now,
) -> Result<u64, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::Reap, keys, now);
    call.arg(args.batch)
        .arg(ms(args.base_ms))
        .arg(ms(args.max_ms));
    uint(&run(conn, &call).await?, "reap")
}
