//! Crate-local synchronisation shim.
//!
//! Every lock, condition variable and atomic the crate uses comes from here,
//! so that a model checker can be swapped in under `cfg(requeue_loom)`
//! without touching the code that uses them (the pattern tokio uses).
//! Poisoning is ignored on purpose: every critical section in this crate
//! leaves its data consistent before it can panic, so a poisoned lock still
//! guards valid state.

pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// Locks `mutex`, recovering the guard if another thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
