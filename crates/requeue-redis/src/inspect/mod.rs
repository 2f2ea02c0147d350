//! A consistent snapshot of a queue's Redis state, for `requeue inspect`,
//! dashboards and tests.

pub(crate) mod diagnose;
mod invariants;

pub use diagnose::{Diagnosis, Problem, RepairReport, diagnose, repair};
pub use invariants::check_invariants;

use crate::error::Error;
use crate::keys::QueueKeys;
use crate::ops::Token;
use crate::scripts::{ScriptName, Scripts};
use redis::Value;

/// Above this many tracked failure counts, [`inspect`] lists none (reading
/// them all would block Redis for too long).
pub const FAILURES_CAP: u64 = 10_000;

/// One lease, as [`inspect`] sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseInfo {
    /// The leased item.
    pub item: Vec<u8>,
    /// When the lease expires, in server ms.
    pub deadline_ms: u64,
    /// The holder's token (`None` if missing or malformed: a broken invariant).
    pub token: Option<Token>,
}

/// A queue's state, read in one atomic script call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueState {
    /// The server's time of the snapshot, in ms.
    pub server_now_ms: u64,
    /// Items in the queue (ready).
    pub depth: u64,
    /// Items needing processing: queued or parked.
    pub dirty: u64,
    /// Items re-added while processing (dirty but not queued).
    pub parked: u64,
    /// Items waiting for a delay.
    pub delayed: u64,
    /// The delayed item due first, and when (server ms).
    pub next_due: Option<(Vec<u8>, u64)>,
    /// Items leased (being processed).
    pub processing_count: u64,
    /// The leases expiring first, at most `limit` of them.
    pub processing: Vec<LeaseInfo>,
    /// Items with a failure count (`NumRequeues` > 0).
    pub failures_tracked: u64,
    /// The largest failure counts, most first (ties by item), at most
    /// `limit`; empty when more than [`FAILURES_CAP`] are tracked.
    pub top_failures: Vec<(Vec<u8>, u64)>,
    /// The fencing epoch: how many leases were ever handed out.
    pub seq: u64,
    /// Leases that expired and were reaped, ever.
    pub lease_expired_total: u64,
    /// `add_rate_limited` calls, ever.
    pub retries_total: u64,
    /// What this snapshot shows to be broken (keys of the wrong type,
    /// counters or failure counts that are not numbers, more parked items
    /// than leased ones). Cheap checks only: [`diagnose`] checks every rule.
    pub problems: Vec<Problem>,
}

/// Reads the state of the queue `keys` in one atomic, read-only script call
/// (O(`limit`), plus O(failures) when at most [`FAILURES_CAP`]).
pub async fn inspect<C>(conn: &mut C, keys: &QueueKeys, limit: usize) -> Result<QueueState, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = Scripts::global().prepare(ScriptName::Inspect, keys, b"");
    // Lua formats numbers above 2^53 in exponent form, which ZRANGE rejects.
    let limit = limit.min(u32::MAX as usize);
    call.arg(limit).arg(FAILURES_CAP);
    let reply: Value = call.invoke_async(conn).await?;
    decode(reply, keys, limit)
}

fn protocol(what: &str, value: &Value) -> Error {
    Error::Protocol(format!("inspect: {what}: unexpected {value:?}"))
}

fn uint(value: &Value, what: &str) -> Result<u64, Error> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| protocol(what, value)),
        other => Err(protocol(what, other)),
    }
}

fn bytes(value: Value, what: &str) -> Result<Vec<u8>, Error> {
    match value {
        Value::BulkString(b) => Ok(b),
        other => Err(protocol(what, &other)),
    }
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(protocol(what, &other)),
    }
}

fn decode(reply: Value, keys: &QueueKeys, limit: usize) -> Result<QueueState, Error> {
    let fields = array(reply, "reply")?;
    let count = fields.len();
    let [
        now,
        depth,
        dirty,
        delayed,
        due_item,
        due_ms,
        processing_count,
        held,
        tracked,
        failures,
        seq,
        expired,
        retries,
        wrong,
        bad_meta,
    ]: [Value; 15] = fields
        .try_into()
        .map_err(|_| Error::Protocol(format!("inspect: {count} fields, expected 15")))?;
    let mut problems = Vec::new();
    let mut wrong = array(wrong, "wrong types")?.into_iter();
    while let (Some(key), Some(found)) = (wrong.next(), wrong.next()) {
        let key = String::from_utf8_lossy(&bytes(key, "wrong key")?).into_owned();
        let found = String::from_utf8_lossy(&bytes(found, "wrong type")?).into_owned();
        let expected = keys
            .all()
            .iter()
            .position(|k| *k == key)
            .map_or("other type", |i| diagnose::KINDS[i]);
        problems.push(Problem::WrongType {
            key,
            found,
            expected,
        });
    }
    for field in array(bad_meta, "meta fields")? {
        problems.push(Problem::NotANumber {
            key: keys.meta().to_owned(),
            field: bytes(field, "meta field")?,
        });
    }
    let next_due = match (due_item, due_ms) {
        (Value::BulkString(item), ms @ Value::Int(_)) => Some((item, uint(&ms, "next due")?)),
        _ => None,
    };
    let mut processing = Vec::new();
    let mut held = array(held, "processing")?.into_iter();
    while let (Some(item), Some(deadline), Some(token)) = (held.next(), held.next(), held.next()) {
        processing.push(LeaseInfo {
            item: bytes(item, "lease item")?,
            deadline_ms: uint(&deadline, "lease deadline")?,
            token: match token {
                Value::BulkString(t) => std::str::from_utf8(&t).ok().and_then(|t| t.parse().ok()),
                _ => None,
            },
        });
    }
    let mut top_failures = Vec::new();
    let mut flat = array(failures, "failures")?.into_iter();
    while let (Some(item), Some(count)) = (flat.next(), flat.next()) {
        let item = bytes(item, "failure item")?;
        let count = bytes(count, "failure count")?;
        match std::str::from_utf8(&count)
            .ok()
            .and_then(|c| c.parse::<u64>().ok())
        {
            Some(count) => top_failures.push((item, count)),
            None => problems.push(Problem::NotANumber {
                key: keys.failures().to_owned(),
                field: item,
            }),
        }
    }
    top_failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_failures.truncate(limit);
    let depth = uint(&depth, "depth")?;
    let dirty = uint(&dirty, "dirty")?;
    let processing_count = uint(&processing_count, "processing")?;
    let parked = dirty.saturating_sub(depth);
    if parked > processing_count {
        // Parked items are dirty and leased, so never more than the leased.
        problems.push(Problem::MoreParkedThanLeased {
            parked,
            leased: processing_count,
        });
    }
    Ok(QueueState {
        server_now_ms: uint(&now, "now")?,
        depth,
        dirty,
        parked,
        delayed: uint(&delayed, "delayed")?,
        next_due,
        processing_count,
        processing,
        failures_tracked: uint(&tracked, "failures tracked")?,
        top_failures,
        seq: uint(&seq, "seq")?,
        lease_expired_total: uint(&expired, "lease_expired_total")?,
        retries_total: uint(&retries, "retries_total")?,
        problems,
    })
}
