//! The simulated fleet: the objects' keys, which keys are hot (updated
//! often) or flaky (fail several times in a row), and what happened to each key.

use requeue::events::ObjectReference;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// Objects per namespace, so 5,000 objects are 50 namespaces × 100.
pub const PER_NAMESPACE: usize = 100;

/// The kind the Warning events name.
const KIND: &str = "Widget";
const API_VERSION: &str = "demo.requeue.dev/v1";

/// The fleet and its per-key tallies (shared by the workers and the view).
/// Every vector and the index are sized by `--objects` when it is built;
/// nothing in it grows with run time (the tallies are fixed-size atomics).
#[derive(Debug)]
pub struct Fleet {
    keys: Vec<String>,
    index: HashMap<String, usize>,
    /// The keys the update stream hits most.
    pub hot: Vec<usize>,
    /// Per key: how many failures in a row a flaky key has before it
    /// succeeds (0: not flaky).
    flaky: Vec<u32>,
    /// Per key: handler calls.
    attempts: Vec<AtomicU32>,
    /// Per key: handler calls that failed or panicked (each one a retry).
    failures: Vec<AtomicU32>,
}

impl Fleet {
    /// `objects` keys; about `fail_rate / 5` of them flaky, 1 % hot, chosen by `seed`.
    pub fn new(objects: usize, fail_rate: f64, seed: u64) -> Self {
        let keys: Vec<String> = (0..objects)
            .map(|i| format!("ns-{}/obj-{}", i / PER_NAMESPACE, i % PER_NAMESPACE))
            .collect();
        let index = keys.iter().cloned().zip(0..).collect();
        let mut rng = fastrand::Rng::with_seed(seed);
        let hot = (0..(objects / 100).max(1))
            .map(|_| rng.usize(..objects))
            .collect();
        let mut flaky = vec![0; objects];
        if fail_rate > 0.0 {
            // Float to count: the product is small and non-negative.
            let count = ((objects as f64 * fail_rate / 5.0).round() as usize).clamp(1, objects);
            for _ in 0..count {
                flaky[rng.usize(..objects)] = rng.u32(3..=10);
            }
        }
        Fleet {
            attempts: (0..objects).map(|_| AtomicU32::new(0)).collect(),
            failures: (0..objects).map(|_| AtomicU32::new(0)).collect(),
            keys,
            index,
            hot,
            flaky,
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of namespaces.
    pub fn namespaces(&self) -> usize {
        self.keys.len().div_ceil(PER_NAMESPACE)
    }

    /// The key of object `i`.
    pub fn key(&self, i: usize) -> &str {
        &self.keys[i]
    }

    /// Every key (what a resync lists).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The position of `key` in the fleet.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// How many failures in a row key `i` has before it succeeds (0: not flaky).
    pub fn flaky_streak(&self, i: usize) -> u32 {
        self.flaky[i]
    }

    /// Counts a handler call for key `i`; returns which call it is (0-based).
    pub fn attempt(&self, i: usize) -> u32 {
        self.attempts[i].fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a failure (or panic) of key `i`.
    pub fn failed(&self, i: usize) {
        self.failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Failures (and panics) of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        self.position(key)
            .map_or(0, |i| self.failures[i].load(Ordering::Relaxed))
    }

    /// Whether key `i`'s handler ran at least once.
    pub fn was_reconciled(&self, i: usize) -> bool {
        self.attempts[i].load(Ordering::Relaxed) > 0
    }

    /// Notes that key `i` was reconciled elsewhere (by a worker process):
    /// it counts in [`reconciled`](Fleet::reconciled), not as an attempt here.
    pub fn mark_reconciled(&self, i: usize) {
        if let Some(attempts) = self.attempts.get(i) {
            attempts.fetch_max(1, Ordering::Relaxed);
        }
    }

    /// Keys whose handler ran at least once.
    pub fn reconciled(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// Keys whose handler never ran.
    pub fn unreconciled(&self) -> impl Iterator<Item = &str> {
        self.attempts
            .iter()
            .zip(&self.keys)
            .filter(|(a, _)| a.load(Ordering::Relaxed) == 0)
            .map(|(_, key)| key.as_str())
    }

    /// Sum of the per-key handler calls.
    pub fn total_attempts(&self) -> u64 {
        self.attempts
            .iter()
            .map(|a| u64::from(a.load(Ordering::Relaxed)))
            .sum()
    }

    /// The `n` keys with the most failures so far, most first: (key, failures).
    pub fn most_retried(&self, n: usize) -> Vec<(&str, u32)> {
        let mut ranked: Vec<(usize, u32)> = self
            .failures
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .enumerate()
            .filter(|&(_, f)| f > 0)
            .collect();
        // Ties broken by position so the list does not flicker.
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(n)
            .map(|(i, f)| (self.keys[i].as_str(), f))
            .collect()
    }
}

/// The object a key names, for its Warning events.
pub fn object_of(key: &str) -> ObjectReference {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectReference::new(KIND, namespace, name).with_api_version(API_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spread_over_namespaces_of_a_hundred() {
        let fleet = Fleet::new(250, 0.05, 1);
        assert_eq!(fleet.len(), 250);
        assert_eq!(fleet.namespaces(), 3);
        assert_eq!(fleet.key(0), "ns-0/obj-0");
        assert_eq!(fleet.key(249), "ns-2/obj-49");
        assert_eq!(fleet.position("ns-1/obj-5"), Some(105));
        assert_eq!(fleet.position("ns-9/obj-0"), None);
        assert!((0..250).any(|i| fleet.flaky_streak(i) > 0));
    }

    #[test]
    fn no_failures_means_no_flaky_keys() {
        let fleet = Fleet::new(500, 0.0, 1);
        assert!((0..500).all(|i| fleet.flaky_streak(i) == 0));
    }

    #[test]
    fn the_most_retried_come_first() {
        let fleet = Fleet::new(10, 0.0, 1);
        fleet.failed(3);
        fleet.failed(7);
        fleet.failed(7);
        assert_eq!(
            fleet.most_retried(5),
            [("ns-0/obj-7", 2), ("ns-0/obj-3", 1)]
        );
    }

    #[test]
    fn keys_reconciled_elsewhere_count_once() {
        let fleet = Fleet::new(10, 0.0, 1);
        fleet.mark_reconciled(4);
        fleet.mark_reconciled(4);
        fleet.mark_reconciled(99); // not a key: ignored
        assert!(fleet.was_reconciled(4) && !fleet.was_reconciled(5));
        assert_eq!(fleet.reconciled(), 1);
    }

    #[test]
    fn objects_are_named_after_their_key() {
        let object = object_of("ns-4/obj-2");
        assert_eq!(
            (object.namespace.as_str(), object.name.as_str()),
            ("ns-4", "obj-2")
        );
    }
}
