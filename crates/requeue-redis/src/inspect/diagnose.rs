//! Every rule of a queue's stored state, checked by a full read, and the
//! repairs that are safe to make.
//!
//! The scripts keep these rules on their own. A broken one means something
//! else wrote to the queue's keys: a `DEL` or `SET` by hand, another
//! program, a partial restore. [`diagnose`] reads every key (O(N) in the
//! queue's size) and names each problem, and [`repair`] fixes them in one
//! `MULTI`/`EXEC` transaction. The transaction is guarded by `WATCH`, so
//! it applies nothing if a worker changed the queue in the meantime.
//!
//! ```no_run
//! # async fn run() -> Result<(), requeue_redis::error::Error> {
//! use requeue_redis::inspect::{diagnose, repair};
//! use requeue_redis::keys::QueueKeys;
//!
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! // A connection of its own: WATCH is per connection.
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! let keys = QueueKeys::new("emails")?;
//! let found = diagnose(&mut conn, &keys).await?;
//! for problem in &found.problems {
//!     println!("{problem} (repair: {})", problem.repair());
//! }
//! if !found.problems.is_empty() {
//!     let report = repair(&mut conn, &keys).await?;
//!     println!("{} changes made", report.actions.len());
//! }
//! # Ok(())
//! # }
//! ```

use crate::error::Error;
use crate::keys::QueueKeys;
use crate::ops::Token;
use crate::scripts::{ScriptName, Scripts};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How many times [`repair`] reads and tries again when a worker changed
/// the queue between its read and its write.
const REPAIR_ATTEMPTS: usize = 5;

/// Items are shown with at most this many characters.
const SHOWN_CHARS: usize = 100;

/// One broken rule of a queue's stored state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// A key of the queue holds another Redis type than the scripts write.
    WrongType {
        /// The key.
        key: String,
        /// Its type, e.g. `string`.
        found: String,
        /// The type the scripts use.
        expected: &'static str,
    },
    /// A hash field that holds a number holds something else.
    NotANumber {
        /// The key.
        key: String,
        /// The field (for `failures`, the item).
        field: Vec<u8>,
    },
    /// An item is in the ready list more than once.
    QueuedTwice {
        /// The item.
        item: Vec<u8>,
    },
    /// A ready item is not marked as needing processing (`dirty`).
    QueuedNotDirty {
        /// The item.
        item: Vec<u8>,
    },
    /// An item is both ready and leased.
    QueuedAndLeased {
        /// The item.
        item: Vec<u8>,
    },
    /// An item needs processing but is neither ready nor leased: no `get`
    /// will ever hand it out, and every add of it is deduplicated into it.
    Stranded {
        /// The item.
        item: Vec<u8>,
    },
    /// A delayed item is also already waiting to be processed.
    DelayedAndDirty {
        /// The item.
        item: Vec<u8>,
    },
    /// A lease holder is recorded for an item that is not leased.
    OwnerWithoutLease {
        /// The item.
        item: Vec<u8>,
    },
    /// An item is leased to nobody (no holder recorded, or not a token):
    /// no `done` can end it until its lease runs out.
    LeasedToNobody {
        /// The item.
        item: Vec<u8>,
    },
    /// A holder's token is newer than the fencing epoch `meta.seq`, so a
    /// later lease could be given the same epoch.
    TokenAheadOfEpoch {
        /// The item.
        item: Vec<u8>,
        /// The token's epoch.
        epoch: u64,
        /// `meta.seq` (0 if missing).
        seq: u64,
    },
    /// More items count as parked (dirty, not queued) than are leased, so
    /// some dirty items are stranded; [`inspect`](super::inspect) sees
    /// this from counts alone, [`diagnose`] names the items.
    MoreParkedThanLeased {
        /// Dirty items not in the ready list.
        parked: u64,
        /// Leased items.
        leased: u64,
    },
    /// An item needing processing has no add time.
    AddTimeMissing {
        /// The item.
        item: Vec<u8>,
    },
    /// An add time is kept for an item that needs no processing.
    AddTimeLeftOver {
        /// The item.
        item: Vec<u8>,
    },
}

