//! The process-local state of a remote engine's leases: the table, the
//! health flag that makes getters renew first after a failure, and the
//! signals the renewer and the drain wait on.

use super::table::{LeaseState, LeaseTable};
use crate::clock::SharedClock;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// What one process keeps about the leases it holds from a remote engine.
/// An engine owns one and hands it out through
/// [`LeaseEngine::keeper`](super::LeaseEngine::keeper).
#[derive(Debug)]
pub struct LeaseKeeper<Tk> {
    name: String,
    /// Where the backend is, for logs (without credentials).
    endpoint: String,
    clock: SharedClock,
    /// The queue clock's reading when the keeper was built: local ms
    /// count from here.
    epoch: Instant,
    /// Bounded by the guards alive: see [`LeaseTable`].
    table: LeaseTable<Tk>,
    /// `true` while the backend answers and leases are renewed.
    healthy: watch::Sender<bool>,
    /// Asks the renewer to run now (after a connection error).
    renew_now: Notify,
    /// Signalled whenever a lease leaves the table (the drain waits on it).
    released: Notify,
    lease_lost: AtomicU64,
}

impl<Tk: Copy + PartialEq> LeaseKeeper<Tk> {
    /// A keeper for the queue `name` (for logs), with leases of `lease`,
    /// on `clock`.
    pub fn new(name: impl Into<String>, lease: Duration, clock: SharedClock) -> Self {
        LeaseKeeper {
            name: name.into(),
            endpoint: String::new(),
            epoch: clock.now(),
            clock,
            table: LeaseTable::new(lease),
            healthy: watch::Sender::new(true),
            renew_now: Notify::new(),
            released: Notify::new(),
            lease_lost: AtomicU64::new(0),
        }
    }

    /// Names the backend in the renewer's logs; it must not carry
    /// credentials (redact URLs first).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The queue's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend, for logs (empty if not named).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.table.lease()
    }

    /// The queue's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The leases held.
    pub fn table(&self) -> &LeaseTable<Tk> {
        &self.table
    }

    /// Milliseconds on the queue's clock since the keeper was built.
    pub fn local_ms(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a hand-out of `raw` under `token` by a call sent at local
    /// ms `sent_ms`; returns the state the item's guard shares.
    pub fn hand_out(&self, raw: Vec<u8>, token: Tk, sent_ms: u64) -> Arc<LeaseState> {
        let until = self.table.until(sent_ms);
        self.table.insert(raw, token, until, self.clock.now())
    }

    /// Whether `raw` is still held under `token` and surely valid now.
    pub fn still_ours(&self, raw: &[u8], token: Tk) -> bool {
        self.table.holds(raw, token, self.local_ms())
    }

    /// Removes a lease (ended or lost) and wakes the drain; returns how
    /// long it was held, if it was still in the table.
    pub fn forget(&self, raw: &[u8], token: Tk) -> Option<Duration> {
        let started = self.table.forget(raw, token);
        self.released.notify_waiters();
        started.map(|started| self.clock.now().saturating_duration_since(started))
    }

    /// Waits until no lease is held.
    pub async fn drained(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.table.is_empty() {
                return;
            }
            released.await;
        }
    }

    /// Whether the backend answered the last call and the leases are renewed.
    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// A call failed on the connection: getters wait, and the renewer
    /// runs at once, so leases are renewed before new work is taken.
    pub fn connection_failed(&self) {
        self.healthy.send_replace(false);
        self.renew_now.notify_one();
    }

    /// Waits until the renewer's next success (at once if healthy).
    pub async fn wait_healthy(&self) {
        let mut healthy = self.healthy.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = healthy.wait_for(|ok| *ok).await;
    }

    /// How many of this process's leases were lost (found taken over when
    /// ending them).
    pub fn lease_lost(&self) -> u64 {
        self.lease_lost.load(Ordering::Relaxed)
    }

    pub(super) fn count_lease_lost(&self) {
        self.lease_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.send_replace(healthy);
    }

    pub(super) fn renew_requested(&self) -> tokio::sync::futures::Notified<'_> {
        self.renew_now.notified()
    }
}
