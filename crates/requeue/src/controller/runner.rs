//! The blocking runner: one thread per worker.

use super::settle::verdict;
use super::{Action, Controller, Summary};
use crate::exec::block_on;
use crate::queue::{Key, WorkQueue};
use crate::wait::Stop;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

impl<T: Key + fmt::Debug> Controller<T, WorkQueue<T>> {
    /// Runs the workers on threads until `stop` fires: each takes a key,
    /// calls `handler`, and settles the outcome. After the stop every worker
    /// finishes the key in hand; then the queue is shut down and the summary
    /// returned.
    pub fn run<E: fmt::Display>(
        &self,
        stop: &Stop,
        handler: impl Fn(&T) -> Result<Action, E> + Sync,
    ) -> Summary {
        self.report(|m| m.max_concurrent_reconciles(self.workers));
        std::thread::scope(|scope| {
            if self.resync.is_some() {
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-resync", self.queue.name()))
                    .spawn_scoped(scope, || block_on(self.run_resync(stop)));
                if let Err(error) = spawned {
                    tracing::error!(%error, "cannot start the resync loop");
                }
            }
            for n in 0..self.workers {
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-worker-{n}", self.queue.name()))
                    .spawn_scoped(scope, || self.work(stop, &handler));
                if let Err(error) = spawned {
                    tracing::error!(%error, "cannot start a controller worker");
                }
            }
        });
        self.finish()
    }

    fn work<E: fmt::Display>(
        &self,
        stop: &Stop,
        handler: &(impl Fn(&T) -> Result<Action, E> + Sync),
    ) {
        while !stop.is_stopped() {
            let Ok(item) = self.queue.get_until(stop) else {
                break;
            };
            let attempt = self.queue.num_requeues(&item) + 1;
            let span = tracing::info_span!(
                "reconcile",
                queue = self.queue.name(),
                key = ?*item,
                attempt,
            );
            let _entered = span.enter();
            self.report(|m| m.active_workers(1));
            let outcome = catch_unwind(AssertUnwindSafe(|| handler(&item)));
            self.report(|m| m.active_workers(-1));
            if outcome.is_err() {
                tracing::error!(key = ?*item, "the handler panicked; retrying the key");
            }
            let outcome =
                outcome.map_err(|payload| crate::crash::panic_message(&*payload).to_string());
            self.settle(item, verdict(outcome), Some(attempt));
        }
    }

    /// Shuts the queue down and reports.
    fn finish(&self) -> Summary {
        let withdrawn = self.queue.shut_down();
        self.counters.summary(self.queue.len(), withdrawn.len())
    }
}
