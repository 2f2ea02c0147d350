//! Items fetched ahead: when workers end their items, the same call that
//! ends them also leases as many new ones (up to a bound), which their
//! next `get` then takes without a round trip. Each has its own lease and
//! fencing token from the moment it arrives, renewed like any other; an
//! item nobody claims soon is given back, and shutting down gives back
//! every one. If the process dies, their leases run out and they come
//! back like any other held item.
//!
//! In Redis an item fetched ahead is leased, that is, being processed: an
//! add of it meanwhile parks it (it is processed once more afterwards)
//! where a queued item would merge. Nothing is lost and nothing runs
//! twice at once, but it is a difference from client-go, so fetching
//! ahead is off unless the builder turns it on.

use crate::ops::Leased;
use parking_lot::Mutex;
use requeue::engine::remote::LeaseState;
use std::collections::VecDeque;
use std::sync::Arc;

/// The default of `RedisQueueBuilder::prefetch`: off, because an item
/// fetched ahead counts as being processed (see there).
pub const DEFAULT_PREFETCH: usize = 0;

/// One item fetched ahead.
pub(crate) struct Fetched {
    pub(crate) leased: Leased,
    /// Its lease, already in the keeper's table (so it is renewed).
    pub(crate) state: Arc<LeaseState>,
    /// Local ms when it arrived.
    pub(crate) at_ms: u64,
}

/// The items fetched ahead, oldest first; at most `bound`.
pub(crate) struct Ahead {
    items: Mutex<VecDeque<Fetched>>,
    bound: usize,
}

impl Ahead {
    pub(crate) fn new(bound: usize) -> Self {
        Ahead {
            items: Mutex::new(VecDeque::with_capacity(bound)),
            bound,
        }
    }

    /// The most it holds (`RedisQueueBuilder::prefetch`; 0: fetching
    /// ahead is off).
    pub(crate) fn capacity(&self) -> usize {
        self.bound
    }

    /// How many more it may hold.
    pub(crate) fn room(&self) -> usize {
        self.bound.saturating_sub(self.items.lock().len())
    }

    /// Keeps `item`, or hands it back when full.
    pub(crate) fn keep(&self, item: Fetched) -> Result<(), Fetched> {
        let mut items = self.items.lock();
        if items.len() >= self.bound {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }

    /// The oldest item, if any.
    pub(crate) fn take(&self) -> Option<Fetched> {
        self.items.lock().pop_front()
    }

    /// Every item that arrived before local ms `before`.
    pub(crate) fn take_older(&self, before: u64) -> Vec<Fetched> {
        let mut items = self.items.lock();
        let stale = items.iter().take_while(|f| f.at_ms < before).count();
        items.drain(..stale).collect()
    }

    /// Every item.
    pub(crate) fn take_all(&self) -> Vec<Fetched> {
        self.items.lock().drain(..).collect()
    }

    /// Whether `raw` under `token` is here (fetched, not handed out).
    pub(crate) fn holds(&self, raw: &[u8], token: crate::ops::Token) -> bool {
        self.items
            .lock()
            .iter()
            .any(|f| f.leased.item == raw && f.leased.token == token)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.lock().len()
    }
}
