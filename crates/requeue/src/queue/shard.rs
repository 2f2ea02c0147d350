//! One shard of the queue's index: the slots of the keys whose hash falls
//! in it, found through a hash table of slot numbers.
//!
//! The queue splits its keys over [`SHARDS`] shards by hash, each behind its
//! own lock, so that threads working on different keys do not wait for each
//! other. A key's whole state (needs processing, being processed, queued,
//! delayed) lives in its slot and changes only under its shard's lock.
//!
//! Each key is stored once, in its slot: the ready queue and the delay heap
//! refer to it by [`Handle`], so adding a key moves it in without a copy.
//! The table holds only slot numbers; a slot keeps 32 bits of its key's
//! hash, so growing the table re-reads the shard's own (small, cache-warm)
//! slab and never the keys. A slot is 8 bytes plus the key: fields that
//! only some queues need (delays, priorities, metrics timestamps) live in
//! side arrays that exist once the queue first uses them.

use super::metered::ShardTimes;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::Hash;

/// Number of shards (a power of two). Enough that 2–16 busy threads rarely
/// meet on one lock; few enough that summing the shards (`len`, snapshots)
/// stays cheap. Under loom, two keep the state space small.
#[cfg(not(requeue_loom))]
pub(crate) const SHARDS: usize = 64;
#[cfg(requeue_loom)]
pub(crate) const SHARDS: usize = 2;

/// The item needs processing (queued, or re-added while processing).
pub(crate) const DIRTY: u32 = 1;
/// A worker holds the item.
pub(crate) const PROCESSING: u32 = 2;
/// The item is ready: in the ready queue, or taken from it by a getter
/// that has not yet locked the shard.
pub(crate) const QUEUED: u32 = 4;
/// The item waits in the delay heap (its [`DelayMark`] names the entry).
pub(crate) const DELAYED: u32 = 8;
/// The low bits of [`Slot::word`] hold the flags, the rest the hand-out generation.
const FLAG_BITS: u32 = 4;
const FLAG_MASK: u32 = (1 << FLAG_BITS) - 1;

/// Which shard a 64-bit key hash belongs to: its top bits, which neither
/// the table's bucket index (low bits) nor its tag (bits 25–31 of the
/// stored 32) use.
pub(crate) fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARDS.trailing_zeros())) as usize & (SHARDS - 1)
}

/// The 32 bits of a key's hash a slot keeps.
pub(crate) fn hash32(hash: u64) -> u32 {
    hash as u32
}

/// The table's 64-bit hash, rebuilt from the 32 bits a slot stores: the
/// high half feeds hashbrown's 7-bit tag, the low half its bucket index.
fn widen(hash32: u32) -> u64 {
    (u64::from(hash32) << 32) | u64::from(hash32)
}

/// A slot's address in the whole queue: shard number and slot number.
/// It is what the ready queue, the delay heap and the guards carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Handle(u64);

impl Handle {
    pub(crate) fn new(shard: usize, slot: u32) -> Self {
        Handle(((shard as u64) << 32) | u64::from(slot))
    }
    pub(crate) fn shard(self) -> usize {
        (self.0 >> 32) as usize
    }
    pub(crate) fn slot(self) -> u32 {
        self.0 as u32
    }
}

/// What the queue knows about one key.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    /// `None` once the slot is free.
    pub(crate) key: Option<T>,
    hash: u32,
    /// Flags in the low [`FLAG_BITS`] bits; above them, how many times the
    /// slot's key was handed out (a guard's token, wrapping at 2^28).
    word: u32,
}

impl<T> Slot<T> {
    pub(crate) fn is(&self, flag: u32) -> bool {
        self.word & flag != 0
    }
    pub(crate) fn set(&mut self, flag: u32) {
        self.word |= flag;
    }
    pub(crate) fn clear(&mut self, flag: u32) {
        self.word &= !flag;
    }
    /// The current hand-out's generation.
    pub(crate) fn generation(&self) -> u32 {
        self.word >> FLAG_BITS
    }
    /// Starts a new hand-out; returns its generation.
    pub(crate) fn next_generation(&mut self) -> u32 {
        let flags = self.word & FLAG_MASK;
        let generation = self.generation().wrapping_add(1) & (u32::MAX >> FLAG_BITS);
        self.word = (generation << FLAG_BITS) | flags;
        generation
    }
}

/// A delayed slot's entry in the delay heap: due time (nanoseconds after
/// the queue's epoch) and the entry's sequence, so that an entry whose
/// slot has since been re-delayed, made ready or freed is recognised as stale.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DelayMark {
    pub(crate) at: super::delays::Nanos,
    pub(crate) seq: u64,
}

/// A slot's priority and its entry in the ordered ready queue (priority
/// mode only; sequence 0 means "not in the ordered queue").
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderMark {
    pub(crate) priority: i32,
    pub(crate) seq: u64,
}

