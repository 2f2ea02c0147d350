//! The blocking runner: one thread per worker, each driving the worker
//! loop with `block_on`.

use super::handler::Blocking;
use super::policy::ErrorPolicy;
use super::{Action, Controller, Summary};
use crate::engine::AsyncQueue;
use crate::exec::block_on;
use crate::queue::Key;
use crate::wait::Stop;
use std::fmt;

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> Controller<T, Q, P> {
    /// Runs the workers on threads until `stop` fires: each takes a key,
    /// calls `handler`, and settles the outcome. After the stop every worker
    /// finishes the key in hand; then the queue is shut down and the summary
    /// returned.
    ///
    /// Each thread drives the same worker loop as
    /// [`run_async`](Controller::run_async), parking between polls, so
    /// `Q` is any engine whose futures complete without an async runtime
    /// around them (the in-memory [`WorkQueue`](crate::queue::WorkQueue)
    /// does; an engine built on tokio I/O belongs with `run_async`).
    pub fn run<E: fmt::Display>(
        &self,
        stop: &Stop,
        handler: impl Fn(&T) -> Result<Action, E> + Sync,
    ) -> Summary
    where
        P: ErrorPolicy<T, E>,
    {
        self.report(|m| m.max_concurrent_reconciles(self.workers));
        let handler = Blocking(&handler);
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
                    .spawn_scoped(scope, || block_on(self.work(stop, &handler)));
                if let Err(error) = spawned {
                    tracing::error!(%error, "cannot start a controller worker");
                }
            }
        });
        block_on(self.finish())
    }
}