/// Bytes as text, lossily, at most [`SHOWN_CHARS`] characters.
fn show(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.chars().count() > SHOWN_CHARS {
        let kept: String = text.chars().take(SHOWN_CHARS - 1).collect();
        format!("{:?}", kept + "…")
    } else {
        format!("{text:?}")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::WrongType {
                key,
                found,
                expected,
            } => write!(f, "{key} is a {found} where a {expected} belongs"),
            Problem::NotANumber { key, field } => {
                write!(f, "{key} field {} is not a number", show(field))
            }
            Problem::QueuedTwice { item } => write!(f, "{} is queued more than once", show(item)),
            Problem::QueuedNotDirty { item } => {
                write!(f, "{} is queued but not marked dirty", show(item))
            }
            Problem::QueuedAndLeased { item } => {
                write!(f, "{} is queued and leased at once", show(item))
            }
            Problem::Stranded { item } => write!(
                f,
                "{} is dirty but neither queued nor leased (stranded)",
                show(item)
            ),
            Problem::DelayedAndDirty { item } => {
                write!(f, "{} is delayed and dirty at once", show(item))
            }
            Problem::OwnerWithoutLease { item } => {
                write!(f, "{} has a holder but no lease", show(item))
            }
            Problem::LeasedToNobody { item } => {
                write!(
                    f,
                    "{} is leased to nobody (no valid holder token)",
                    show(item)
                )
            }
            Problem::TokenAheadOfEpoch { item, epoch, seq } => write!(
                f,
                "{}'s token epoch {epoch} is ahead of meta.seq {seq}",
                show(item)
            ),
            Problem::MoreParkedThanLeased { parked, leased } => write!(
                f,
                "{parked} items count as parked but only {leased} are leased: \
                 at least {} dirty items are stranded",
                parked - leased
            ),
            Problem::AddTimeMissing { item } => {
                write!(f, "{} is dirty but has no add time", show(item))
            }
            Problem::AddTimeLeftOver { item } => {
                write!(f, "{} has an add time but is not dirty", show(item))
            }
        }
    }
}

impl Problem {
    /// What [`repair`] does about it, in words.
    pub fn repair(&self) -> &'static str {
        match self {
            Problem::WrongType { .. } => "delete the key (its content is not the queue's)",
            Problem::NotANumber { .. } => {
                "remove the field (a count restarts at 0; meta.seq restarts above every epoch handed out)"
            }
            Problem::QueuedTwice { .. } => "keep its first place in the queue only",
            Problem::QueuedNotDirty { .. } => "mark it dirty",
            Problem::QueuedAndLeased { .. } => {
                "take it out of the queue; it stays dirty, so its done queues it again"
            }
            Problem::Stranded { .. } => "queue it at the tail",
            Problem::DelayedAndDirty { .. } => "drop the delay (it is due anyway)",
            Problem::OwnerWithoutLease { .. } => "drop the holder record",
            Problem::LeasedToNobody { .. } => {
                "give it back: end the lease and queue the item at the tail"
            }
            Problem::TokenAheadOfEpoch { .. } => "raise meta.seq to the newest token's epoch",
            Problem::MoreParkedThanLeased { .. } => "queue the stranded items at the tail",
            Problem::AddTimeMissing { .. } => "record the add time as now",
            Problem::AddTimeLeftOver { .. } => "drop the add time",
        }
    }
}

/// What [`diagnose`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Every broken rule, in a fixed order (by rule, then by item).
    pub problems: Vec<Problem>,
}

impl Diagnosis {
    /// Whether every rule holds.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`repair`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The problems it found (and fixed).
    pub problems: Vec<Problem>,
    /// Each change made, in words, in the order made.
    pub actions: Vec<String>,
}

