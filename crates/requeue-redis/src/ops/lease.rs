//! `get`, `done`, `done_get`: leasing items under fencing tokens.

use super::reply::{fields, int, opt_bytes, opt_string, opt_uint, uint};
use super::token::nonce_arg;
use super::{Now, Token, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
use redis::Value;

/// The arguments of [`get`] and [`done_get`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GetArgs {
    /// How long the lease runs unless renewed with
    /// [`extend`](super::extend), in ms. Default 30 s.
    pub lease_ms: u64,
    /// At most this many expired leases are reaped and this many due
    /// delayed items promoted per call. Default 100.
    pub batch: u32,
    /// Backoff of a reaped item after its first failure, in ms (doubling
    /// per failure, as client-go's default controller limiter). Default 5.
    pub reap_base_ms: u64,
    /// Longest backoff of a reaped item, in ms. Default 1000 s.
    pub reap_max_ms: u64,
}

impl Default for GetArgs {
    fn default() -> Self {
        GetArgs {
            lease_ms: 30_000,
            batch: 100,
            reap_base_ms: 5,
            reap_max_ms: 1_000_000,
        }
    }
}

/// An item handed out by [`get`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Leased {
    /// The item's bytes.
    pub item: Vec<u8>,
    /// The lease's fencing token, needed by `done`, `extend` and `release`.
    pub token: Token,
    /// How long the item waited since it became dirty, in ms
    /// (`workqueue_queue_duration_seconds`).
    pub queue_ms: u64,
    /// The item's failure count when it was leased (client-go's
    /// `NumRequeues`), when the call reported it ([`batch`](super::batch)
    /// does) and it was a well-formed count.
    pub requeues: Option<u32>,
}

/// The reply of [`get`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GetReply {
    /// The leased item, or `None` when the queue is empty.
    pub item: Option<Leased>,
    /// When there is no item: the earliest time (ms, same clock as
    /// `now_ms`) at which a delayed item falls due or a lease expires,
    /// i.e. when a `get` could next succeed; `None` if neither exists.
    pub next_wake_ms: Option<u64>,
    /// Items left in the queue.
    pub depth: u64,
    /// Expired leases reaped by this call.
    pub reaped: u64,
    /// The time the script used (server `TIME` or the fake one), in ms.
    /// The lease runs until `now_ms + lease_ms`.
    pub now_ms: u64,
}

/// Decodes get's 7 fields.
fn get_reply(values: [Value; 7], what: &str) -> Result<GetReply, Error> {
    let [item, token, wake, depth, queue_ms, reaped, now] = values;
    let item = match (opt_bytes(item, what)?, opt_string(token, what)?) {
        (Some(item), Some(token)) => Some(Leased {
            item,
            token: token
                .parse()
                .map_err(|e| Error::Protocol(format!("{what}: {e}")))?,
            queue_ms: uint(&queue_ms, what)?,
            requeues: None,
        }),
        (None, None) => None,
        _ => return Err(Error::Protocol(format!("{what}: item without token"))),
    };
    Ok(GetReply {
        item,
        next_wake_ms: opt_uint(&wake, what)?,
        depth: uint(&depth, what)?,
        reaped: uint(&reaped, what)?,
        now_ms: uint(&now, what)?,
    })
}

/// Appends get's ARGV (lease, batch, reap base, reap max, fresh nonce).
fn get_args(call: &mut redis::ScriptInvocation<'_>, args: &GetArgs) {
    call.arg(ms(args.lease_ms))
        .arg(args.batch)
        .arg(ms(args.reap_base_ms))
        .arg(ms(args.reap_max_ms))
        .arg(nonce_arg(fastrand::u64(..)));
}

/// client-go `Get`, non-blocking: promotes up to `batch` due delayed items,
/// reaps up to `batch` expired leases, then leases the head of the queue
/// for `lease_ms` under a new [`Token`]. Items that were due come first: a
/// reaped item is added behind them (or waits out its backoff).
///
/// A reaped item (its holder presumed dead) counts a failure
/// (`NumRequeues` + 1, `lease_expired_total` + 1) and comes back after a
/// per-item exponential backoff (`reap_base_ms × 2^(failures−1)`, at most
/// `reap_max_ms`); a pending re-add of it (parked) is carried along, never lost.
pub async fn get<C>(
    conn: &mut C,
    keys: &QueueKeys,
    args: &GetArgs,
    now: Now,
) -> Result<GetReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::Get, keys, now);
    get_args(&mut call, args);
    get_reply(fields(run(conn, &call).await?, "get")?, "get")
}

