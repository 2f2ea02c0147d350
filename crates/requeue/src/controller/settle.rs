//! The rules of the module docs, in one place: what a handler's outcome
//! means ([`Controller::verdict`], with the error policy deciding for failures), what
//! is counted and reported ([`Controller::record`]), and how the hand-out
//! ends ([`Controller::settle`]).

use super::cause::{Cause, ended_pending};
use super::handler::Outcome;
#[cfg(feature = "events")]
use super::policy::RECONCILE_ERROR;
use super::policy::{ErrorPolicy, Failure};
use super::{Action, Controller};
use crate::engine::{AsyncQueue, Ended, QueueError, Then};
use crate::metrics::ReconcileResult;
use crate::queue::{Item, Key};
use crate::wait::Stop;
#[cfg(feature = "events")]
use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What one handled key comes to.
pub(super) struct Verdict {
    /// What is done with the key (the handler's answer, or the policy's).
    pub(super) action: Action,
    /// The reconcile result for the metrics.
    pub(super) result: ReconcileResult,
    /// Set for failures (`None` on success).
    pub(super) failed: Option<Failed>,
}

/// What is kept of a failure once the handler's error is gone (it need not
/// be `Send`, and the engine is awaited after this).
pub(super) struct Failed {
    /// The message logged and put in the Warning event.
    pub(super) message: String,
    /// The Warning event's reason, if one is recorded.
    #[cfg(feature = "events")]
    pub(super) reason: Option<Cow<'static, str>>,
    /// The handler panicked.
    pub(super) panicked: bool,
}

impl Verdict {
    /// How the hand-out ends.
    pub(super) fn then(&self) -> Then {
        self.action.then()
    }

    /// Why the key is back in the queue, if the ending re-adds it.
    pub(super) fn cause(&self) -> Option<Cause> {
        match (self.action, &self.failed) {
            (Action::Done, _) => None,
            (_, Some(_)) => Some(Cause::Retry),
            (Action::RequeueAfter(_), None) => Some(Cause::RequeueAfter),
            (Action::Requeue | Action::RequeueRateLimited, None) => Some(Cause::Requeue),
        }
    }
}

/// Runs the user's `f`; if it panics, logs that (`what` names the code)
/// and returns `fallback`: user code must not take the worker down.
fn guarded<R>(what: &str, f: impl FnOnce() -> R, fallback: R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        tracing::error!(
            panic = crate::crash::panic_message(&*payload),
            "{what} panicked; doing what the default policy does"
        );
        fallback
    })
}

/// What the warning log says happens next.
fn next_step(action: Action) -> String {
    match action {
        Action::RequeueRateLimited => "retrying with backoff".to_string(),
        Action::Done => "giving up, as the error policy says".to_string(),
        Action::Requeue => "requeued, as the error policy says".to_string(),
        Action::RequeueAfter(delay) => {
            format!("retrying in {delay:?}, as the error policy says")
        }
    }
}

impl<T: Key + fmt::Debug, Q: AsyncQueue<T>, P> Controller<T, Q, P> {
    /// Turns a handler outcome into a verdict, asking the error policy
    /// about failures. `attempt` is the try that just ended (`None`: the
    /// engine could not say).
    pub(super) fn verdict<E>(&self, key: &T, outcome: Outcome<E>, attempt: Option<u32>) -> Verdict
    where
        E: fmt::Display,
        P: ErrorPolicy<T, E>,
    {
        let failure = match &outcome {
            Ok(Ok(action)) => {
                return Verdict {
                    action: *action,
                    result: ReconcileResult::from(*action),
                    failed: None,
                };
            }
            Ok(Err(error)) => Failure::Error(error),
            Err(message) => Failure::Panicked(message),
        };
        let action = guarded(
            "the error policy",
            || self.policy.on_failure(key, failure, attempt.unwrap_or(0)),
            Action::RequeueRateLimited,
        );
        Verdict {
            action,
            result: ReconcileResult::Error,
            failed: Some(Failed {
                message: failure.to_string(),
                // Asked only when an event will be recorded.
                #[cfg(feature = "events")]
                reason: self.events.is_some().then(|| {
                    guarded(
                        "the error policy's reason",
                        || self.policy.reason(key, failure),
                        Cow::Borrowed(RECONCILE_ERROR),
                    )
                }),
                panicked: matches!(failure, Failure::Panicked(_)),
            }),
        }
    }

    /// Counts the verdict, reports it to the metrics and, for failures,
    /// logs it and records a Warning event. `attempt` is the 1-based try.
    pub(super) fn record(&self, item: &T, verdict: &Verdict, attempt: Option<u32>) {
        self.report(|m| {
            m.reconciled(verdict.result);
            if let Some(failed) = &verdict.failed {
                if failed.panicked {
                    m.panicked();
                }
                if verdict.action == Action::Done {
                    m.terminal_error();
                }
            }
        });
        let Some(failed) = &verdict.failed else {
            self.counters.succeeded();
            return;
        };
        self.counters.failed();
        if failed.panicked {
            self.counters.panicked();
        }
        tracing::warn!(
            queue = self.queue.name(),
            key = ?item,
            attempt,
            error = %failed.message,
            "reconcile failed; {}",
            next_step(verdict.action),
        );
        #[cfg(feature = "events")]
        if let Some((recorder, object_of)) = &self.events {
            // `object_of` is user code: a panic in it costs this event
            // (told in the log), not the worker.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| object_of(item))) {
                Ok(object) => recorder.event(
                    &object,
                    crate::events::EventType::Warning,
                    failed.reason.as_deref().unwrap_or(RECONCILE_ERROR),
                    &failed.message,
                ),
                Err(panic) => tracing::error!(
                    queue = self.queue.name(),
                    key = ?item,
                    panic = %crate::crash::panic_message(panic.as_ref()),
                    "the events' object_of panicked; no event recorded"
                ),
            }
        }
    }

    /// Counts how the hand-out ended.
    fn count_end(&self, item: &T, then: Then, ended: &Result<Ended, QueueError>) {
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

    /// Settles one handled key: records the verdict, ends the hand-out and
    /// waits for the engine's answer. Until `stop` fires the ending also
    /// takes the worker's next key when the engine can do both in one
    /// trip ([`Item::end_then_next`]); that key is returned.
    pub(super) async fn settle(
        &self,
        item: Item<T>,
        verdict: Verdict,
        attempt: Option<u32>,
        stop: &Stop,
    ) -> Option<Item<T>> {
        self.record(&item, &verdict, attempt);
        let key = (*item).clone();
        let then = verdict.then();
        // Noted before the re-add: another worker may take the key the
        // moment it is queued again.
        let noted = verdict
            .cause()
            .filter(|&cause| self.causes.note(&key, cause));
        let (ended, next) = if stop.is_stopped() || self.queue.is_shutting_down() {
            (item.end_async(then).await, None)
        } else {
            item.end_then_next(then).await
        };
        if let Some(cause) = noted
            && !ended_pending(&ended)
        {
            self.causes.withdraw(&key, cause);
        }
        self.count_end(&key, then, &ended);
        next
    }
}
