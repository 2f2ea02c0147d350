//! A remote hand-out inside requeue's one [`Item`] guard, and how it ends:
//! the re-add (if any) and the fenced done, retried while the lease is
//! still ours.

use super::table::LeaseState;
use super::{EndReply, Fenced, LeaseEngine, retry_backoff};
use crate::handout::{BoxFuture, Ended, EndedThenNext, Lease, QueueError, Readd, Then};
use crate::queue::{Item, Key};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Wraps a key the backend handed out under `token` (by a call sent at
/// local ms `sent_ms`, see [`LeaseKeeper::local_ms`](super::LeaseKeeper::local_ms))
/// in the one [`Item`] guard, and registers its lease for renewal.
pub fn hand_out<T: Key, E: LeaseEngine<T>>(
    engine: &Arc<E>,
    item: T,
    raw: Vec<u8>,
    token: E::Token,
    sent_ms: u64,
) -> Item<T> {
    let state = engine.keeper().hand_out(raw.clone(), token, sent_ms);
    guard(engine, item, raw, token, state)
}

/// The [`Item`] guard for a lease that is already in the keeper's table
/// (registered by [`LeaseKeeper::hand_out`](super::LeaseKeeper::hand_out)
/// when it arrived, e.g. an item an engine fetched ahead for a worker that
/// has not asked yet, renewed meanwhile like any other).
pub fn guard<T: Key, E: LeaseEngine<T>>(
    engine: &Arc<E>,
    item: T,
    raw: Vec<u8>,
    token: E::Token,
    state: Arc<LeaseState>,
) -> Item<T> {
    let lease = RemoteLease {
        engine: engine.clone(),
        raw,
        token,
        state,
        item: PhantomData,
    };
    Item::leased(item, Box::new(lease))
}

/// The lease behind a remote item's guard.
struct RemoteLease<T, E: LeaseEngine<T>> {
    engine: Arc<E>,
    raw: Vec<u8>,
    token: E::Token,
    state: Arc<LeaseState>,
    item: PhantomData<fn(T)>,
}

impl<T: Key, E: LeaseEngine<T>> Lease<T> for RemoteLease<T, E> {
    fn is_valid(&self) -> bool {
        self.state.is_valid_at(self.engine.keeper().local_ms())
    }

    fn token(&self) -> String {
        self.token.to_string()
    }

    fn end(self: Box<Self>, item: T, then: Then) {
        self.state.begin_end();
        let engine = self.engine.clone();
        engine.spawn(Box::pin(async move {
            let delay = local_readd(&*self.engine, &item, then);
            drop(item);
            let keeper = self.engine.keeper();
            match end_with_retries(&self.engine, self.raw.clone(), self.token, then, delay).await {
                Ok(_) | Err(QueueError::LeaseLost) => {}
                Err(error @ QueueError::Corrupt { .. }) => tracing::error!(
                    queue = keeper.name(),
                    %error,
                    "cannot end a lease: the item was given back unfinished"
                ),
                Err(error) => tracing::warn!(
                    queue = keeper.name(),
                    %error,
                    "cannot end a lease; the item comes back when it expires"
                ),
            }
        }));
    }

    fn end_async(
        self: Box<Self>,
        item: T,
        then: Then,
    ) -> BoxFuture<'static, Result<Ended, QueueError>> {
        self.state.begin_end();
        Box::pin(async move {
            let delay = local_readd(&*self.engine, &item, then);
            drop(item);
            end_with_retries(&self.engine, self.raw.clone(), self.token, then, delay).await
        })
    }

    fn end_then_next(self: Box<Self>, item: T, then: Then) -> BoxFuture<'static, EndedThenNext<T>> {
        self.state.begin_end();
        Box::pin(async move {
            let delay = local_readd(&*self.engine, &item, then);
            drop(item);
            if then.readd().is_some() {
                let ended =
                    end_with_retries(&self.engine, self.raw.clone(), self.token, then, delay);
                return (ended.await, None);
            }
            end_then_next(&self.engine, self.raw.clone(), self.token, then).await
        })
    }
}

/// What a limiter of this process's own says about `item` as `then` ends
/// it: its history cleared if the ending forgets, and the delay of a
/// rate-limited re-add (`None`: the backend's shared limiter decides).
fn local_readd<T: Key, E: LeaseEngine<T>>(engine: &E, item: &T, then: Then) -> Option<Duration> {
    let limiter = engine.local_limiter()?;
    if then.forgets() {
        limiter.forget(item);
    }
    match then.readd() {
        Some(Readd::RateLimited) => Some(limiter.when(item)),
        _ => None,
    }
}

/// How many times a process tries to end a lease while the backend
/// fails. Then it lets the item go: it stops renewing the lease, which
/// runs out, and reaping brings the item back with backoff (nothing is
/// lost). A lease is never renewed for an end that cannot happen.
pub const END_ATTEMPTS: u32 = 8;

