//! Priority mode: the ordered ready line, and the switch into it.
//!
//! While every item has priority 0 (every client-go queue), ready keys go
//! through the lock-free [`Fifo`](super::fifo::Fifo). The first add with
//! another priority switches the queue, once and for good, to the ordered
//! line ([`ReadyQueue`](super::ready::ReadyQueue): highest priority first,
//! FIFO within a level, with the anti-starvation rule), kept under the
//! order lock, which every transition then takes before its shard's.
//!
//! # The switch
//!
//! Under the order lock, the switcher raises the queue's `ordered` flag,
//! then visits every shard under its lock and turns on its order marks.
//! A transition in FIFO mode pushes under its shard's lock after checking
//! the shard's own mark, so once the switcher has visited every shard no
//! push into the FIFO is in flight or can start: the switcher then moves
//! what the FIFO holds, in order, to the back of priority level 0, which
//! keeps the order in which those adds took effect. A getter that popped a
//! handle from the FIFO just before the move still hands it out; its key's
//! order mark says it is in no ordered level (sequence 0), so nothing
//! counts it twice.

use super::Key;
use super::core::Shared;
use super::machine::Sink;
use super::outcome::HandOut;
use crate::sync::Ordering;
use std::time::Instant;

impl<T: Key> Shared<T> {
    /// Switches the queue to the ordered line (idempotent).
    pub(crate) fn enter_ordered(&self) {
        if self.ordered.load(Ordering::Acquire) {
            return;
        }
        let mut order = self.order.lock();
        if self.ordered.load(Ordering::Acquire) {
            return;
        }
        self.ordered.store(true, Ordering::Release);
        for cell in self.shards.iter() {
            cell.lock.lock().enable_order();
        }
        while let Some(handle) = self.fifo.pop() {
            let cell = &self.shards[handle.shard()];
            let mut shard = cell.lock.lock();
            shard.move_to_ordered(handle.slot(), &mut Sink::Ordered(&mut order.ready));
            cell.publish(&shard);
        }
    }

    /// Hands out the next item of the ordered line.
    pub(crate) fn take_ordered(&self, stamp: Option<Instant>) -> Option<HandOut<T>> {
        let metrics = self.metrics.as_ref();
        let mut order = self.order.lock();
        let shards = &self.shards;
        let is_live = |handle: &super::shard::Handle, seq: u64| {
            shards[handle.shard()]
                .lock
                .lock()
                .queued_as(handle.slot(), seq)
        };
        // Every ordered transition holds the order lock, so the key found
        // live here is still ready when its shard is locked again below.
        let (handle, _) = order.ready.pop(is_live)?;
        let cell = &self.shards[handle.shard()];
        let mut shard = cell.lock.lock();
        let out = shard.hand_out(handle.slot(), stamp, metrics);
        cell.publish(&shard);
        out
    }
}
