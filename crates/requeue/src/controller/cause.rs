//! Why a key was queued, for the reconcile span's `cause` field.
//!
//! The queue does not say who added a key, but the controller knows its
//! own re-adds: it notes each one here just before making it, and the
//! worker that next takes the key takes the note. A key without a note
//! was added by someone else (`add`).

use crate::engine::{Ended, QueueError};
use crate::queue::{Added, Key};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Why a key was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// Added by someone other than the controller.
    Add,
    /// Re-added after a failed reconcile (as the error policy said).
    Retry,
    /// The handler asked to come back at once or with backoff
    /// (`Action::Requeue`, `Action::RequeueRateLimited`).
    Requeue,
    /// The handler asked to come back after a delay (`Action::RequeueAfter`).
    RequeueAfter,
    /// The controller's periodic resync.
    Resync,
}

impl Cause {
    /// The span's field value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Cause::Add => "add",
            Cause::Retry => "retry",
            Cause::Requeue => "requeue",
            Cause::RequeueAfter => "requeue-after",
            Cause::Resync => "resync",
        }
    }
}

/// The controller's notes: key → why the controller queued it.
///
/// Bounded by the keys in the queue: a note is only written for a re-add
/// that made the key pending, is withdrawn when the re-add did not (it
/// merged, was refused or failed), and is removed when the key is next
/// handed out, so each pending key has at most one. Notes outlive their
/// key only when this process never takes it again — a shared engine
/// handed it to another process, or the run stopped with it queued — and
/// then stay one per key until the key comes back here or the run ends
/// ([`clear`](Causes::clear)).
///
/// Every hand-out looks here, so the lookup must cost next to nothing: a
/// count of all notes lets it skip hashing the key while there are none
/// (every reconcile succeeds: one read of a counter nobody writes), and
/// the notes are split in [`SHARDS`] by the key's hash, each with its own
/// lock and a flag that lets it skip the lock while the shard is empty.
/// Measured with four workers, a handler that does nothing and one
/// reconcile in ten failing: about 150 ns a hand-out (a tenth of the
/// keys per second); with one lock for all, twice that.
pub(super) struct Causes<T: Key> {
    shards: Box<[Shard<T>]>,
    hasher: foldhash::fast::RandomState,
    /// How many notes there are, in all shards.
    count: AtomicUsize,
}

/// How many ways the notes are split.
const SHARDS: usize = 64;

/// One shard. Its flag and its lock sit on separate cache lines, so that
/// workers reading the flag are not slowed by the lock's traffic: the flag
/// is only written when the shard becomes empty or stops being so.
struct Shard<T> {
    /// Whether `notes` may hold anything.
    any: Line<AtomicBool>,
    notes: Line<Mutex<HashMap<T, Cause, foldhash::fast::RandomState>>>,
}

/// A value on a cache line of its own (two lines: adjacent-line
/// prefetchers pair them).
#[repr(align(128))]
struct Line<V>(V);

// Not derived: the derive would ask `T: Default`.
impl<T: Key> Default for Causes<T> {
    fn default() -> Self {
        Causes {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    any: Line(AtomicBool::new(false)),
                    notes: Line(Mutex::new(HashMap::default())),
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            count: AtomicUsize::new(0),
        }
    }
}

impl<T: Key> Causes<T> {
    fn shard(&self, key: &T) -> &Shard<T> {
        let hash = self.hasher.hash_one(key);
        // The top bits: the maps inside hash with another seed, so any
        // bits would do; these are the best mixed.
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// Notes that the controller is about to queue `key` because of
    /// `cause`; the first cause since the key's last hand-out wins.
    /// Returns whether this call wrote the note (and must withdraw it if
    /// the re-add does not make the key pending).
    pub(super) fn note(&self, key: &T, cause: Cause) -> bool {
        let shard = self.shard(key);
        let mut notes = shard.notes.0.lock();
        if notes.contains_key(key) {
            return false;
        }
        notes.insert(key.clone(), cause);
        // Counted and flagged before the re-add: a worker that takes the
        // key after the re-add sees both (the queue's own synchronisation
        // orders the re-add before the hand-out).
        self.count.fetch_add(1, Ordering::SeqCst);
        if notes.len() == 1 {
            shard.any.0.store(true, Ordering::SeqCst);
        }
        true
    }

    /// Withdraws a note this controller wrote for a re-add that did not
    /// make `key` pending.
    pub(super) fn withdraw(&self, key: &T, cause: Cause) {
        let shard = self.shard(key);
        let mut notes = shard.notes.0.lock();
        if notes.get(key) == Some(&cause) {
            notes.remove(key);
            self.count.fetch_sub(1, Ordering::SeqCst);
            if notes.is_empty() {
                shard.any.0.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Why `key`, just handed out, was queued; removes its note.
    pub(super) fn take(&self, key: &T) -> Cause {
        if self.count.load(Ordering::SeqCst) == 0 {
            return Cause::Add;
        }
        let shard = self.shard(key);
        if !shard.any.0.load(Ordering::SeqCst) {
            return Cause::Add;
        }
        let mut notes = shard.notes.0.lock();
        let cause = notes.remove(key);
        if cause.is_some() {
            self.count.fetch_sub(1, Ordering::SeqCst);
            if notes.is_empty() {
                shard.any.0.store(false, Ordering::SeqCst);
            }
        }
        cause.unwrap_or(Cause::Add)
    }

    /// Forgets every note (the run is over: nothing will take them).
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            let mut notes = shard.notes.0.lock();
            self.count.fetch_sub(notes.len(), Ordering::SeqCst);
            notes.clear();
            notes.shrink_to_fit();
            shard.any.0.store(false, Ordering::SeqCst);
        }
    }
}

/// Whether an add made its key pending (rather than merging into an
/// earlier add, whose cause stands).
pub(super) fn made_pending(added: Added) -> bool {
    !matches!(added, Added::Merged)
}

/// Whether ending a hand-out re-added its key and made it pending.
pub(super) fn ended_pending(ended: &Result<Ended, QueueError>) -> bool {
    match ended {
        Ok(ended) => !ended.refused && ended.added.is_some_and(made_pending),
        Err(_) => false,
    }
}
