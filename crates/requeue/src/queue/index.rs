//! Where the queue keeps its items: a slab of slots, found by key through a
//! hash table of slot numbers.
//!
//! Each item is stored once, in its slot; the ready queue and the delay
//! heap refer to it by slot number, so adding an item moves it in without a
//! copy and handing it out needs no hash lookup. The table holds only
//! a slot number and 32 bits of the key's hash, so growing or shrinking it
//! never touches the slab (that random access dominated large queues).

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

/// The item needs processing (queued, or re-added while processing).
pub(crate) const DIRTY: u8 = 1;
/// A worker holds the item.
pub(crate) const PROCESSING: u8 = 2;
/// The item is in the ready queue under `seq`.
pub(crate) const QUEUED: u8 = 4;
/// The item waits in the delay heap under `seq`, until `delay_at`.
pub(crate) const DELAYED: u8 = 8;

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

/// What the queue knows about one item.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    /// `None` once the slot is free.
    pub(crate) key: Option<T>,
    hash: u32,
    /// Sequence of the item's entry in the ready queue or the delay heap.
    pub(crate) seq: u64,
    pub(crate) delay_at: Option<Instant>,
    /// Which hand-out the current processing belongs to.
    pub(crate) hand_out: u64,
    /// Highest priority among the adds since the item was last handed out.
    pub(crate) priority: i32,
    pub(crate) flags: u8,
}

impl<T> Slot<T> {
    pub(crate) fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
    pub(crate) fn set(&mut self, flag: u8) {
        self.flags |= flag;
    }
    pub(crate) fn clear(&mut self, flag: u8) {
        self.flags &= !flag;
    }
}

#[derive(Debug)]
pub(crate) struct Index<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// `(slot, hash32)`; see [`widen`].
    table: HashTable<(u32, u32)>,
    hasher: foldhash::fast::RandomState,
}

/// The table's 64-bit hash, rebuilt from the 32 bits it stores: the high
/// half feeds hashbrown's 7-bit tag, the low half its bucket index.
fn widen(hash32: u32) -> u64 {
    (u64::from(hash32) << 32) | u64::from(hash32)
}

/// Slabs smaller than this are kept when the queue empties.
const KEEP_CAPACITY: usize = 1024;

impl<T: Eq + Hash> Index<T> {
    pub(crate) fn new() -> Self {
        Index {
            slots: Vec::new(),
            free: Vec::new(),
            table: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn hash32(&self, key: &T) -> u32 {
        let full = self.hasher.hash_one(key);
        (full ^ (full >> 32)) as u32
    }

    /// The slot of `key`, if the queue knows it.
    pub(crate) fn find(&self, key: &T) -> Option<u32> {
        let hash = self.hash32(key);
        let slots = &self.slots;
        self.table
            .find(widen(hash), |&(i, h)| {
                h == hash && slots[i as usize].key.as_ref() == Some(key)
            })
            .map(|&(i, _)| i)
    }

    /// The slot of `key`, creating an empty one (priority `priority`, no
    /// flags) that takes the key over if there is none. Returns the key
    /// back when it was already known (an owned key), so the caller can
    /// drop it outside the lock.
    pub(crate) fn find_or_insert(&mut self, key: KeyArg<'_, T>, priority: i32) -> (u32, Option<T>)
    where
        T: Clone,
    {
        let hash = self.hash32(key.get());
        let slots = &self.slots;
        let eq =
            |&(i, h): &(u32, u32)| h == hash && slots[i as usize].key.as_ref() == Some(key.get());
        // A plain lookup first: collapsing a duplicate is the hot path, and
        // `entry` would reserve table capacity on every call.
        if let Some(&(index, _)) = self.table.find(widen(hash), eq) {
            return (index, key.owned());
        }
        match self.table.entry(widen(hash), eq, |&(_, h)| widen(h)) {
            Entry::Occupied(found) => (found.get().0, key.owned()),
            Entry::Vacant(vacant) => {
                let slot = Slot {
                    key: Some(key.into_owned()),
                    hash,
                    seq: 0,
                    delay_at: None,
                    hand_out: 0,
                    priority,
                    flags: 0,
                };
                let index = match self.free.pop() {
                    Some(index) => {
                        self.slots[index as usize] = slot;
                        index
                    }
                    None => {
                        self.slots.push(slot);
                        // Slot numbers are u32: 4 billion live items is beyond any queue.
                        (self.slots.len() - 1) as u32
                    }
                };
                vacant.insert((index, hash));
                (index, None)
            }
        }
    }

    /// The slot `index`, if it holds an item.
    pub(crate) fn get(&self, index: u32) -> Option<&Slot<T>> {
        self.slots.get(index as usize).filter(|s| s.key.is_some())
    }

    /// The slot `index`, if it holds an item.
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(index as usize)
            .filter(|s| s.key.is_some())
    }

    /// Forgets the item in slot `index` and returns it.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let key = slot.key.take()?;
        if let Ok(found) = self
            .table
            .find_entry(widen(slot.hash), |&(i, _)| i == index)
        {
            found.remove();
        }
        self.free.push(index);
        if self.table.is_empty() && self.slots.len() > KEEP_CAPACITY {
            // The queue emptied after a burst: give the memory back.
            self.slots = Vec::new();
            self.free = Vec::new();
            self.table = HashTable::new();
        }
        Some(key)
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
