//! A Redis hand-out inside requeue's one [`Item`](requeue::queue::Item)
//! guard: ending it runs the re-add (if any) and the fenced `done`.

use super::shared::Shared;
use crate::ops::{self, AddCode, DoneCode, Token};
use requeue::engine::leases::LeaseState;
use requeue::engine::{BoxFuture, Ended, Lease, QueueError, Readd, Then};
use requeue::queue::{Added, Key};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The lease behind a Redis item's guard.
pub(crate) struct RedisLease<T> {
    pub(crate) shared: Arc<Shared<T>>,
    pub(crate) raw: Vec<u8>,
    pub(crate) token: Token,
    pub(crate) state: Arc<LeaseState>,
}

impl<T: Key> Lease<T> for RedisLease<T> {
    fn is_valid(&self) -> bool {
        self.state.is_valid_at(self.shared.local_ms())
    }

    fn token(&self) -> String {
        self.token.to_string()
    }

    fn end(self: Box<Self>, item: T, then: Then) {
        let runtime = self.shared.runtime.clone();
        runtime.spawn(async move {
            let (shared, raw, token) = (self.shared.clone(), self.raw.clone(), self.token);
            let delay = local_readd(&shared, &item, then);
            drop(item);
            match end_with_retries(&shared, raw, token, then, delay).await {
                Ok(_) | Err(QueueError::LeaseLost) => {}
                Err(error @ QueueError::Corrupt { .. }) => tracing::error!(
                    queue = %shared.name,
                    %error,
                    "cannot end a lease: the item was given back unfinished"
                ),
                Err(error) => tracing::warn!(
                    queue = %shared.name,
                    %error,
                    "cannot end a lease; the item comes back when it expires"
                ),
            }
        });
    }

    fn end_async(
        self: Box<Self>,
        item: T,
        then: Then,
    ) -> BoxFuture<'static, Result<Ended, QueueError>> {
        Box::pin(async move {
            let delay = local_readd(&self.shared, &item, then);
            drop(item);
            end_with_retries(&self.shared, self.raw.clone(), self.token, then, delay).await
        })
    }
}

/// What a limiter of this process's own says about `item` as `then` ends
/// it: its history cleared if the ending forgets, and the delay of a
/// rate-limited re-add (`None`: the shared limiter decides in Redis).
fn local_readd<T: Key>(shared: &Shared<T>, item: &T, then: Then) -> Option<Duration> {
    if then.forgets() {
        shared.local_forget(item);
    }
    match then.readd() {
        Some(Readd::RateLimited) => shared.local_delay(item),
        _ => None,
    }
}

/// How many times this process tries to end a lease while the backend
/// fails. Then it lets the item go: it stops renewing the lease, which
/// runs out, and reaping brings the item back with backoff (nothing is
/// lost). A lease is never renewed for an end that cannot happen.
const END_ATTEMPTS: u32 = 8;

/// Ends a lease; a connection failure is retried (with backoff, at most
/// [`END_ATTEMPTS`] times) while the lease is still ours, since every step
/// is safe to repeat except that a repeated rate-limited re-add counts its
/// failure twice. Corrupt state is not retried: the item is released
/// (given back to the head of the queue, no failure counted) and the
/// caller gets the error.
pub(crate) async fn end_with_retries<T: Key>(
    shared: &Arc<Shared<T>>,
    raw: Vec<u8>,
    token: Token,
    then: Then,
    local_delay: Option<Duration>,
) -> Result<Ended, QueueError> {
    let mut backoff = super::shared::retry_backoff(Duration::from_millis(20));
    let mut retried = false;
    let mut attempts = 1;
    let result = loop {
        match end_once(shared, raw.clone(), token, then, local_delay, retried).await {
            Err(QueueError::Backend(error))
                if attempts < END_ATTEMPTS && lease_still_ours(shared, &raw, token) =>
            {
                tracing::debug!(queue = %shared.name, %error, "retrying the end of a lease");
                tokio_sleep(shared, backoff.step()).await;
                retried = true;
                attempts += 1;
            }
            Err(corrupt @ QueueError::Corrupt { .. }) => {
                give_back(shared, &raw, token).await;
                break Err(corrupt);
            }
            other => break other,
        }
    };
    if let Err(QueueError::LeaseLost) = result {
        shared.stats.lease_lost.fetch_add(1, Ordering::Relaxed);
        shared.report(|m| m.lease_lost.inc());
    }
    if let Some(started) = shared.forget_lease(&raw, token) {
        let worked = shared.clock.now().saturating_duration_since(started);
        shared.report(|m| m.work_duration.observe(worked.as_secs_f64()));
    }
    result
}