/// Everything stored under a queue's keys, read at one instant (under
/// `WATCH`), with each key of the wrong type read as empty.
///
/// A whole copy of the queue, on purpose (every rule is checked): it lives
/// for one `diagnose` or `repair` call and is O(queue size). Callers decide
/// whether a queue is small enough; `requeue inspect` reads it only up to
/// 100,000 items.
#[derive(Debug, Default)]
struct Stored {
    wrong: Vec<(usize, String)>,
    /// Tail first (`LRANGE 0 -1`): the next item handed out is last.
    queue: Vec<Vec<u8>>,
    dirty: BTreeSet<Vec<u8>>,
    processing: BTreeMap<Vec<u8>, f64>,
    owners: BTreeMap<Vec<u8>, Vec<u8>>,
    delayed: BTreeSet<Vec<u8>>,
    failures: BTreeMap<Vec<u8>, Vec<u8>>,
    limiter: BTreeMap<Vec<u8>, Vec<u8>>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    added_at: BTreeSet<Vec<u8>>,
}

/// The Redis type each key of [`QueueKeys::all`] has, in that order.
pub(crate) const KINDS: [&str; 10] = [
    "list", "set", "zset", "hash", "zset", "hash", "hash", "hash", "zset", "hash",
];

/// `meta` fields that are integers.
const META_INTS: [&str; 3] = ["seq", "lease_expired_total", "retries_total"];

fn is_int(raw: &[u8]) -> bool {
    std::str::from_utf8(raw).is_ok_and(|s| s.parse::<i64>().is_ok())
}

fn is_number(raw: &[u8]) -> bool {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

/// Reads everything the queue stores, in one read-only script call (an
/// atomic snapshot).
async fn read<C>(conn: &mut C, keys: &QueueKeys) -> Result<Stored, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let call = Scripts::global().prepare(ScriptName::Dump, keys, b"");
    let reply: Vec<(String, Vec<Vec<u8>>)> = {
        let flat: Vec<redis::Value> = call.invoke_async(conn).await?;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(kind), Some(content)) = (flat.next(), flat.next()) {
            pairs.push((
                redis::from_redis_value(kind)
                    .map_err(|e| Error::Protocol(format!("dump: a key's type: {e}")))?,
                redis::from_redis_value(content)
                    .map_err(|e| Error::Protocol(format!("dump: a key's content: {e}")))?,
            ));
        }
        pairs
    };
    if reply.len() != KINDS.len() {
        return Err(Error::Protocol(format!(
            "dump: {} keys, expected {}",
            reply.len(),
            KINDS.len()
        )));
    }
    let mut stored = Stored::default();
    let mut contents = Vec::with_capacity(KINDS.len());
    for (i, ((found, content), kind)) in reply.into_iter().zip(KINDS).enumerate() {
        if found != "none" && found != kind {
            stored.wrong.push((i, found));
        }
        contents.push(content);
    }
    let mut contents = contents.into_iter();
    let mut next = || contents.next().unwrap_or_default();
    let pairs = |flat: Vec<Vec<u8>>| -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut flat = flat.into_iter();
        let mut out = Vec::new();
        while let (Some(a), Some(b)) = (flat.next(), flat.next()) {
            out.push((a, b));
        }
        out
    };
    stored.queue = next();
    stored.dirty = next().into_iter().collect();
    stored.processing = pairs(next())
        .into_iter()
        .map(|(item, score)| {
            let score = std::str::from_utf8(&score)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            (item, score)
        })
        .collect();
    stored.owners = pairs(next()).into_iter().collect();
    stored.delayed = pairs(next()).into_iter().map(|(item, _)| item).collect();
    stored.failures = pairs(next()).into_iter().collect();
    stored.limiter = pairs(next()).into_iter().collect();
    stored.meta = pairs(next()).into_iter().collect();
    let _marker = next();
    stored.added_at = pairs(next()).into_iter().map(|(item, _)| item).collect();
    Ok(stored)
}

