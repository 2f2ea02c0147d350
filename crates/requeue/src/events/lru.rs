//! A fixed-size least-recently-used map (k8s.io/utils/lru), as the event
//! correlator's three caches and the series recorder's cache use it.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Holds at most `capacity` entries; adding one more evicts the entry used
/// least recently. Both [`add`](Lru::add) and [`get`](Lru::get) count as a use.
///
/// Recency is a counter per use, ordered in a `BTreeMap`, so every
/// operation is `O(log n)` without any `unsafe` linked list.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    /// At most `capacity` entries: an add beyond it evicts one first.
    entries: HashMap<K, (V, u64), foldhash::fast::RandomState>,
    /// One entry per entry of `entries` (its last use), so also at most `capacity`.
    by_use: BTreeMap<u64, K>,
    uses: u64,
}

impl<K: Eq + Hash + Clone, V> Lru<K, V> {
    /// An empty cache of `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            entries: HashMap::default(),
            by_use: BTreeMap::new(),
            uses: 0,
        }
    }

    /// How many entries it holds (at most its capacity).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Changes the capacity (at least one), evicting the least recently
    /// used entries beyond it; returns them, least recent first.
    pub(crate) fn set_capacity(&mut self, capacity: usize) -> Vec<(K, V)> {
        self.capacity = capacity.max(1);
        let mut evicted = Vec::new();
        while self.entries.len() > self.capacity {
            match self.evict() {
                Some(entry) => evicted.push(entry),
                None => break,
            }
        }
        evicted
    }

    /// Removes the least recently used entry.
    fn evict(&mut self) -> Option<(K, V)> {
        let (_, oldest) = self.by_use.pop_first()?;
        let (value, _) = self.entries.remove(&oldest)?;
        Some((oldest, value))
    }

    fn touch(&mut self, key: &K, previous: u64) -> u64 {
        self.by_use.remove(&previous);
        self.uses += 1;
        self.by_use.insert(self.uses, key.clone());
        self.uses
    }

    /// Inserts or overwrites `key`, marking it most recently used. A new
    /// key in a full cache evicts the least recently used entry, which is
    /// returned.
    pub(crate) fn add(&mut self, key: K, value: V) -> Option<(K, V)> {
        let previous = self.entries.get(&key).map(|(_, used)| *used);
        let mut evicted = None;
        let used = match previous {
            Some(previous) => self.touch(&key, previous),
            None => {
                if self.entries.len() >= self.capacity {
                    evicted = self.evict();
                }
                self.uses += 1;
                self.by_use.insert(self.uses, key.clone());
                self.uses
            }
        };
        self.entries.insert(key, (value, used));
        evicted
    }

    /// The value under `key`, marking it most recently used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (stored, (_, previous)) = self.entries.get_key_value(key)?;
        let (stored, previous) = (stored.clone(), *previous);
        let used = self.touch(&stored, previous);
        let entry = self.entries.get_mut(key)?;
        entry.1 = used;
        Some(&mut entry.0)
    }

    /// The value under `key`, leaving its recency as it is.
    pub(crate) fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// The value under `key`, mutable, leaving its recency as it is.
    pub(crate) fn peek_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (value, used) = self.entries.remove(key)?;
        self.by_use.remove(&used);
        Some(value)
    }

    /// Keeps only the entries for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let by_use = &mut self.by_use;
        self.entries.retain(|key, (value, used)| {
            let kept = keep(key, value);
            if !kept {
                by_use.remove(used);
            }
            kept
        });
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, (value, _))| (key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut lru = Lru::new(2);
        lru.add("a", 1);
        lru.add("b", 2);
        assert_eq!(lru.get(&"a").copied(), Some(1)); // a is now the most recent
        lru.add("c", 3); // evicts b
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a").copied(), Some(1));
        assert_eq!(lru.get(&"c").copied(), Some(3));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn overwriting_refreshes_without_evicting() {
        let mut lru = Lru::new(2);
        lru.add("a", 1);
        lru.add("b", 2);
        lru.add("a", 10);
        lru.add("c", 3); // evicts b, the least recent
        assert_eq!(lru.get(&"a").copied(), Some(10));
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.by_use.len(), lru.len(), "no stale recency entries");
    }

    #[test]
    fn evictions_are_returned_and_removal_keeps_the_recency_index_in_step() {
        let mut lru = Lru::new(2);
        assert_eq!(lru.add("a", 1), None);
        assert_eq!(lru.add("b", 2), None);
        assert_eq!(lru.add("c", 3), Some(("a", 1)));
        assert_eq!(lru.peek(&"b").copied(), Some(2)); // no touch: b stays oldest
        assert_eq!(lru.add("d", 4), Some(("b", 2)));
        assert_eq!(lru.remove(&"c"), Some(3));
        lru.retain(|_, v| *v != 4);
        assert_eq!((lru.len(), lru.by_use.len()), (0, 0));
        for (k, v) in [("x", 1), ("y", 2), ("z", 3)] {
            lru.add(k, v);
        }
        assert_eq!(lru.set_capacity(1), vec![("y", 2)]);
        assert_eq!(lru.iter().collect::<Vec<_>>(), [(&"z", &3)]);
    }

    #[test]
    fn a_zero_capacity_still_holds_one_entry() {
        let mut lru = Lru::new(0);
        lru.add(1, "x");
        lru.add(2, "y");
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get(&2).copied(), Some("y"));
    }
}
