//! What a process knows about the hand-outs it holds from a remote engine
//! (Redis, a database): a table of leases by key, each with its fencing
//! token and a local deadline, shared by the item guards, the renewer and
//! the drain. Engine-neutral: an engine stores its own token type and
//! does its own calls; the bookkeeping is here, once.
//!
//! ```
//! use requeue::engine::remote::LeaseTable;
//! use std::time::{Duration, Instant};
//!
//! let table: LeaseTable<u64> = LeaseTable::new(Duration::from_secs(30));
//! let until = table.until(0); // granted by a call sent at local ms 0
//! let state = table.insert(b"ns/web".to_vec(), 7, until, Instant::now());
//! assert!(state.is_valid_at(1_000));
//! // A renewal round: the engine extends what `snapshot` lists and
//! // reports back the keys whose lease was lost.
//! let sent = table.snapshot();
//! assert_eq!(table.renewed(&sent, &[], table.until(10_000)), 0);
//! assert!(state.is_valid_at(30_000));
//! assert!(table.forget(b"ns/web", 7).is_some()); // the guard ended it
//! assert!(!state.is_valid_at(1_000));
//! ```

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the holder knows about one of its leases, shared between the
/// lease table, the renewer and the item's guard.
#[derive(Debug)]
pub struct LeaseState {
    /// Cleared when the lease is reported lost or ended.
    valid: AtomicBool,
    /// Local ms until which the lease is surely held (conservative:
    /// measured from before the call that granted or renewed it, minus a
    /// margin).
    until_ms: AtomicU64,
    /// Set when the holder starts ending it: a renewal that finds it gone
    /// then most likely raced the end, whose own reply tells a real loss.
    ending: AtomicBool,
}

impl LeaseState {
    /// A valid lease, surely held until local ms `until_ms`.
    pub fn new(until_ms: u64) -> Self {
        LeaseState {
            valid: AtomicBool::new(true),
            until_ms: AtomicU64::new(until_ms),
            ending: AtomicBool::new(false),
        }
    }

    /// Marks that the holder has started ending it (before the end is sent).
    pub fn begin_end(&self) {
        self.ending.store(true, Ordering::SeqCst);
    }

    /// Whether the holder has started ending it.
    pub fn is_ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// Marks it lost or ended.
    pub fn invalidate(&self) {
        self.valid.store(false, Ordering::SeqCst);
    }

    /// Moves the deadline later (never earlier).
    pub fn extend_to(&self, until_ms: u64) {
        self.until_ms.fetch_max(until_ms, Ordering::SeqCst);
    }

    /// Whether the lease is surely held at local ms `local_ms`.
    pub fn is_valid_at(&self, local_ms: u64) -> bool {
        self.valid.load(Ordering::SeqCst) && local_ms < self.until_ms.load(Ordering::SeqCst)
    }
}

/// One lease this process holds.
#[derive(Debug, Clone)]
pub struct Held<Tk> {
    /// The engine's fencing token for this hand-out.
    pub token: Tk,
    /// Shared with the item's guard.
    pub state: Arc<LeaseState>,
    /// When it was handed out (queue clock), for the work-time metrics.
    pub started: Instant,
}

/// The leases one process holds, by the key's stored bytes.
///
/// Bounded by the guards alive: an entry goes in at hand-out and out when
/// its guard ends it (whatever the outcome), so the caller's workers bound
/// the table.
#[derive(Debug)]
pub struct LeaseTable<Tk> {
    lease: Duration,
    held: Mutex<HashMap<Vec<u8>, Held<Tk>>>,
}

