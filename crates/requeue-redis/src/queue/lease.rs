//! The Redis side of requeue's remote-engine toolkit: the four calls of
//! [`LeaseEngine`] as scripts on this queue's keys. The renewer, the
//! item guard and the retry rules are core's (`requeue::engine::remote`).

use super::shared::Shared;
use crate::ops::{self, AddCode, DoneCode, Token};
use requeue::engine::remote::{EndReply, EndThenGet, Fenced, LeaseEngine, LeaseKeeper, NextLease};
use requeue::engine::{BoxFuture, QueueError, Readd, Then};
use requeue::limiter::RateLimiter;
use requeue::metrics::QueueMetrics;
use requeue::queue::{Added, Key};
use std::sync::Arc;
use std::time::Duration;

impl<T: Key> LeaseEngine<T> for Shared<T> {
    type Token = Token;

    fn keeper(&self) -> &LeaseKeeper<Token> {
        &self.keeper
    }

    fn metrics(&self) -> Option<&QueueMetrics> {
        self.metrics.as_ref()
    }

    fn local_limiter(&self) -> Option<&dyn RateLimiter<T>> {
        self.local_limiter.as_deref()
    }

    fn extend(
        self: Arc<Self>,
        held: Vec<(Vec<u8>, Token)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, QueueError>> {
        Box::pin(async move {
            self.call(move |mut conn, shared| async move {
                if held.is_empty() {
                    // Nothing to renew: a PING still proves the connection is back.
                    redis::cmd("PING").query_async::<()>(&mut conn).await?;
                    return Ok(Vec::new());
                }
                let lease_ms = millis(shared.keeper.lease());
                ops::extend(&mut conn, &shared.keys, lease_ms, &held, shared.now()).await
            })
            .await
        })
    }

    fn release(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Token,
    ) -> BoxFuture<'static, Result<bool, QueueError>> {
        Box::pin(async move {
            self.call(move |mut conn, shared| async move {
                let reply =
                    ops::release(&mut conn, &shared.keys, &raw, token, shared.now()).await?;
                shared.report_depth(reply.depth);
                Ok(reply.code == ops::ReleaseCode::Released)
            })
            .await
        })
    }

    fn end(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Token,
        then: Then,
        local_delay: Option<Duration>,
    ) -> BoxFuture<'static, Result<EndReply, QueueError>> {
        Box::pin(async move {
            match then.readd() {
                None | Some(Readd::Now) => end_pipelined(&self, raw, token, then).await,
                Some(_) => {
                    self.call(move |conn, shared| {
                        end_once(conn, shared, raw, token, then, local_delay)
                    })
                    .await
                }
            }
        })
    }

    fn end_then_get(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: Token,
        then: Then,
    ) -> BoxFuture<'static, EndThenGet<T, Token>> {
        Box::pin(async move {
            // Items fetched ahead serve the next get locally; a fused get
            // would only fetch past them.
            if self.ahead.capacity() > 0 || self.is_shutting_down() || then.readd().is_some() {
                return Ok((self.clone().end(raw, token, then, None).await?, None));
            }
            let (done, got) = self
                .pipeline()?
                .done_get(raw, token, then.forgets())
                .await?;
            let reply = EndReply {
                fenced: fenced(done),
                added: None,
            };
            let Some(leased) = got.item else {
                return Ok((reply, None));
            };
            self.report(|m| m.latency.observe(leased.queue_ms as f64 / 1000.0));
            match self.codec.decode(&leased.item) {
                Ok(item) => Ok((
                    reply,
                    Some(NextLease {
                        item,
                        raw: leased.item,
                        token: leased.token,
                        sent_ms: got.sent_ms,
                        requeues: leased.requeues,
                    }),
                )),
                Err(reason) => {
                    // Not registered, so not renewed: it is reaped after the
                    // lease and comes back with backoff, as a get's would.
                    let error = QueueError::Decode {
                        raw: leased.item,
                        reason,
                    };
                    tracing::error!(queue = %self.name, %error, "cannot take the next key");
                    Ok((reply, None))
                }
            }
        })
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.runtime.spawn(task);
    }

    fn pause(&self, delay: Duration) -> BoxFuture<'static, ()> {
        let slept = self.runtime.spawn(tokio::time::sleep(delay));
        Box::pin(async move {
            let _ = slept.await;
        })
    }
}

/// The hot endings (done, forget, requeue now) through the pipeline,
/// usually in one call shared with other workers. A requeue's add is
/// answered before its done is submitted (the pipeline keeps no order
/// between outstanding operations), so it parks and the done queues it.
async fn end_pipelined<T: Key>(
    shared: &Arc<Shared<T>>,
    raw: Vec<u8>,
    token: Token,
    then: Then,
) -> Result<EndReply, QueueError> {
    let pipeline = shared.pipeline()?;
    let added = match then.readd() {
        Some(Readd::Now) => Some(pipeline.add(raw.clone()).await?),
        _ => None,
    };
    let done = pipeline.done(raw, token, then.forgets()).await?;
    if let Some(code) = added
        && code.is_added()
    {
        shared.report(|m| m.adds.inc());
    }
    Ok(EndReply {
        fenced: fenced(done),
        added: added.map(|code| added_of(shared, code, 0)),
    })
}

fn fenced(code: DoneCode) -> Fenced {
    match code {
        DoneCode::Done | DoneCode::Requeued => Fenced::Ended,
        DoneCode::NotHeld => Fenced::NotHeld,
        DoneCode::LeaseLost => Fenced::LeaseLost,
    }
}

/// One attempt at an end: the re-add first (while we still hold the item,
/// so a re-add parks and `done` queues it: nothing is lost), then the
/// fenced done; a success's forget rides on the done (one round trip).
async fn end_once<T: Key>(
    mut conn: super::connection::Conn,
    shared: Arc<Shared<T>>,
    raw: Vec<u8>,
    token: Token,
    then: Then,
    local_delay: Option<Duration>,
) -> Result<EndReply, crate::error::Error> {
    let keys = &shared.keys;
    let added = match then.readd() {
        None => None,
        Some(Readd::Now) => Some((ops::add(&mut conn, keys, &raw, shared.now()).await?.code, 0)),
        Some(Readd::RateLimited) => match local_delay {
            Some(delay) => {
                let ms = millis(delay);
                let reply = ops::add_after(&mut conn, keys, &raw, ms, shared.now()).await?;
                Some((reply.code, ms))
            }
            None => {
                let reply =
                    ops::add_rate_limited(&mut conn, keys, &raw, &shared.limiter, shared.now())
                        .await?;
                Some((reply.code, reply.delay_ms))
            }
        },
        Some(Readd::After(delay)) => {
            let ms = millis(delay);
            let reply = ops::add_after(&mut conn, keys, &raw, ms, shared.now()).await?;
            Some((reply.code, ms))
        }
    };
    let done =
        ops::done_forgetting(&mut conn, keys, &raw, token, then.forgets(), shared.now()).await?;
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
    Ok(EndReply {
        fenced: fenced(done.code),
        added: added.map(|(code, delay)| added_of(&shared, code, delay)),
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
