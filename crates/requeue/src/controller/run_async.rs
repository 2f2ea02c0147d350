//! The async runner: one tokio task per worker.

#![cfg(feature = "tokio")]

use super::settle::verdict;
use super::{Action, Controller, Summary};
use crate::engine::{AsyncQueue, QueueError};
use crate::queue::Key;
use crate::wait::Stop;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument;

/// Polls a future, turning a panic into `Err` with its message.
/// The first pause after a failed get, and the longest.
const GET_ERROR_PAUSE: Duration = Duration::from_millis(50);
const GET_ERROR_PAUSE_MAX: Duration = Duration::from_secs(5);

struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(crate::crash::panic_message(&*payload).to_string())),
        }
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>> Controller<T, Q> {
    /// Runs the workers as tokio tasks until `stop` fires; the async twin of
    /// [`run`](Controller::run), with the same rules, on any engine. Must
    /// be called inside a tokio runtime.
    pub async fn run_async<E, F, Fut>(&self, stop: &Stop, handler: F) -> Summary
    where
        E: fmt::Display + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.report(|m| m.max_concurrent_reconciles(self.workers));
        let resync = self.resync.is_some().then(|| {
            let (this, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move { this.run_resync(&stop).await })
        });
        let tasks: Vec<_> = (0..self.workers)
            .map(|_| {
                let (this, stop, handler) = (self.clone(), stop.clone(), handler.clone());
                tokio::spawn(async move { this.work_async(&stop, &*handler).await })
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
        let withdrawn = self.queue.shut_down();
        let left = self.queue.len().await.unwrap_or(0);
        self.counters.summary(left, withdrawn.len())
    }

    async fn work_async<E, Fut>(&self, stop: &Stop, handler: &(impl Fn(T) -> Fut + Sync))
    where
        E: fmt::Display,
        Fut: Future<Output = Result<Action, E>> + Send,
    {
        // Pause after a failed get, doubling while they keep failing (a
        // queue whose state is corrupt fails every get until it is
        // repaired; the worker must not spin on it).
        let mut pause = GET_ERROR_PAUSE;
        while !stop.is_stopped() {
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
            let span = tracing::info_span!("reconcile", queue = self.queue.name(), key = ?*item);
            // The outcome holds the handler's error, which need not be
            // `Send`: it becomes a verdict inside this block, before the
            // engine is awaited.
            let verdict = {
                self.report(|m| m.active_workers(1));
                let outcome = CatchPanic(Box::pin(handler((*item).clone())))
                    .instrument(span)
                    .await;
                self.report(|m| m.active_workers(-1));
                if outcome.is_err() {
                    tracing::error!(key = ?*item, "the handler panicked; retrying the key");
                }
                verdict(outcome)
            };
            self.settle_async(item, verdict).await;
        }
    }
}