/// Ends a lease as `then` says, and takes it out of the keeper's table
/// whatever the outcome.
///
/// A backend failure is retried (with [`retry_backoff`], at most
/// [`END_ATTEMPTS`] times) while the lease is still ours: every step is
/// safe to repeat, except that a repeated rate-limited re-add counts its
/// failure twice. Corrupt state is not retried: the key is released
/// (given back to the head of the queue, no failure counted) and the
/// caller gets the error. A lease found taken over is
/// [`QueueError::LeaseLost`], counted in the keeper and the metrics.
pub async fn end_with_retries<T: Key, E: LeaseEngine<T>>(
    engine: &Arc<E>,
    raw: Vec<u8>,
    token: E::Token,
    then: Then,
    local_delay: Option<Duration>,
) -> Result<Ended, QueueError> {
    settle(engine, raw, token, then, local_delay, None).await
}

/// Ends a lease whose ending re-adds nothing ([`Then::Done`],
/// [`Then::Forget`]) as [`end_with_retries`] does, taking the next ready
/// key for the same holder in the first attempt's trip
/// ([`LeaseEngine::end_then_get`]); the next key's lease is registered
/// and wrapped in its guard. A failed first attempt is retried as a plain
/// end, without a next key.
pub async fn end_then_next<T: Key, E: LeaseEngine<T>>(
    engine: &Arc<E>,
    raw: Vec<u8>,
    token: E::Token,
    then: Then,
) -> EndedThenNext<T> {
    let (first, next) = match engine.clone().end_then_get(raw.clone(), token, then).await {
        Ok((reply, next)) => (Ok(reply), next),
        Err(error) => (Err(error), None),
    };
    let next =
        next.map(|n| hand_out(engine, n.item, n.raw, n.token, n.sent_ms).with_requeues(n.requeues));
    (
        settle(engine, raw, token, then, None, Some(first)).await,
        next,
    )
}

/// The one ending loop: `first` is the reply of an attempt already made
/// (by [`end_then_next`]), if any.
async fn settle<T: Key, E: LeaseEngine<T>>(
    engine: &Arc<E>,
    raw: Vec<u8>,
    token: E::Token,
    then: Then,
    local_delay: Option<Duration>,
    mut first: Option<Result<EndReply, QueueError>>,
) -> Result<Ended, QueueError> {
    let keeper = engine.keeper();
    let mut backoff = retry_backoff(Duration::from_millis(20));
    let mut attempts = 1;
    let result = loop {
        let reply = match first.take() {
            Some(reply) => reply,
            None => {
                engine
                    .clone()
                    .end(raw.clone(), token, then, local_delay)
                    .await
            }
        };
        match reply {
            Err(QueueError::Backend(error))
                if attempts < END_ATTEMPTS && keeper.still_ours(&raw, token) =>
            {
                tracing::debug!(queue = keeper.name(), %error, "retrying the end of a lease");
                engine.pause(backoff.step()).await;
                attempts += 1;
            }
            Err(corrupt @ QueueError::Corrupt { .. }) => {
                give_back(engine, &raw, token).await;
                break Err(corrupt);
            }
            Err(error) => break Err(error),
            Ok(reply) => break ended(reply, attempts > 1),
        }
    };
    if let Err(QueueError::LeaseLost) = result {
        keeper.count_lease_lost();
        if let Some(metrics) = engine.metrics() {
            metrics.lease_lost.inc();
        }
    }
    if let Some(worked) = keeper.forget(&raw, token)
        && let Some(metrics) = engine.metrics()
    {
        metrics.work_duration.observe(worked.as_secs_f64());
    }
    result
}

/// The outcome of an end attempt's reply.
fn ended(reply: EndReply, retried: bool) -> Result<Ended, QueueError> {
    let released = Ended {
        released: true,
        added: reply.added,
        refused: false,
    };
    match reply.fenced {
        Fenced::Ended => Ok(released),
        // Held by nobody on a retry: the failed attempt's done most likely
        // ran and only its reply was lost (a lease reaped in between is
        // the rare other case, and its item comes back anyway).
        Fenced::NotHeld if retried => Ok(released),
        Fenced::NotHeld | Fenced::LeaseLost => Err(QueueError::LeaseLost),
    }
}

/// Releases a lease whose end failed on corrupt state, so the key is not
/// held until its lease runs out. If that fails too, the lease runs out.
async fn give_back<T: Key, E: LeaseEngine<T>>(engine: &Arc<E>, raw: &[u8], token: E::Token) {
    if let Err(error) = engine.clone().release(raw.to_vec(), token).await {
        tracing::warn!(
            queue = engine.keeper().name(),
            %error,
            "cannot give back an item; it comes back when its lease expires"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fenced: Fenced) -> EndReply {
        EndReply {
            fenced,
            added: None,
        }
    }

    #[test]
    fn a_key_held_by_nobody_counts_as_ended_only_on_a_retry() {
        assert!(ended(reply(Fenced::Ended), false).is_ok());
        assert!(ended(reply(Fenced::NotHeld), true).is_ok());
        assert!(matches!(
            ended(reply(Fenced::NotHeld), false),
            Err(QueueError::LeaseLost)
        ));
        assert!(matches!(
            ended(reply(Fenced::LeaseLost), true),
            Err(QueueError::LeaseLost)
        ));
    }
}
