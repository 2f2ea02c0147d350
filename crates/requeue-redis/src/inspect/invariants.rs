//! The state invariants of a queue, checked by a full read (tests only).

use crate::keys::QueueKeys;
use crate::ops::Token;
use std::collections::{BTreeMap, BTreeSet};

type Set = BTreeSet<Vec<u8>>;

fn show(items: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let shown: Vec<String> = items
        .into_iter()
        .map(|i| String::from_utf8_lossy(i.as_ref()).into_owned())
        .collect();
    format!("{shown:?}")
}

/// Checks every rule of the queue's state, reading all of it in one
/// `MULTI`/`EXEC` — O(N), for tests only:
///
/// * no item twice in `queue`;
/// * `queue` ⊆ `dirty`, and `queue` ∩ `processing` = ∅;
/// * `dirty` ⊆ `queue` ∪ `processing` (a dirty item not queued is parked,
///   never stranded);
/// * `delayed` ∩ `dirty` = ∅ (an item already due ignores delays; so also
///   `delayed` ∩ `queue` = ∅);
/// * the fields of `owners` are exactly the members of `processing`, and
///   each holds a well-formed token whose epoch is at most `meta.seq`;
/// * the fields of `added_at` are exactly the members of `dirty` (the
///   queue-time clock starts at the add, parked items included).
///
/// Returns every violation found, `; `-separated. A Redis error is
/// reported as a violation too.
pub async fn check_invariants<C>(conn: &mut C, keys: &QueueKeys) -> Result<(), String>
where
    C: redis::aio::ConnectionLike + Send,
{
    type Snapshot = (
        Vec<Vec<u8>>,
        Set,
        Set,
        BTreeMap<Vec<u8>, String>,
        Set,
        Set,
        Option<u64>,
    );
    let (queue, dirty, processing, owners, delayed, added_at, seq): Snapshot = redis::pipe()
        .atomic()
        .cmd("LRANGE")
        .arg(keys.queue())
        .arg(0)
        .arg(-1)
        .cmd("SMEMBERS")
        .arg(keys.dirty())
        .cmd("ZRANGE")
        .arg(keys.processing())
        .arg(0)
        .arg(-1)
        .cmd("HGETALL")
        .arg(keys.owners())
        .cmd("ZRANGE")
        .arg(keys.delayed())
        .arg(0)
        .arg(-1)
        .cmd("HKEYS")
        .arg(keys.added_at())
        .cmd("HGET")
        .arg(keys.meta())
        .arg("seq")
        .query_async(conn)
        .await
        .map_err(|e| format!("reading the state failed: {e}"))?;
    let mut broken = Vec::new();
    let queued: Set = queue.iter().cloned().collect();
    if queued.len() != queue.len() {
        broken.push(format!("duplicates in queue: {}", show(&queue)));
    }
    let not_dirty: Vec<_> = queued.difference(&dirty).collect();
    if !not_dirty.is_empty() {
        broken.push(format!("queued but not dirty: {}", show(not_dirty)));
    }
    let both: Vec<_> = queued.intersection(&processing).collect();
    if !both.is_empty() {
        broken.push(format!("queued and processing: {}", show(both)));
    }
    let stranded: Vec<_> = dirty
        .iter()
        .filter(|i| !queued.contains(*i) && !processing.contains(*i))
        .collect();
    if !stranded.is_empty() {
        broken.push(format!(
            "dirty but neither queued nor processing: {}",
            show(stranded)
        ));
    }
    let due_twice: Vec<_> = delayed.intersection(&dirty).collect();
    if !due_twice.is_empty() {
        broken.push(format!("delayed and dirty: {}", show(due_twice)));
    }
    let owned: Set = owners.keys().cloned().collect();
    if owned != processing {
        broken.push(format!(
            "owners {} != processing {}",
            show(&owned),
            show(&processing)
        ));
    }
    for (item, token) in &owners {
        match token.parse::<Token>() {
            Ok(t) if seq.is_some_and(|seq| t.epoch() <= seq) => {}
            _ => broken.push(format!(
                "bad token {token:?} for {} (seq {seq:?})",
                show([item])
            )),
        }
    }
    if added_at != dirty {
        broken.push(format!(
            "added_at {} != dirty {}",
            show(&added_at),
            show(&dirty)
        ));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}