impl<Tk: Copy + PartialEq> LeaseTable<Tk> {
    /// An empty table for leases of `lease`.
    pub fn new(lease: Duration) -> Self {
        LeaseTable {
            lease,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The local deadline of a lease granted (or renewed) by a call sent
    /// at local ms `sent_ms`: the lease, less a margin of a tenth of it
    /// (at most 1 s) for the trip and the clocks' drift.
    pub fn until(&self, sent_ms: u64) -> u64 {
        let lease = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let margin = (lease / 10).min(1_000);
        sent_ms.saturating_add(lease - margin)
    }

    /// Records a hand-out of `raw` under `token`, surely held until local
    /// ms `until_ms`; returns the state its guard shares.
    pub fn insert(
        &self,
        raw: Vec<u8>,
        token: Tk,
        until_ms: u64,
        started: Instant,
    ) -> Arc<LeaseState> {
        let state = Arc::new(LeaseState::new(until_ms));
        let held = Held {
            token,
            state: state.clone(),
            started,
        };
        self.held.lock().insert(raw, held);
        state
    }

    /// The token under which `raw` is held, if it is.
    pub fn token_of(&self, raw: &[u8]) -> Option<Tk> {
        self.held.lock().get(raw).map(|h| h.token)
    }

    /// Whether `raw` is still held under `token` and surely valid at
    /// local ms `local_ms`.
    pub fn holds(&self, raw: &[u8], token: Tk, local_ms: u64) -> bool {
        self.held
            .lock()
            .get(raw)
            .is_some_and(|h| h.token == token && h.state.is_valid_at(local_ms))
    }

    /// Removes `raw`'s lease if it is the one under `token` (ended or
    /// lost): its state is invalidated; returns when it was handed out.
    pub fn forget(&self, raw: &[u8], token: Tk) -> Option<Instant> {
        let mut held = self.held.lock();
        let removed = match held.get(raw) {
            Some(h) if h.token == token => held.remove(raw),
            _ => None,
        };
        drop(held);
        removed.map(|h| {
            h.state.invalidate();
            h.started
        })
    }

    /// Every lease, as the engine's renewal call needs them.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Tk)> {
        self.held
            .lock()
            .iter()
            .map(|(raw, h)| (raw.clone(), h.token))
            .collect()
    }

    /// Takes every lease out (a process giving them all back).
    pub fn drain(&self) -> Vec<(Vec<u8>, Held<Tk>)> {
        self.held.lock().drain().collect()
    }

    /// Applies a renewal round: of the leases `sent` (from
    /// [`snapshot`](LeaseTable::snapshot)), those the engine reported
    /// `lost` are invalidated, the others extended to `until_ms`. A lease
    /// that ended while the renewal was on its way is reported lost by
    /// the engine too, but is no longer here: only leases still held under
    /// the same token count. Nor does a lease whose end had begun (its
    /// end may have been applied before the renewal was): the end's own
    /// reply tells whether it was lost. Returns how many were lost.
    pub fn renewed(&self, sent: &[(Vec<u8>, Tk)], lost: &[Vec<u8>], until_ms: u64) -> usize {
        let table = self.held.lock();
        let mut really_lost = 0;
        for (raw, token) in sent {
            if let Some(h) = table.get(raw).filter(|h| h.token == *token) {
                if lost.contains(raw) && h.state.is_ending() {
                    // Raced its own end: neither lost nor to be extended.
                } else if lost.contains(raw) {
                    h.state.invalidate();
                    really_lost += 1;
                } else {
                    h.state.extend_to(until_ms);
                }
            }
        }
        really_lost
    }

    /// Calls `f` with the hand-out time of every lease (for the
    /// unfinished-work metrics).
    pub fn for_each_started(&self, mut f: impl FnMut(Instant)) {
        for held in self.held.lock().values() {
            f(held.started);
        }
    }

    /// How many leases are held.
    pub fn len(&self) -> usize {
        self.held.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lost_or_ended_is_invalid_and_a_stale_token_touches_nothing() {
        let table: LeaseTable<u32> = LeaseTable::new(Duration::from_secs(10));
        assert_eq!(table.until(0), 9_000, "a tenth off, at most 1 s");
        let now = Instant::now();
        let a = table.insert(b"a".to_vec(), 1, table.until(0), now);
        let b = table.insert(b"b".to_vec(), 2, table.until(0), now);
        assert!(table.holds(b"a", 1, 100) && !table.holds(b"a", 9, 100));
        let sent = table.snapshot();
        // `b` ended while the renewal was on its way: not lost.
        assert!(table.forget(b"b", 2).is_some());
        assert_eq!(
            table.renewed(&sent, &[b"a".to_vec(), b"b".to_vec()], 20_000),
            1
        );
        assert!(!a.is_valid_at(100) && !b.is_valid_at(100));
        assert_eq!(table.forget(b"a", 7), None, "another hand-out's token");
        assert_eq!(table.len(), 1);
        assert!(table.forget(b"a", 1).is_some());
        assert!(table.is_empty());
    }

    #[test]
    fn a_renewal_racing_the_end_is_not_a_loss() {
        let table: LeaseTable<u32> = LeaseTable::new(Duration::from_secs(10));
        let now = Instant::now();
        let ending = table.insert(b"e".to_vec(), 1, table.until(0), now);
        let held = table.insert(b"h".to_vec(), 2, table.until(0), now);
        let sent = table.snapshot();
        // `e`'s end was applied before the renewal reached the server; its
        // reply has not come back yet, so it is still in the table.
        ending.begin_end();
        let lost = [b"e".to_vec(), b"h".to_vec()];
        assert_eq!(table.renewed(&sent, &lost, 20_000), 1, "only `h` was lost");
        assert!(!held.is_valid_at(100));
        assert!(ending.is_valid_at(100), "left to the end's own reply");
    }

    #[test]
    fn a_renewal_only_moves_deadlines_later() {
        let table: LeaseTable<u32> = LeaseTable::new(Duration::from_millis(100));
        let state = table.insert(b"k".to_vec(), 1, 500, Instant::now());
        let sent = table.snapshot();
        assert_eq!(table.renewed(&sent, &[], 300), 0);
        assert!(state.is_valid_at(499), "never earlier");
        assert_eq!(table.renewed(&sent, &[], 900), 0);
        assert!(state.is_valid_at(899) && !state.is_valid_at(900));
    }
}
