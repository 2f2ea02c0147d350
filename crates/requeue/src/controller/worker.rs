//! The one worker loop: take a key, reconcile it inside its span, settle
//! it. Blocking workers drive it with `block_on` on their own threads,
//! async workers run it as tokio tasks.
//!
//! A blocking worker waits for keys with the engine's async `get_until`
//! like any other: `block_on` parks the thread until the get's waker is
//! called. The in-memory queue's async get sees that it is driven by
//! `block_on` and waits exactly as its blocking get does (it also wakes
//! when the earliest delayed key is due, and promotes it itself rather
//! than waiting for the queue's timer to), so a blocking worker behaves
//! as it did when it called the blocking get, at a little less cost per
//! key (no `block_on` of its own for each get).

use super::handler::Reconcile;
use super::policy::ErrorPolicy;
use super::{Controller, Summary};
use crate::engine::{AsyncQueue, QueueError};
use crate::queue::{Item, Key};
use crate::wait::Stop;
use std::fmt;
use std::time::Duration;
use tracing::Instrument;

/// The first pause after a failed get, and the longest.
const GET_ERROR_PAUSE: Duration = Duration::from_millis(50);
const GET_ERROR_PAUSE_MAX: Duration = Duration::from_secs(5);

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> Controller<T, Q, P> {
    /// Works until `stop` fires or the queue shuts down; each key in hand
    /// is finished first.
    pub(super) async fn work<E, H>(&self, stop: &Stop, handler: &H)
    where
        E: fmt::Display,
        H: Reconcile<T, E>,
        P: ErrorPolicy<T, E>,
    {
        // Pause after a failed get, doubling while they keep failing (a
        // queue whose state is corrupt fails every get until it is
        // repaired; the worker must not spin on it).
        let mut pause = GET_ERROR_PAUSE;
        // The key the last ending took on its way (see `settle`): already
        // held, so it is handled even if `stop` fired meanwhile.
        let mut next: Option<Item<T>> = None;
        loop {
            if let Some(item) = next.take() {
                next = self.take(item, handler, stop).await;
                continue;
            }
            if stop.is_stopped() {
                break;
            }
            let item = match self.queue.get_until(stop).await {
                Ok(item) => item,
                Err(QueueError::ShutDown | QueueError::Stopped) => break,
                Err(error) => {
                    // The engine reconnects by itself; a key it cannot
                    // decode stays where it is. Keep working.
                    tracing::error!(queue = self.queue.name(), %error, "cannot take a key");
                    let clock = self.queue.clock();
                    let due = crate::clock::deadline_after(clock.now(), pause);
                    let _ = crate::wait::event::sleep_until(&**clock, stop, None, due).await;
                    pause = (pause * 2).min(GET_ERROR_PAUSE_MAX);
                    continue;
                }
            };
            pause = GET_ERROR_PAUSE;
            next = self.take(item, handler, stop).await;
        }
    }

    /// Handles one key inside its span; returns the next key if the
    /// ending took one (only while `stop` has not fired).
    async fn take<E, H>(&self, item: Item<T>, handler: &H, stop: &Stop) -> Option<Item<T>>
    where
        E: fmt::Display,
        H: Reconcile<T, E>,
        P: ErrorPolicy<T, E>,
    {
        let cause = self.causes.take(&item);
        let attempt = match item.requeues() {
            Some(requeues) => Some(requeues.saturating_add(1)),
            None => self.attempt(&item).await,
        };
        let span = tracing::info_span!(
            "reconcile",
            queue = self.queue.name(),
            key = ?*item,
            attempt,
            cause = cause.as_str(),
        );
        self.handle(item, handler, attempt, stop)
            .instrument(span)
            .await
    }

    /// Reconciles one key and settles it; returns the next key if the
    /// ending took one.
    async fn handle<E, H>(
        &self,
        item: Item<T>,
        handler: &H,
        attempt: Option<u32>,
        stop: &Stop,
    ) -> Option<Item<T>>
    where
        E: fmt::Display,
        H: Reconcile<T, E>,
        P: ErrorPolicy<T, E>,
    {
        // The outcome holds the handler's error, which need not be `Send`:
        // it becomes a verdict inside this block, before the engine is
        // awaited.
        let verdict = {
            self.report(|m| m.active_workers(1));
            let clock = self.queue.clock();
            let started = clock.now();
            let outcome = super::fencing::with_token(item.token(), handler.reconcile(&item)).await;
            let took = clock.now().saturating_duration_since(started);
            self.report(|m| {
                m.active_workers(-1);
                m.reconcile_time(took.as_secs_f64());
            });
            if outcome.is_err() {
                tracing::error!(key = ?*item, "the handler panicked");
            }
            self.verdict(&*item, outcome, attempt)
        };
        self.settle(item, verdict, attempt, stop).await
    }

    /// Which try of its key this hand-out is: 1 on the first, then one
    /// more per rate-limited retry since the key was last forgotten (the
    /// engine's `num_requeues` plus one). Read once, before the handler
    /// runs, for the span, the log and the error policy alike; `None` if
    /// the engine cannot say.
    async fn attempt(&self, key: &T) -> Option<u32> {
        let requeues = self.queue.num_requeues(key).await.ok()?;
        Some(requeues.saturating_add(1))
    }

    /// Shuts the queue down and reports the run; the causes noted for keys
    /// still queued will not be taken by this run.
    pub(super) async fn finish(&self) -> Summary {
        let withdrawn = self.queue.shut_down();
        let left = self.queue.len().await.unwrap_or(0);
        self.causes.clear();
        self.counters.summary(left, withdrawn.len())
    }
}
