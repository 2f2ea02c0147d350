//! The PostgreSQL side of requeue's remote-engine toolkit: the four calls
//! of [`LeaseEngine`] as statements. The renewer, the item guard and the
//! retry rules are core's (`requeue::engine::remote`).

use super::batch::{DoneCode, Ending};
use super::shared::{PgToken, Shared, micros};
use requeue::engine::remote::{EndReply, EndThenGet, Fenced, LeaseEngine, LeaseKeeper, NextLease};
use requeue::engine::{BoxFuture, QueueError, Readd, Then};
use requeue::metrics::QueueMetrics;
use requeue::queue::{Added, Key};
use std::sync::Arc;
use std::time::Duration;

impl<T: Key> LeaseEngine<T> for Shared<T> {
    type Token = PgToken;

    fn keeper(&self) -> &LeaseKeeper<PgToken> {
        &self.keeper
    }

    fn metrics(&self) -> Option<&QueueMetrics> {
        self.metrics.as_ref()
    }

    fn extend(
        self: Arc<Self>,
        held: Vec<(Vec<u8>, PgToken)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<u8>>, QueueError>> {
        Box::pin(async move {
            let sent = self.keeper.local_ms();
            let renewed = self
                .call(move |shared| async move {
                    if held.is_empty() {
                        // Nothing to renew: a statement still proves the server answers.
                        sqlx::query("SELECT 1").execute(&shared.pool).await?;
                        return Ok(Vec::new());
                    }
                    // Keys are stored as text: the held ones were read as text.
                    let keys: Vec<String> = held
                        .iter()
                        .map(|(raw, _)| String::from_utf8_lossy(raw).into_owned())
                        .collect();
                    let tokens: Vec<i64> = held.iter().map(|(_, t)| t.token).collect();
                    let nonces: Vec<i64> = held.iter().map(|(_, t)| t.nonce).collect();
                    let lost: Vec<String> = sqlx::query_scalar(&shared.sql.extend)
                        .bind(shared.queue_id)
                        .bind(keys)
                        .bind(tokens)
                        .bind(nonces)
                        .bind(shared.lease_us())
                        .bind(shared.now())
                        .fetch_all(&shared.pool)
                        .await?;
                    Ok(lost.into_iter().map(String::into_bytes).collect())
                })
                .await;
            if renewed.is_ok() {
                self.last_renewed_ms
                    .fetch_max(sent, std::sync::atomic::Ordering::Relaxed);
            }
            renewed
        })
    }

    fn release(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: PgToken,
    ) -> BoxFuture<'static, Result<bool, QueueError>> {
        Box::pin(async move {
            let key = super::shared::text_of(raw)?;
            self.call(move |shared| async move {
                let code: i16 = sqlx::query_scalar(&shared.sql.release)
                    .bind(shared.queue_id)
                    .bind(key)
                    .bind(token.token)
                    .bind(token.nonce)
                    .bind(shared.now())
                    .fetch_one(&shared.pool)
                    .await?;
                Ok(code == 1)
            })
            .await
        })
    }

