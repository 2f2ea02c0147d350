//! Crate-local synchronisation shim.
//!
//! Every lock, condition variable and atomic the crate uses comes from here,
//! so that a model checker can be swapped in under `cfg(requeue_loom)`
//! without touching the code that uses them (the pattern tokio uses).
//! Poisoning is ignored on purpose: every critical section in this crate
//! leaves its data consistent before it can panic, so a poisoned lock still
//! guards valid state.

#[cfg(requeue_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(requeue_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(requeue_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(requeue_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
// Reference counting is not what the models check, and `Waker::from`
// needs std's `Arc`, so these stay std's under loom too.
pub(crate) use std::sync::{Arc, Weak};

/// Locks `mutex`, recovering the guard if another thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The work queue's lock. parking_lot's mutex is eventually fair: a thread
/// that has waited long gets the lock handed to it, so a producer re-adding
/// in a tight loop cannot starve the consumers (measured: W5 hot-requeue
/// 100-117k/s with std's mutex, 113-138k/s with this one). It never poisons.
#[cfg(not(requeue_loom))]
pub(crate) type QueueMutex<T> = parking_lot::Mutex<T>;

/// Under loom, the queue's lock is loom's mutex behind parking_lot's API.
#[cfg(requeue_loom)]
#[derive(Debug)]
pub(crate) struct QueueMutex<T>(Mutex<T>);

#[cfg(requeue_loom)]
impl<T> QueueMutex<T> {
    pub(crate) fn new(value: T) -> Self {
        QueueMutex(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.0)
    }
}