/// Starts watching the queue's keys, so a following `MULTI`/`EXEC` applies
/// nothing if any of them changed.
async fn watch<C>(conn: &mut C, keys: &QueueKeys) -> Result<(), Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut watch = redis::cmd("WATCH");
    for key in keys.all() {
        watch.arg(key);
    }
    Ok(watch.query_async(conn).await?)
}

/// The problems of `stored`, in a fixed order.
fn problems(keys: &QueueKeys, stored: &Stored) -> Vec<Problem> {
    let all = keys.all();
    let mut found = Vec::new();
    for (i, kind) in &stored.wrong {
        found.push(Problem::WrongType {
            key: all[*i].clone(),
            found: kind.clone(),
            expected: KINDS[*i],
        });
    }
    let not_a_number = |key: &str, field: &[u8]| Problem::NotANumber {
        key: key.to_owned(),
        field: field.to_vec(),
    };
    for field in META_INTS {
        if let Some(value) = stored.meta.get(field.as_bytes())
            && !is_int(value)
        {
            found.push(not_a_number(keys.meta(), field.as_bytes()));
        }
    }
    for (item, count) in &stored.failures {
        if !is_int(count) {
            found.push(not_a_number(keys.failures(), item));
        }
    }
    if let Some(value) = stored.limiter.get(&b"zero_used"[..])
        && !is_int(value)
    {
        found.push(not_a_number(keys.limiter(), b"zero_used"));
    }
    if let Some(value) = stored.limiter.get(&b"tat_us"[..])
        && !is_number(value)
    {
        found.push(not_a_number(keys.limiter(), b"tat_us"));
    }
    let mut queued = BTreeSet::new();
    for item in stored.queue.iter().rev() {
        if !queued.insert(item.clone()) {
            found.push(Problem::QueuedTwice { item: item.clone() });
        }
    }
    for item in &queued {
        if !stored.dirty.contains(item) {
            found.push(Problem::QueuedNotDirty { item: item.clone() });
        }
        if stored.processing.contains_key(item) {
            found.push(Problem::QueuedAndLeased { item: item.clone() });
        }
    }
    for item in &stored.dirty {
        if !queued.contains(item) && !stored.processing.contains_key(item) {
            found.push(Problem::Stranded { item: item.clone() });
        }
        if stored.delayed.contains(item) {
            found.push(Problem::DelayedAndDirty { item: item.clone() });
        }
    }
    for item in stored.owners.keys() {
        if !stored.processing.contains_key(item) {
            found.push(Problem::OwnerWithoutLease { item: item.clone() });
        }
    }
    let seq = stored
        .meta
        .get(&b"seq"[..])
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    for item in stored.processing.keys() {
        match token_of(stored, item) {
            None => found.push(Problem::LeasedToNobody { item: item.clone() }),
            Some(token) if token.epoch() > seq => found.push(Problem::TokenAheadOfEpoch {
                item: item.clone(),
                epoch: token.epoch(),
                seq,
            }),
            Some(_) => {}
        }
    }
    // A queued-and-leased item stays dirty after the repair, so it counts
    // as dirty here too.
    for item in &stored.dirty {
        if !stored.added_at.contains(item) {
            found.push(Problem::AddTimeMissing { item: item.clone() });
        }
    }
    for item in &stored.added_at {
        if !stored.dirty.contains(item) && !queued.contains(item) {
            found.push(Problem::AddTimeLeftOver { item: item.clone() });
        }
    }
    found
}

fn token_of(stored: &Stored, item: &[u8]) -> Option<Token> {
    let raw = stored.owners.get(item)?;
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Checks every rule of the queue's stored state by reading all of it
/// (O(N): meant for `requeue inspect` on modest queues, `requeue repair`
/// and tests, not for a hot path).
///
/// The read is one read-only script call, so the snapshot is consistent;
/// it blocks the server for its duration, like any O(N) command.
pub async fn diagnose<C>(conn: &mut C, keys: &QueueKeys) -> Result<Diagnosis, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let stored = read(conn, keys).await?;
    Ok(Diagnosis {
        problems: problems(keys, &stored),
    })
}

