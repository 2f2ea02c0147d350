//! The rules of the module docs, in one place for both runners: what a
//! handler's outcome means ([`verdict`]), what is counted and reported
//! ([`Controller::record`]), and how the hand-out ends.

use super::{Action, Controller};
use crate::engine::{AsyncQueue, Ended, QueueError, Then};
use crate::metrics::ReconcileResult;
use crate::queue::{Item, Key};
use std::fmt;

/// What one handled key comes to.
pub(super) struct Verdict {
    /// How the hand-out ends.
    pub(super) then: Then,
    /// The reconcile result for the metrics.
    pub(super) result: ReconcileResult,
    /// The error message, for failures (`None` on success).
    pub(super) error: Option<String>,
    /// The handler panicked.
    pub(super) panicked: bool,
}

/// Turns a handler outcome (`Err`: it panicked, with this message) into a verdict.
pub(super) fn verdict<E: fmt::Display>(outcome: Result<Result<Action, E>, String>) -> Verdict {
    let ok = |then, result| Verdict {
        then,
        result,
        error: None,
        panicked: false,
    };
    match outcome {
        Ok(Ok(Action::Done)) => ok(Then::Forget, ReconcileResult::Success),
        Ok(Ok(Action::Requeue)) => ok(Then::Requeue, ReconcileResult::Requeue),
        Ok(Ok(Action::RequeueAfter(delay))) => {
            ok(Then::ForgetRetryAfter(delay), ReconcileResult::RequeueAfter)
        }
        Ok(Ok(Action::RequeueRateLimited)) => ok(Then::Retry, ReconcileResult::Requeue),
        Ok(Err(error)) => Verdict {
            then: Then::Retry,
            result: ReconcileResult::Error,
            error: Some(error.to_string()),
            panicked: false,
        },
        Err(message) => Verdict {
            then: Then::Retry,
            result: ReconcileResult::Error,
            error: Some(format!("the handler panicked: {message}")),
            panicked: true,
        },
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>> Controller<T, Q> {
    /// Counts the verdict, reports it to the metrics and, for failures,
    /// logs it and records a Warning event. `attempt` is the 1-based try.
    pub(super) fn record(&self, item: &T, verdict: &Verdict, attempt: Option<u32>) {
        self.report(|m| {
            m.reconciled(verdict.result);
            if verdict.panicked {
                m.panicked();
            }
        });
        let Some(error) = &verdict.error else {
            self.counters.succeeded();
            return;
        };
        self.counters.failed();
        if verdict.panicked {
            self.counters.panicked();
        }
        tracing::warn!(queue = self.queue.name(), key = ?item, attempt, error = %error, "reconcile failed; retrying with backoff");
        #[cfg(feature = "events")]
        if let Some((recorder, object_of)) = &self.events {
            recorder.event(
                &object_of(item),
                crate::events::EventType::Warning,
                "ReconcileError",
                error,
            );
        }
    }

    /// Counts how the hand-out ended.
    pub(super) fn count_end(&self, item: &T, then: Then, ended: Result<Ended, QueueError>) {
        match ended {
            Ok(ended) => {
                if ended.refused {
                    self.counters.requeued(false);
                } else if ended.added.is_some() {
                    self.counters.requeued(true);
                }
            }
            Err(QueueError::LeaseLost) => {
                self.counters.lease_lost();
                tracing::warn!(queue = self.queue.name(), key = ?item, ?then, "the lease ran out before the key was settled; another worker may have handled it");
            }
            Err(error) => {
                tracing::error!(queue = self.queue.name(), key = ?item, ?then, %error, "cannot settle the key; it comes back when its lease runs out");
            }
        }
    }

    /// Settles one handled key without waiting on the engine.
    pub(super) fn settle(&self, item: Item<T>, verdict: Verdict, attempt: Option<u32>) {
        self.record(&item, &verdict, attempt);
        let key = (*item).clone();
        let ended = item.end(verdict.then);
        self.count_end(&key, verdict.then, Ok(ended));
    }

    /// Settles one handled key and waits for the engine's answer.
    pub(super) async fn settle_async(&self, item: Item<T>, verdict: Verdict) {
        let attempt = match verdict.error {
            Some(_) => self.queue.num_requeues(&item).await.ok().map(|n| n + 1),
            None => None,
        };
        self.record(&item, &verdict, attempt);
        let key = (*item).clone();
        let ended = item.end_async(verdict.then).await;
        self.count_end(&key, verdict.then, ended);
    }
}
