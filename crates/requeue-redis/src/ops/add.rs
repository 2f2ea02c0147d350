//! `add`, `add_batch`, `add_after`.

use super::reply::{fields, int, uint};
use super::{MAX_BATCH, Now, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
use redis::Value;

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddCode {
    /// Nothing changed: the item was already dirty (queued, or parked
    /// while processing), or, for a delayed add, an earlier or equal delay
    /// was already pending or the item was already due.
    Deduplicated,
    /// Appended to the queue.
    Queued,
    /// Being processed: it goes back into the queue when its holder is done.
    Parked,
    /// Waiting for its delay (new, or moved earlier).
    Delayed,
}

impl AddCode {
    /// Decodes a script's code (0, 1, 2, 3).
    pub(super) fn from_code(code: i64) -> Result<Self, Error> {
        match code {
            0 => Ok(AddCode::Deduplicated),
            1 => Ok(AddCode::Queued),
            2 => Ok(AddCode::Parked),
            3 => Ok(AddCode::Delayed),
            other => Err(Error::Protocol(format!("unknown add code {other}"))),
        }
    }

    /// Whether the add made the item dirty (queued or parked): what
    /// client-go's `workqueue_adds_total` counts.
    pub fn is_added(self) -> bool {
        matches!(self, AddCode::Queued | AddCode::Parked)
    }
}

/// The reply of [`add`] and [`add_after`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddReply {
    /// What happened to the item.
    pub code: AddCode,
    /// Items in the queue afterwards (`workqueue_depth`).
    pub depth: u64,
}

fn add_reply(value: Value, what: &str) -> Result<AddReply, Error> {
    let [code, depth] = fields(value, what)?;
    Ok(AddReply {
        code: AddCode::from_code(int(&code, what)?)?,
        depth: uint(&depth, what)?,
    })
}

/// client-go `Add`: queues `item` unless it is already dirty; while it is
/// being processed it is parked until `done`.
///
/// An immediate add wins over a pending delay (requeue's deviation 3): if
/// `item` waits in `delayed`, that entry is removed and the item is added now.
pub async fn add<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    now: Now,
) -> Result<AddReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::Add, keys, now);
    call.arg(item);
    add_reply(run(conn, &call).await?, "add")
}

/// The counts of an [`add_batch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddBatchReply {
    /// Items that were already dirty.
    pub deduplicated: u64,
    /// Items appended to the queue.
    pub queued: u64,
    /// Items parked behind their processing.
    pub parked: u64,
    /// Items in the queue after the last call.
    pub depth: u64,
}

/// [`add`] for many items, in order: one script call per [`MAX_BATCH`]
/// items (each call is atomic; the whole batch is not).
pub async fn add_batch<C, I>(
    conn: &mut C,
    keys: &QueueKeys,
    items: &[I],
    now: Now,
) -> Result<AddBatchReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
    I: AsRef<[u8]> + Sync,
{
    let mut total = AddBatchReply::default();
    // An empty batch still makes one call, to report the depth.
    let mut chunks: Vec<&[I]> = items.chunks(MAX_BATCH).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let mut call = invocation(ScriptName::AddBatch, keys, now);
        for item in chunk {
            call.arg(item.as_ref());
        }
        let [dedup, queued, parked, depth] = fields(run(conn, &call).await?, "add_batch")?;
        total.deduplicated += uint(&dedup, "add_batch")?;
        total.queued += uint(&queued, "add_batch")?;
        total.parked += uint(&parked, "add_batch")?;
        total.depth = uint(&depth, "add_batch")?;
    }
    Ok(total)
}

/// client-go `AddAfter`: adds `item` once `delay_ms` have passed on the
/// server's clock (or the fake one).
///
/// * `delay_ms == 0` is [`add`].
/// * Among pending delays of an item the earliest wins; a later one is
///   [`AddCode::Deduplicated`].
/// * An item already dirty (queued, or parked behind its processing) is
///   due anyway, so the delay is ignored ([`AddCode::Deduplicated`]), as in
///   the in-memory queue.
/// * An item being processed (and not dirty) may be delayed; when due it
///   parks until its holder is done.
///
/// When the new due time is the earliest, blocked waiters are woken to
/// re-arm their timers.
pub async fn add_after<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    delay_ms: u64,
    now: Now,
) -> Result<AddReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::AddAfter, keys, now);
    call.arg(item).arg(ms(delay_ms));
    add_reply(run(conn, &call).await?, "add_after")
}