fn busy() -> Error {
    Error::Protocol(format!(
        "the queue kept changing while it was read ({REPAIR_ATTEMPTS} tries); \
         stop its workers, or try again when it is quieter"
    ))
}

/// Fixes what [`diagnose`] finds, in one transaction that applies nothing
/// if a worker touched the queue meanwhile (then it reads and tries again,
/// a few times; `conn` must not be shared with other users meanwhile,
/// since `WATCH` belongs to the connection). Each problem's fix is [`Problem::repair`]; the report
/// lists the problems and every change made.
///
/// Nothing the queue holds is dropped except content that is not the
/// queue's (a key of the wrong type, a field that is not a number) and
/// bookkeeping that refers to no item. A stranded item is queued again, a
/// lease with no valid holder is ended and its item queued again (its
/// processing may not have finished), and `meta.seq` only ever goes up.
pub async fn repair<C>(conn: &mut C, keys: &QueueKeys) -> Result<RepairReport, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    for _ in 0..REPAIR_ATTEMPTS {
        watch(conn, keys).await?;
        let stored = read(conn, keys).await?;
        let found = problems(keys, &stored);
        if found.is_empty() {
            let _: () = redis::cmd("UNWATCH").query_async(conn).await?;
            return Ok(RepairReport::default());
        }
        let now_ms: u64 = {
            let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
            secs * 1000 + micros / 1000
        };
        let (pipe, actions) = plan(keys, &stored, &found, now_ms);
        let applied: Option<redis::Value> = pipe.query_async(conn).await?;
        if applied.is_some() {
            return Ok(RepairReport {
                problems: found,
                actions,
            });
        }
    }
    Err(busy())
}

