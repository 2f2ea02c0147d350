//! A set of registered wakers with keys that are never reused.
//!
//! Used by every primitive that tasks and threads wait on (stop signals,
//! groups). Blocking callers wait through [`crate::exec::block_on`], whose
//! waker unparks the thread, so one kind of waiter serves both worlds.
//! Keys are never reused, so a waiter holding a key from before a
//! [`drain`](WakerSet::drain) can tell it is gone and register again instead
//! of touching someone else's entry.

use std::collections::HashMap;
use std::task::Waker;

/// Wakers indexed by a never-reused key.
#[derive(Debug, Default)]
pub(crate) struct WakerSet {
    /// One per waiter pending now: every user removes its entry when its
    /// wait ends or its future is dropped (`Stopped`, `AllFinished`, the
    /// queue's drain wait), and `drain` empties it when they are all woken.
    wakers: HashMap<u64, Waker>,
    next_key: u64,
}

impl WakerSet {
    /// Registers `waker` under `key` (keeping it if it would wake the same
    /// task), or under a fresh key when `key` is `None` or gone. Returns the
    /// key now in use.
    pub(crate) fn register(&mut self, key: Option<u64>, waker: &Waker) -> u64 {
        if let Some(existing) = key.and_then(|k| self.wakers.get_mut(&k)) {
            if !existing.will_wake(waker) {
                existing.clone_from(waker);
            }
            if let Some(k) = key {
                return k;
            }
        }
        let k = self.next_key;
        self.next_key += 1;
        self.wakers.insert(k, waker.clone());
        k
    }

    /// Removes the waker under `key`, if still present.
    pub(crate) fn remove(&mut self, key: u64) {
        self.wakers.remove(&key);
    }

    /// Removes and returns every waker, so they can be woken outside the lock.
    pub(crate) fn drain(&mut self) -> Vec<Waker> {
        self.wakers.drain().map(|(_, w)| w).collect()
    }

    /// Number of registered wakers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.wakers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_updates_and_are_never_reused_after_drain() {
        let mut set = WakerSet::default();
        let a = set.register(None, Waker::noop());
        assert_eq!(set.register(Some(a), Waker::noop()), a);
        let b = set.register(None, Waker::noop());
        assert_ne!(a, b);
        set.remove(a);
        assert_eq!(set.len(), 1);
        assert_eq!(set.drain().len(), 1);
        let c = set.register(Some(b), Waker::noop());
        assert!(c != a && c != b, "a stale key gets a fresh registration");
        assert_eq!(set.len(), 1);
    }
}
