//! The ready line of a queue whose items all have priority 0: a lock-free
//! FIFO of [`Handle`]s.
//!
//! Producers push and consumers pop without a common lock, so a thread
//! preempted in the middle of an operation never stalls the others (a
//! shared lock on two cores turns every such preemption into a convoy).
//! Order is the order in which pushes take effect. Pushes happen under
//! the pushed key's shard lock, which is what lets the queue switch to its
//! ordered (priority) line without losing a push in flight; see
//! [`super::order`].

use super::shard::Handle;

/// A FIFO of handles, safe to push and pop from any thread.
#[derive(Debug)]
pub(crate) struct Fifo {
    /// One handle per ready key: a key is pushed when it becomes ready
    /// (never while it already is) and popped when it is handed out. So
    /// it holds the queue's own contents, which the user's workload
    /// bounds, as in client-go; it is never capped (that would lose items).
    #[cfg(not(requeue_loom))]
    line: crossbeam_queue::SegQueue<Handle>,
    /// loom cannot see inside crossbeam; a locked deque is linearizable
    /// too, which is all the queue's protocols assume of the FIFO.
    #[cfg(requeue_loom)]
    line: crate::sync::Mutex<std::collections::VecDeque<Handle>>,
}

impl Fifo {
    pub(crate) fn new() -> Self {
        Fifo {
            #[cfg(not(requeue_loom))]
            line: crossbeam_queue::SegQueue::new(),
            #[cfg(requeue_loom)]
            line: crate::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }
}

#[cfg(not(requeue_loom))]
impl Fifo {
    pub(crate) fn push(&self, handle: Handle) {
        self.line.push(handle);
    }

    pub(crate) fn pop(&self) -> Option<Handle> {
        self.line.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.line.is_empty()
    }
}

#[cfg(requeue_loom)]
impl Fifo {
    pub(crate) fn push(&self, handle: Handle) {
        crate::sync::lock(&self.line).push_back(handle);
    }

    pub(crate) fn pop(&self) -> Option<Handle> {
        crate::sync::lock(&self.line).pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        crate::sync::lock(&self.line).is_empty()
    }
}
