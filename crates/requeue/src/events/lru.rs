//! A fixed-size least-recently-used map (k8s.io/utils/lru), as the event
//! correlator's three caches use it.

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
    entries: HashMap<K, (V, u64), foldhash::fast::RandomState>,
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

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn touch(&mut self, key: &K, previous: u64) -> u64 {
        self.by_use.remove(&previous);
        self.uses += 1;
        self.by_use.insert(self.uses, key.clone());
        self.uses
    }

    /// Inserts or overwrites `key`, marking it most recently used.
    pub(crate) fn add(&mut self, key: K, value: V) {
        let previous = self.entries.get(&key).map(|(_, used)| *used);
        let used = match previous {
            Some(previous) => self.touch(&key, previous),
            None => {
                if self.entries.len() >= self.capacity
                    && let Some((_, oldest)) = self.by_use.pop_first()
                {
                    self.entries.remove(&oldest);
                }
                self.uses += 1;
                self.by_use.insert(self.uses, key.clone());
                self.uses
            }
        };
        self.entries.insert(key, (value, used));
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
    fn a_zero_capacity_still_holds_one_entry() {
        let mut lru = Lru::new(0);
        lru.add(1, "x");
        lru.add(2, "y");
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get(&2).copied(), Some("y"));
    }
}
