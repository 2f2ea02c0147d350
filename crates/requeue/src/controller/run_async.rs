//! The async runner: one tokio task per worker, each running the worker
//! loop.

#![cfg(feature = "tokio")]

use super::handler::Async;
use super::policy::ErrorPolicy;
use super::{Action, Controller, Summary};
use crate::engine::AsyncQueue;
use crate::queue::Key;
use crate::wait::Stop;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> Controller<T, Q, P> {
    /// Runs the workers as tokio tasks until `stop` fires; the async twin of
    /// [`run`](Controller::run), with the same loop and rules, on any
    /// engine. Must be called inside a tokio runtime.
    pub async fn run_async<E, F, Fut>(&self, stop: &Stop, handler: F) -> Summary
    where
        E: fmt::Display + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: ErrorPolicy<T, E>,
    {
        let handler = Arc::new(Async(handler));
        self.report(|m| m.max_concurrent_reconciles(self.workers));
        let resync = self.resync.is_some().then(|| {
            let (this, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move { this.run_resync(&stop).await })
        });
        let tasks: Vec<_> = (0..self.workers)
            .map(|_| {
                let (this, stop, handler) = (self.clone(), stop.clone(), handler.clone());
                tokio::spawn(async move { this.work(&stop, &*handler).await })
            })
            .collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a controller worker task failed");
            }
        }
        if let Some(resync) = resync {
            let _ = resync.await;
        }
        self.finish().await
    }
}