/// No pending instance carries a priority yet (the item was handed out).
pub(crate) const NO_PRIORITY: i32 = i32::MIN;

/// The shard's counts of slots in each state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// QUEUED slots.
    pub(crate) ready: usize,
    /// PROCESSING slots.
    pub(crate) processing: usize,
    /// PROCESSING and DIRTY slots (re-added while processing).
    pub(crate) parked: usize,
    /// DELAYED slots.
    pub(crate) delayed: usize,
}

/// Slabs smaller than this are kept when the shard empties.
const KEEP_CAPACITY: usize = 256;

/// Emptied slots are purged from the table no more often than this many at a time.
const PURGE_AT: usize = 64;

#[derive(Debug)]
pub(crate) struct Shard<T> {
    number: usize,
    /// One slot per key the shard holds (queued, processing or delayed:
    /// the user's own items, bounded by their workload as in client-go),
    /// plus emptied slots kept for reuse (`free`, `dead`), which a new key
    /// takes before the slab grows. So its length is the shard's peak key
    /// count; a shard that empties gives a slab above [`KEEP_CAPACITY`] back.
    slots: Vec<Slot<T>>,
    /// Slots ready for reuse: at most `slots.len()`.
    free: Vec<u32>,
    /// Emptied slots whose table entries are not purged yet: purged (moved
    /// to `free`) on reaching max([`PURGE_AT`], table capacity / 4).
    dead: Vec<u32>,
    /// One entry per occupied or dead slot: at most `slots.len()`.
    table: HashTable<u32>,
    /// Parallel to `slots` (same length) once any delay was used in this
    /// shard (`delays_on`).
    pub(crate) delay_marks: Vec<DelayMark>,
    delays_on: bool,
    /// Parallel to `slots` (same length) in priority mode (`order_on`).
    pub(crate) order_marks: Vec<OrderMark>,
    order_on: bool,
    /// Per-slot timestamps when the queue has metrics (at most one per slot).
    pub(crate) times: Option<ShardTimes>,
    pub(crate) counts: Counts,
}

impl<T: Eq + Hash> Shard<T> {
    pub(crate) fn new(number: usize, metered: Option<std::time::Instant>) -> Self {
        Shard {
            number,
            slots: Vec::new(),
            free: Vec::new(),
            dead: Vec::new(),
            table: HashTable::new(),
            delay_marks: Vec::new(),
            delays_on: false,
            order_marks: Vec::new(),
            order_on: false,
            times: metered.map(ShardTimes::new),
            counts: Counts::default(),
        }
    }

    /// How many keys the shard holds (in any state).
    pub(crate) fn live(&self) -> usize {
        self.table.len() - self.dead.len()
    }

    pub(crate) fn handle(&self, slot: u32) -> Handle {
        Handle::new(self.number, slot)
    }

    /// The slot of `key` (hash `hash`), if the shard knows it.
    pub(crate) fn find(&self, key: &T, hash: u64) -> Option<u32> {
        let hash = hash32(hash);
        let slots = &self.slots;
        self.table
            .find(widen(hash), |&i| {
                let slot = &slots[i as usize];
                slot.hash == hash && slot.key.as_ref() == Some(key)
            })
            .copied()
    }