/// Releases a lease whose end failed on corrupt state, so the item is not
/// held until its lease runs out. If that fails too, the lease runs out.
async fn give_back<T: Key>(shared: &Arc<Shared<T>>, raw: &[u8], token: Token) {
    let raw = raw.to_vec();
    let released = shared
        .call(move |mut conn, shared| async move {
            ops::release(&mut conn, &shared.keys, &raw, token, shared.now()).await
        })
        .await;
    if let Err(error) = released {
        tracing::warn!(queue = %shared.name, %error, "cannot give back an item; it comes back when its lease expires");
    }
}

fn lease_still_ours<T: Key>(shared: &Shared<T>, raw: &[u8], token: Token) -> bool {
    shared.held.holds(raw, token, shared.local_ms())
}

/// Sleeps on the queue's runtime (network backoff is real time even when
/// the queue's clock is fake).
async fn tokio_sleep<T: Key>(shared: &Shared<T>, delay: Duration) {
    let _ = shared.runtime.spawn(tokio::time::sleep(delay)).await;
}

/// One attempt: the re-add first (while we still hold the item, so a
/// re-add parks and `done` queues it: nothing is lost), then the fenced done.
async fn end_once<T: Key>(
    shared: &Arc<Shared<T>>,
    raw: Vec<u8>,
    token: Token,
    then: Then,
    local_delay: Option<Duration>,
    retried: bool,
) -> Result<Ended, QueueError> {
    shared
        .call(move |mut conn, shared| async move {
            let keys = &shared.keys;
            let added = match then.readd() {
                None => None,
                Some(Readd::Now) => {
                    Some((ops::add(&mut conn, keys, &raw, shared.now()).await?.code, 0))
                }
                Some(Readd::RateLimited) => match local_delay {
                    Some(delay) => {
                        let ms = millis(delay);
                        let reply = ops::add_after(&mut conn, keys, &raw, ms, shared.now()).await?;
                        Some((reply.code, ms))
                    }
                    None => {
                        let reply = ops::add_rate_limited(
                            &mut conn,
                            keys,
                            &raw,
                            &shared.limiter,
                            shared.now(),
                        )
                        .await?;
                        Some((reply.code, reply.delay_ms))
                    }
                },
                Some(Readd::After(delay)) => {
                    let ms = millis(delay);
                    Some((
                        ops::add_after(&mut conn, keys, &raw, ms, shared.now())
                            .await?
                            .code,
                        ms,
                    ))
                }
            };
            // A success's forget rides on the done: one round trip.
            let done =
                ops::done_forgetting(&mut conn, keys, &raw, token, then.forgets(), shared.now())
                    .await?;
            shared.report_depth(done.depth);
            if let Some((code, _)) = added {
                shared.report(|m| {
                    if code.is_added() {
                        m.adds.inc();
                    }
                    if then == Then::Retry {
                        m.retries.inc();
                    }
                });
            }
            Ok((
                done.code,
                added.map(|(code, delay)| added_of(&shared, code, delay)),
            ))
        })
        .await
        .and_then(|(code, added)| match code {
            // Held by nobody on a retry: the failed attempt's done most
            // likely ran and only its reply was lost (a lease reaped in
            // between is the rare other case, and its item comes back anyway).
            DoneCode::NotHeld if retried => Ok(Ended {
                released: true,
                added,
                refused: false,
            }),
            DoneCode::LeaseLost | DoneCode::NotHeld => Err(QueueError::LeaseLost),
            DoneCode::Done | DoneCode::Requeued => Ok(Ended {
                released: true,
                added,
                refused: false,
            }),
        })
}

/// requeue's [`Added`] for an add's code; `delay_ms` dates a delayed one.
pub(crate) fn added_of<T: Send + Sync + 'static>(
    shared: &Shared<T>,
    code: AddCode,
    delay_ms: u64,
) -> Added {
    match code {
        AddCode::Deduplicated => Added::Merged,
        AddCode::Queued => Added::Queued,
        AddCode::Parked => Added::AfterDone,
        AddCode::Delayed => Added::Delayed {
            at: requeue::clock::deadline_after(shared.clock.now(), Duration::from_millis(delay_ms)),
        },
    }
}

/// A duration as whole ms, rounded up so a delay is never shortened.
pub(crate) fn millis(delay: Duration) -> u64 {
    let ms = delay.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}