/// The transaction that fixes `found`, and its changes in words.
fn plan(
    keys: &QueueKeys,
    stored: &Stored,
    found: &[Problem],
    now_ms: u64,
) -> (redis::Pipeline, Vec<String>) {
    let all = keys.all();
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut actions = Vec::new();
    for (i, kind) in &stored.wrong {
        pipe.cmd("DEL").arg(&all[*i]).ignore();
        actions.push(format!("deleted {} (a {kind})", all[*i]));
    }
    // Numbers: drop bad counts; meta.seq goes to the newest epoch in use.
    let newest_epoch = stored
        .processing
        .keys()
        .filter_map(|item| token_of(stored, item))
        .map(|t| t.epoch())
        .max()
        .unwrap_or(0);
    let seq = stored
        .meta
        .get(&b"seq"[..])
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
    let seq_bad = stored.meta.contains_key(&b"seq"[..]) && seq.is_none();
    // A lost or unreadable seq restarts above every epoch that can have
    // been handed out (one per hand-out since 1970 at up to a million a
    // second), so epochs keep growing for whoever relies on them.
    let seq_lost = seq_bad || (seq.is_none() && newest_epoch > 0);
    let floor = if seq_lost {
        now_ms.saturating_mul(1000)
    } else {
        0
    };
    let target = newest_epoch.max(seq.unwrap_or(0)).max(floor);
    if seq_lost || seq.unwrap_or(0) < target {
        pipe.cmd("HSET")
            .arg(keys.meta())
            .arg("seq")
            .arg(target)
            .ignore();
        actions.push(format!("set meta.seq to {target}"));
    }
    for problem in found {
        if let Problem::NotANumber { key, field } = problem
            && !(key == keys.meta() && field == b"seq")
        {
            pipe.cmd("HDEL").arg(key).arg(field).ignore();
            actions.push(format!("removed {key} field {}", show(field)));
        }
    }
    // Leases held by nobody are given back: out of `processing`, queued
    // at the tail like a reaped lease (without its backoff).
    let released: BTreeSet<&Vec<u8>> = found
        .iter()
        .filter_map(|p| match p {
            Problem::LeasedToNobody { item } => Some(item),
            _ => None,
        })
        .collect();
    let leased = |item: &Vec<u8>| stored.processing.contains_key(item) && !released.contains(item);
    // The ready list: deduplicated (first place kept), without leased
    // items, with stranded and given-back items at the tail. Rebuilt only
    // if it changes.
    let mut seen = BTreeSet::new();
    let mut head_first: Vec<Vec<u8>> = Vec::new();
    for item in stored.queue.iter().rev() {
        if !leased(item) && seen.insert(item.clone()) {
            head_first.push(item.clone());
        }
    }
    let mut dirty_adds: Vec<Vec<u8>> = Vec::new();
    for problem in found {
        match problem {
            Problem::Stranded { item } => {
                head_first.push(item.clone());
                actions.push(format!("queued stranded {}", show(item)));
            }
            Problem::QueuedNotDirty { item } => {
                dirty_adds.push(item.clone());
                actions.push(format!("marked {} dirty", show(item)));
            }
            Problem::QueuedTwice { item } => {
                actions.push(format!("kept one place in the queue for {}", show(item)))
            }
            Problem::QueuedAndLeased { item } if !released.contains(item) => actions.push(format!(
                "took leased {} out of the queue (its done queues it again)",
                show(item)
            )),
            Problem::LeasedToNobody { item } => {
                pipe.cmd("ZREM").arg(keys.processing()).arg(item).ignore();
                pipe.cmd("HDEL").arg(keys.owners()).arg(item).ignore();
                if seen.insert(item.clone()) {
                    head_first.push(item.clone());
                }
                if !stored.dirty.contains(item) {
                    dirty_adds.push(item.clone());
                }
                actions.push(format!(
                    "gave back {} (leased to nobody): queued at the tail",
                    show(item)
                ));
            }
            _ => {}
        }
    }
    let tail_first: Vec<&Vec<u8>> = head_first.iter().rev().collect();
    if tail_first.len() != stored.queue.len()
        || tail_first.iter().zip(&stored.queue).any(|(a, b)| *a != b)
    {
        pipe.cmd("DEL").arg(keys.queue()).ignore();
        if !tail_first.is_empty() {
            pipe.cmd("RPUSH")
                .arg(keys.queue())
                .arg(&tail_first)
                .ignore();
            pipe.cmd("ZADD").arg(keys.marker()).arg(0).arg("r").ignore();
        }
    }
    for item in &dirty_adds {
        pipe.cmd("SADD").arg(keys.dirty()).arg(item).ignore();
        if !stored.added_at.contains(item) {
            pipe.cmd("HSET")
                .arg(keys.added_at())
                .arg(item)
                .arg(now_ms)
                .ignore();
        }
    }
    for problem in found {
        match problem {
            Problem::DelayedAndDirty { item } => {
                pipe.cmd("ZREM").arg(keys.delayed()).arg(item).ignore();
                actions.push(format!("dropped the delay of dirty {}", show(item)));
            }
            Problem::OwnerWithoutLease { item } => {
                pipe.cmd("HDEL").arg(keys.owners()).arg(item).ignore();
                actions.push(format!("dropped the holder record of {}", show(item)));
            }
            Problem::AddTimeMissing { item } => {
                pipe.cmd("HSET")
                    .arg(keys.added_at())
                    .arg(item)
                    .arg(now_ms)
                    .ignore();
                actions.push(format!("recorded an add time for {}", show(item)));
            }
            Problem::AddTimeLeftOver { item } => {
                pipe.cmd("HDEL").arg(keys.added_at()).arg(item).ignore();
                actions.push(format!("dropped the add time of {}", show(item)));
            }
            _ => {}
        }
    }
    (pipe, actions)
}