    /// The slot of `key`, creating an empty one (no flags) that takes the
    /// key over if there is none. Returns the slot, whether it is new, and
    /// the caller's key when the shard already had one (to be dropped after
    /// the lock is released).
    pub(crate) fn find_or_insert(&mut self, key: KeyArg<'_, T>, hash: u64) -> (u32, bool, Option<T>)
    where
        T: Clone,
    {
        let hash = hash32(hash);
        let slots = &self.slots;
        let eq = |&i: &u32| {
            let slot = &slots[i as usize];
            slot.hash == hash && slot.key.as_ref() == Some(key.get())
        };
        // A plain lookup first: collapsing a duplicate is the hot path, and
        // `entry` would reserve table capacity on every call.
        if let Some(&index) = self.table.find(widen(hash), eq) {
            return (index, false, key.owned());
        }
        if self.table.len() == self.table.capacity() && !self.dead.is_empty() {
            // Make room from emptied slots rather than grow.
            self.purge();
        }
        let slot = Slot {
            key: Some(key.into_owned()),
            hash,
            word: 0,
        };
        let index = match self.free.pop() {
            Some(index) => {
                // The generation carries over to the next key in this slot,
                // so a stale guard of the previous one never matches.
                let generation = self.slots[index as usize].word & !FLAG_MASK;
                self.slots[index as usize] = Slot {
                    word: generation,
                    ..slot
                };
                if let Some(mark) = self.order_marks.get_mut(index as usize) {
                    *mark = OrderMark {
                        priority: NO_PRIORITY,
                        seq: 0,
                    };
                }
                index
            }
            None => {
                self.slots.push(slot);
                if self.delays_on {
                    self.delay_marks.push(DelayMark::default());
                }
                if self.order_on {
                    self.order_marks.push(OrderMark {
                        priority: NO_PRIORITY,
                        seq: 0,
                    });
                }
                // Slot numbers are u32: 4 billion keys in one shard is beyond any queue.
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        match self.table.entry(
            widen(hash),
            |&i| i == index,
            |&i| widen(slots[i as usize].hash),
        ) {
            Entry::Vacant(vacant) => {
                vacant.insert(index);
            }
            Entry::Occupied(_) => unreachable!("a fresh slot number is in no table entry"),
        }
        if let Some(times) = &mut self.times {
            times.reset(index);
        }
        (index, true, None)
    }

    /// The slot `index`, if it holds a key.
    pub(crate) fn get(&self, index: u32) -> Option<&Slot<T>> {
        self.slots.get(index as usize).filter(|s| s.key.is_some())
    }

    /// The slot `index`, if it holds a key.
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(index as usize)
            .filter(|s| s.key.is_some())
    }

    /// Forgets the key in slot `index` and returns it.
    ///
    /// The slot's table entry stays behind for now (lookups compare keys,
    /// and an empty slot matches none): removing it at once would cost a
    /// random access to the table per key, which dominated large queues.
    /// Emptied slots are purged together once they make up a quarter of
    /// the table, in one sequential pass, and only then reused.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let key = slot.key.take()?;
        slot.word &= !FLAG_MASK;
        self.dead.push(index);
        if self.live() == 0 && self.slots.len() > KEEP_CAPACITY {
            // The shard emptied after a burst: give the memory back.
            self.slots = Vec::new();
            self.free = Vec::new();
            self.dead = Vec::new();
            self.table = HashTable::new();
            self.delay_marks = Vec::new();
            self.order_marks = Vec::new();
            if let Some(times) = &mut self.times {
                times.clear();
            }
        } else if self.dead.len() >= PURGE_AT.max(self.table.capacity() / 4) {
            self.purge();
        }
        Some(key)
    }

    /// Drops the table entries of emptied slots and makes the slots reusable.
    /// The emptied slots are marked in a bitmap first, so the pass over the
    /// table reads only the table (in order) and the bitmap (small enough
    /// to stay in cache), never the slots.
    fn purge(&mut self) {
        let mut emptied = vec![0u64; self.slots.len().div_ceil(64)];
        for &i in &self.dead {
            emptied[i as usize / 64] |= 1 << (i % 64);
        }
        self.table.retain(|&mut i| {
            emptied
                .get(i as usize / 64)
                .is_none_or(|word| word & (1 << (i % 64)) == 0)
        });
        self.free.append(&mut self.dead);
    }

    /// Keeps the delay marks from now on (once the shard sees its first delay).
    pub(crate) fn enable_delays(&mut self) {
        if !self.delays_on {
            self.delays_on = true;
            self.delay_marks
                .resize(self.slots.len(), DelayMark::default());
        }
    }

    /// Keeps the order marks from now on (when the queue enters priority
    /// mode): a pending key has priority 0 (every add so far had it), a key
    /// only being processed has none yet.
    pub(crate) fn enable_order(&mut self) {
        if self.order_on {
            return;
        }
        self.order_on = true;
        self.order_marks = self
            .slots
            .iter()
            .map(|s| OrderMark {
                priority: if s.is(DIRTY | DELAYED) {
                    0
                } else {
                    NO_PRIORITY
                },
                seq: 0,
            })
            .collect();
    }

    /// Whether the queue is in priority mode (as this shard knows it).
    pub(crate) fn ordered(&self) -> bool {
        self.order_on
    }

    /// Every occupied slot.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Slot<T>)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key.is_some())
            .map(|(i, s)| (i as u32, s))
    }
}

/// A key given to an add: owned (moved in if new) or borrowed (cloned only if new).
#[derive(Debug)]
pub(crate) enum KeyArg<'a, T> {
    Owned(T),
    Borrowed(&'a T),
}

impl<T: Clone> KeyArg<'_, T> {
    pub(crate) fn get(&self) -> &T {
        match self {
            KeyArg::Owned(key) => key,
            KeyArg::Borrowed(key) => key,
        }
    }

    pub(crate) fn into_owned(self) -> T {
        match self {
            KeyArg::Owned(key) => key,
            KeyArg::Borrowed(key) => key.clone(),
        }
    }

    /// The key if it is owned (to be dropped by the caller).
    fn owned(self) -> Option<T> {
        match self {
            KeyArg::Owned(key) => Some(key),
            KeyArg::Borrowed(_) => None,
        }
    }
}