/// What a [`done`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DoneCode {
    /// The lease ended.
    Done,
    /// The lease ended and the item, re-added while it was processed, went
    /// back into the queue.
    Requeued,
    /// Another holder has the item now (the lease expired, was reaped and
    /// the item handed out again): nothing changed.
    LeaseLost,
    /// Nobody holds the item: its lease expired and was reaped (and it was
    /// not handed out again yet), or this `done` already ran — a retry
    /// whose first reply was lost lands here. Nothing changed.
    NotHeld,
}

impl DoneCode {
    /// Whether the caller's lease was gone ([`LeaseLost`](DoneCode::LeaseLost)
    /// or [`NotHeld`](DoneCode::NotHeld)).
    pub fn is_lost(self) -> bool {
        matches!(self, DoneCode::LeaseLost | DoneCode::NotHeld)
    }
}

impl DoneCode {
    pub(super) fn from_code(code: i64) -> Result<Self, Error> {
        match code {
            1 => Ok(DoneCode::Done),
            2 => Ok(DoneCode::Requeued),
            -1 => Ok(DoneCode::LeaseLost),
            -2 => Ok(DoneCode::NotHeld),
            other => Err(Error::Protocol(format!("unknown done code {other}"))),
        }
    }
}

/// The reply of [`done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DoneReply {
    /// What happened.
    pub code: DoneCode,
    /// Items in the queue afterwards.
    pub depth: u64,
}

/// client-go `Done`, fenced by `token`: only the current holder ends the
/// lease. Due items are promoted first (at most 100), so they are queued
/// ahead of an item the `done` requeues. Safe to retry (a repeat is [`DoneCode::NotHeld`]). A lease past
/// its deadline that no `get`/`reap` has reaped yet still ends normally:
/// nobody else can hold it.
pub async fn done<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    token: Token,
    now: Now,
) -> Result<DoneReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    done_forgetting(conn, keys, item, token, false, now).await
}

/// [`done`], clearing the item's failure count (client-go's `Forget`) in
/// the same atomic step when `forget` is set and the caller still held the
/// item: a successful reconcile in one round trip. A holder that lost its
/// lease clears nothing, so it cannot reset the backoff of a key another
/// worker is retrying.
pub async fn done_forgetting<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    token: Token,
    forget: bool,
    now: Now,
) -> Result<DoneReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::Done, keys, now);
    call.arg(item).arg(token.to_string());
    if forget {
        call.arg("1");
    }
    let [code, depth] = fields(run(conn, &call).await?, "done")?;
    Ok(DoneReply {
        code: DoneCode::from_code(int(&code, "done")?)?,
        depth: uint(&depth, "done")?,
    })
}

/// The reply of [`done_get`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DoneGetReply {
    /// What the `done` half did.
    pub done: DoneCode,
    /// What the `get` half returned.
    pub get: GetReply,
}

/// [`done`] then [`get`] in one atomic call: the worker loop's fast path.
/// Due items are promoted (at most `batch`) before the `done`, so they are
/// queued ahead of the item it requeues.
pub async fn done_get<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    token: Token,
    args: &GetArgs,
    now: Now,
) -> Result<DoneGetReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::DoneGet, keys, now);
    call.arg(item).arg(token.to_string());
    get_args(&mut call, args);
    let [code, rest @ ..] = fields::<8>(run(conn, &call).await?, "done_get")?;
    Ok(DoneGetReply {
        done: DoneCode::from_code(int(&code, "done_get")?)?,
        get: get_reply(rest, "done_get")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_reply_rejects_half_items_and_bad_tokens() {
        let reply = |item: Value, token: Value| {
            get_reply(
                [
                    item,
                    token,
                    Value::Nil,
                    Value::Int(0),
                    Value::Int(0),
                    Value::Int(0),
                    Value::Int(5),
                ],
                "get",
            )
        };
        assert!(matches!(
            reply(Value::Nil, Value::Nil),
            Ok(GetReply {
                item: None,
                now_ms: 5,
                ..
            })
        ));
        assert!(reply(Value::BulkString(b"a".to_vec()), Value::Nil).is_err());
        let bad = Value::BulkString(b"1:xyz".to_vec());
        assert!(matches!(
            reply(Value::BulkString(b"a".to_vec()), bad),
            Err(Error::Protocol(_))
        ));
        let good = Value::BulkString(b"1:0000000000000001".to_vec());
        let got = reply(Value::BulkString(b"a".to_vec()), good).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.item.map(|l| l.token), Some(Token::new(1, 1)));
    }
}
