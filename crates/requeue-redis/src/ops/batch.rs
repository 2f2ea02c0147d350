//! `batch`: the adds, fenced dones and gets of many callers in one call.

use super::lease::{DoneCode, GetArgs, Leased};
use super::reply::{bytes, int, list, opt_uint, string, uint};
use super::token::nonce_arg;
use super::{AddCode, Now, Token, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;

/// The most items one [`batch`] call may lease or name: it bounds the
/// script's work and its stack.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// One operation of a [`batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// client-go `Add` of these bytes (as [`add`](super::add)).
    Add(Vec<u8>),
    /// Fenced `Done` (as [`done_forgetting`](super::done_forgetting)).
    Done {
        /// The item's bytes.
        item: Vec<u8>,
        /// The lease's token.
        token: Token,
        /// Clear the item's failure count too, if the lease was still ours.
        forget: bool,
    },
    /// Lease up to this many items from the head of the queue (as that
    /// many [`get`](super::get)s).
    Get(u32),
}

impl BatchOp {
    /// How many items it names or may lease.
    pub fn items(&self) -> usize {
        match self {
            BatchOp::Add(_) | BatchOp::Done { .. } => 1,
            BatchOp::Get(count) => *count as usize,
        }
    }
}

/// What one [`BatchOp`] did, in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// The add's code.
    Add(AddCode),
    /// The done's code.
    Done(DoneCode),
    /// The items leased, possibly fewer than asked (none: the queue is empty).
    Get(Vec<Leased>),
}

/// The reply of [`batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchReply {
    /// One per operation, in order.
    pub results: Vec<BatchResult>,
    /// Expired leases reaped (before the first get).
    pub reaped: u64,
    /// The time the script used, in ms.
    pub now_ms: u64,
    /// When a get came back short: when one could next succeed (as
    /// [`GetReply::next_wake_ms`](super::GetReply::next_wake_ms)).
    pub next_wake_ms: Option<u64>,
    /// Items left in the queue, when asked for.
    pub depth: Option<u64>,
}

/// Applies `ops` in order in one script call, as the same calls one after
/// the other would: the clock is read, the keys checked, due items
/// promoted and expired leases reaped (before the first get) once for the
/// whole call. Gets lease under tokens with consecutive epochs and one
/// fresh nonce. `want_depth` asks for the queue's length afterwards.
///
/// At most [`MAX_BATCH_ITEMS`] items in all (`Error::Protocol` otherwise,
/// before anything is sent).
pub async fn batch<C>(
    conn: &mut C,
    keys: &QueueKeys,
    args: &GetArgs,
    ops: &[BatchOp],
    want_depth: bool,
    now: Now,
) -> Result<BatchReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let total: usize = ops.iter().map(BatchOp::items).sum();
    if total > MAX_BATCH_ITEMS {
        return Err(Error::Protocol(format!(
            "batch: {total} items, at most {MAX_BATCH_ITEMS}"
        )));
    }
    let mut call = invocation(ScriptName::Batch, keys, now);
    call.arg(ms(args.lease_ms))
        .arg(args.batch)
        .arg(ms(args.reap_base_ms))
        .arg(ms(args.reap_max_ms))
        .arg(nonce_arg(fastrand::u64(..)))
        .arg(if want_depth { "1" } else { "0" });
    for op in ops {
        match op {
            BatchOp::Add(item) => {
                call.arg("a").arg(item.as_slice());
            }
            BatchOp::Done {
                item,
                token,
                forget,
            } => {
                call.arg("d")
                    .arg(item.as_slice())
                    .arg(token.to_string())
                    .arg(if *forget { "1" } else { "0" });
            }
            BatchOp::Get(count) => {
                call.arg("g").arg(*count);
            }
        }
    }
    let mut values = list(run(conn, &call).await?, "batch")?;
    if values.len() != ops.len() + 4 {
        return Err(Error::Protocol(format!(
            "batch: {} fields for {} operations",
            values.len(),
            ops.len()
        )));
    }
    let trailer = values.split_off(ops.len());
    let mut results = Vec::with_capacity(ops.len());
    for (op, value) in ops.iter().zip(values) {
        results.push(match op {
            BatchOp::Add(_) => BatchResult::Add(AddCode::from_code(int(&value, "batch add")?)?),
            BatchOp::Done { .. } => {
                BatchResult::Done(DoneCode::from_code(int(&value, "batch done")?)?)
            }
            BatchOp::Get(_) => BatchResult::Get(leased(value)?),
        });
    }
    let [reaped, now_ms, wake, depth] = <[redis::Value; 4]>::try_from(trailer)
        .map_err(|_| Error::Protocol("batch: short trailer".into()))?;
    Ok(BatchReply {
        results,
        reaped: uint(&reaped, "batch reaped")?,
        now_ms: uint(&now_ms, "batch now")?,
        next_wake_ms: opt_uint(&wake, "batch next wake")?,
        depth: opt_uint(&depth, "batch depth")?,
    })
}

/// A get's flat `{item, token, queue_ms, requeues, ...}`. A stored
/// failure count that is not a count is left out (`requeues: None`):
/// whoever needs it asks `num_requeues`, which reports the corruption.
fn leased(value: redis::Value) -> Result<Vec<Leased>, Error> {
    let fields = list(value, "batch get")?;
    if fields.len() % 4 != 0 {
        return Err(Error::Protocol(format!(
            "batch get: {} fields, not item/token/queue_ms/requeues quadruples",
            fields.len()
        )));
    }
    let mut out = Vec::with_capacity(fields.len() / 4);
    let mut fields = fields.into_iter();
    while let (Some(item), Some(token), Some(queue_ms), Some(requeues)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    {
        let requeues = string(requeues, "batch get requeues")
            .ok()
            .and_then(|count| count.parse().ok());
        out.push(Leased {
            item: bytes(item, "batch get item")?,
            token: string(token, "batch get token")?
                .parse()
                .map_err(|e| Error::Protocol(format!("batch get: {e}")))?,
            queue_ms: uint(&queue_ms, "batch get queue_ms")?,
            requeues,
        });
    }
    Ok(out)
}