    fn end(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: PgToken,
        then: Then,
        local_delay: Option<Duration>,
    ) -> BoxFuture<'static, Result<EndReply, QueueError>> {
        Box::pin(async move {
            let key = super::shared::text_of(raw)?;
            // The re-add first, while we still hold the item: it parks,
            // and the done below queues it. Nothing is lost if the done
            // then fails: the lease runs out and the item comes back.
            let added = match then.readd() {
                None => None,
                Some(Readd::Now) => {
                    let code = self.batcher()?.add(key.clone()).await?;
                    Some(self.added(code, Duration::ZERO))
                }
                Some(Readd::RateLimited) => {
                    let (code, delay) = match local_delay {
                        Some(delay) => (self.add_after_alone(&key, delay, 0).await?, delay),
                        None => self.add_rate_limited_alone(&key, 0).await?,
                    };
                    Some(self.added(code, delay))
                }
                Some(Readd::After(delay)) => {
                    let code = self.add_after_alone(&key, delay, 0).await?;
                    Some(self.added(code, delay))
                }
            };
            if then == Then::Retry {
                self.report(|m| m.retries.inc());
            }
            let code = self
                .batcher()?
                .done(Ending {
                    key,
                    token,
                    forget: then.forgets(),
                })
                .await?;
            Ok(EndReply {
                fenced: fenced(code),
                added,
            })
        })
    }

    fn end_then_get(
        self: Arc<Self>,
        raw: Vec<u8>,
        token: PgToken,
        then: Then,
    ) -> BoxFuture<'static, EndThenGet<T, PgToken>> {
        Box::pin(async move {
            if self.is_shutting_down() || then.readd().is_some() {
                return Ok((self.clone().end(raw, token, then, None).await?, None));
            }
            let key = super::shared::text_of(raw)?;
            let (code, got) = self
                .batcher()?
                .done_get(Ending {
                    key,
                    token,
                    forget: then.forgets(),
                })
                .await?;
            let reply = EndReply {
                fenced: fenced(code),
                added: None,
            };
            let Some(claimed) = got.item.take() else {
                return Ok((reply, None));
            };
            self.observe_latency(claimed.added_us, got.now_us);
            let raw = claimed.key.into_bytes();
            match self.codec.decode(&raw) {
                Ok(item) => Ok((
                    reply,
                    Some(NextLease {
                        item,
                        raw,
                        token: claimed.token,
                        sent_ms: got.sent_ms,
                        requeues: Some(claimed.failures),
                    }),
                )),
                Err(reason) => {
                    // Not registered, so not renewed: it is reaped after the
                    // lease and comes back with backoff, as a get's would.
                    let error = QueueError::Decode { raw, reason };
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

impl<T: Key> Shared<T> {
    /// `add_after` of `key` on its own statement: the code.
    pub(crate) async fn add_after_alone(
        self: &Arc<Self>,
        key: &str,
        delay: Duration,
        priority: i16,
    ) -> Result<i32, QueueError> {
        let key = key.to_owned();
        self.call(move |shared| async move {
            let code: i16 = sqlx::query_scalar(&shared.sql.add_after)
                .bind(shared.queue_id)
                .bind(key)
                .bind(micros(delay))
                .bind(shared.now())
                .bind(priority)
                .bind(shared.batch_limit)
                .fetch_one(&shared.pool)
                .await?;
            Ok(i32::from(code))
        })
        .await
    }

    /// `add_rate_limited` of `key` with the queue's limiter, on its own
    /// statement: the code and the delay the limiter asked for.
    pub(crate) async fn add_rate_limited_alone(
        self: &Arc<Self>,
        key: &str,
        priority: i16,
    ) -> Result<(i32, Duration), QueueError> {
        let key = key.to_owned();
        self.report(|m| m.retries.inc());
        self.call(move |shared| async move {
            let args = super::transactional::LimiterArgs::of(&shared.limiter);
            let (code, delay_us): (i16, i64) = sqlx::query_as(&shared.sql.add_rate_limited)
                .bind(shared.queue_id)
                .bind(key)
                .bind(shared.now())
                .bind(args.base_us)
                .bind(args.max_us)
                .bind(args.fast_us)
                .bind(args.slow_us)
                .bind(args.max_fast)
                .bind(args.rate)
                .bind(args.burst)
                .bind(priority)
                .bind(shared.batch_limit)
                .fetch_one(&shared.pool)
                .await?;
            let delay = Duration::from_micros(u64::try_from(delay_us).unwrap_or(0));
            Ok((i32::from(code), delay))
        })
        .await
    }

    /// requeue's [`Added`] for an add's code (counting a real add).
    pub(crate) fn added(&self, code: i32, delay: Duration) -> Added {
        let added = added_of(&*self.clock, code, delay);
        if matches!(
            added,
            Added::Queued | Added::AfterDone | Added::Delayed { .. }
        ) {
            self.report(|m| m.adds.inc());
        }
        added
    }

    /// The queue-time metric of a handed-out item.
    pub(crate) fn observe_latency(&self, added_us: Option<i64>, now_us: i64) {
        if let Some(added) = added_us {
            let waited = now_us.saturating_sub(added).max(0);
            self.report(|m| m.latency.observe(waited as f64 / 1e6));
        }
    }
}

/// requeue's [`Added`] for an add's code (0 dedup/ignored, 1 queued, 2
/// parked, 3 delayed); `delay` dates a delayed one.
pub(crate) fn added_of(clock: &dyn requeue::clock::Clock, code: i32, delay: Duration) -> Added {
    match code {
        1 => Added::Queued,
        2 => Added::AfterDone,
        3 => Added::Delayed {
            at: requeue::clock::deadline_after(clock.now(), delay),
        },
        _ => Added::Merged,
    }
}

fn fenced(code: DoneCode) -> Fenced {
    match code {
        1 | 2 => Fenced::Ended,
        -1 => Fenced::LeaseLost,
        _ => Fenced::NotHeld,
    }
}
