//! [`RedisQueue`]: client-go's rate-limiting work queue shared by many
//! processes through Redis, behind requeue's [`AsyncQueue`] interface.
//!
//! # Usage
//!
//! ```no_run
//! use requeue::engine::AsyncQueue;
//! use requeue_redis::RedisQueue;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let queue: RedisQueue<String> = RedisQueue::builder("redis://127.0.0.1:6379", "pods")
//!     .build()
//!     .await?;
//! queue.add("default/web".to_string()).await?;
//! let item = queue.get().await?;
//! println!("reconciling {}", *item);
//! item.forget(); // success: done, backoff history cleared
//! # Ok(()) }
//! ```
//!
//! # Implementation
//!
//! Every state change is one Lua script over the queue's ten keys (see
//! [`ops`]). The hot operations (plain adds, gets, and the endings that
//! mark done, forget or requeue now) of all this process's callers are
//! coalesced: whatever is waiting goes as one [`ops::batch`] call (up to
//! four in flight), and each caller gets its own answer, so a busy queue
//! pays a fraction of a round trip per operation. With
//! [`RedisQueueBuilder::prefetch`] an ending also fetches the next item
//! for its worker. This process keeps only what it needs to renew
//! its leases (a table of tokens) and to wait without polling: one task
//! renews every held lease each third of the lease, one blocks on the
//! queue's marker while a getter is idle. Both, and every Redis call, run
//! on a small runtime the queue owns, so a handler that blocks its own
//! runtime cannot starve renewal, and the queue can be used from any
//! executor or a plain thread ([`BlockingRedisQueue`]).
//!
//! After a connection error the renewer renews first; getters wait for it
//! before taking new work, so leases survive a Redis restart that is
//! shorter than the lease.
//!
//! # Cancellation safety
//!
//! Dropping a `get` future never loses an item: if its batch already
//! leased one for it, the item is given back to the head of the queue at
//! once (no failure counted); should that fail, the lease runs out and
//! the item comes back with backoff, as for a crashed worker.

mod ahead;
mod background;
mod blocking;
mod builder;
mod connection;
mod deployment;
mod lease;
mod pipeline;
mod sentinel;
mod shared;

pub use ahead::DEFAULT_PREFETCH;
pub use blocking::BlockingRedisQueue;
pub use builder::{DEFAULT_LEASE, RedisQueueBuilder, connect_client};
pub use requeue::engine::codec::{DefaultCodec, Json, KeyCodec, Raw, Utf8};

use crate::ops::{self, Leased};
use background::WAKE_CAP;
use lease::{added_of, millis};
use requeue::clock::{SharedClock, Sleep};
use requeue::engine::remote::{self, LeaseEngine, retry_backoff};
use requeue::engine::{AddError, AsyncQueue, QueueError, Then};
use requeue::queue::{AddOpts, Added, Item, Key};
use requeue::wait::Stop;
use shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A work queue in Redis; clones share one connection and lease table.
/// See the [module docs](self).
pub struct RedisQueue<T> {
    shared: Arc<Shared<T>>,
    engine: Arc<Engine>,
}

impl<T> Clone for RedisQueue<T> {
    fn clone(&self) -> Self {
        RedisQueue {
            shared: self.shared.clone(),
            engine: self.engine.clone(),
        }
    }
}

impl<T> std::fmt::Debug for RedisQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("name", &self.shared.name)
            .field("url", &self.shared.url)
            .field("held", &self.shared.keeper.table().len())
            .field("fetched_ahead", &self.shared.ahead.len())
            .finish()
    }
}

/// The queue's runtime and background tasks; stopped with the last clone.
struct Engine {
    _runtime: builder::OwnedRuntime,
    cancel: CancellationToken,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The tasks stop first; the runtime then shuts down in the background.
        self.cancel.cancel();
    }
}

/// Counts a getter of this process as idle (waiting for a wake-up) while it lives.
struct Idle<'a, T>(&'a Shared<T>);

impl<'a, T> Idle<'a, T> {
    fn new(shared: &'a Shared<T>) -> Self {
        shared.idle.fetch_add(1, Ordering::SeqCst);
        shared.idle_changed.notify_waiters();
        Idle(shared)
    }
}

impl<T> Drop for Idle<'_, T> {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::SeqCst);
        self.0.idle_changed.notify_waiters();
    }
}

impl<T: Key> RedisQueue<T> {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The clock of this process's timers.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The lease duration.
    pub fn lease(&self) -> Duration {
        self.shared.keeper.lease()
    }

    /// How many items this process holds right now.
    pub fn held(&self) -> usize {
        self.shared.keeper.table().len()
    }

    /// Leases this process lost (its `done` came too late) so far.
    pub fn leases_lost(&self) -> u64 {
        self.shared.keeper.lease_lost()
    }

    /// Calls this process has sent to Redis so far (each a round trip;
    /// the adds, dones and gets that went together in one batch count
    /// once), renewals and marker waits excluded.
    pub fn round_trips(&self) -> u64 {
        self.shared.stats.calls.load(Ordering::Relaxed)
    }

    /// Expired leases (of any process) this process's gets reaped so far.
    pub fn leases_reaped(&self) -> u64 {
        self.shared.stats.reaped.load(Ordering::Relaxed)
    }

    /// Adds `item` now (client-go's `Add`).
    pub async fn add(&self, item: T) -> Result<Added, AddError<T>> {
        self.add_with(item, AddOpts::new()).await
    }

    /// Adds `item` after `delay` (client-go's `AddAfter`; the earliest of
    /// several delays wins).
    pub async fn add_after(&self, item: T, delay: Duration) -> Result<Added, AddError<T>> {
        self.add_with(item, AddOpts::new().after(delay)).await
    }

    /// Adds `item` after the rate limiter's delay (client-go's
    /// `AddRateLimited`; counts a requeue).
    pub async fn add_rate_limited(&self, item: T) -> Result<Added, AddError<T>> {
        self.add_with(item, AddOpts::new().rate_limited()).await
    }

    /// Adds `item` as `opts` say; priorities are ignored (Redis serves FIFO).
    /// Refused once this process is shutting down (client-go parity).
    pub async fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>> {
        if self.shared.is_shutting_down() {
            return Err(AddError {
                item,
                error: QueueError::ShutDown,
            });
        }
        // A limiter of this process's own answers here; the add is then an
        // `add_after` by its delay (the shorter delay rule applied).
        let mut opts = opts;
        let mut local_retry = false;
        if opts.rate_limited
            && let Some(limited) = self.shared.local_delay(&item)
        {
            opts = AddOpts {
                after: Some(opts.delay(Some(limited)).unwrap_or(Duration::ZERO)),
                rate_limited: false,
                ..opts
            };
            local_retry = true;
        }
        let raw = self.shared.codec.encode(&item);
        let after = opts.delay(None).map(millis);
        if !opts.rate_limited && after.is_none() {
            // The hot path: coalesced with this process's other calls.
            let added = match self.shared.pipeline() {
                Ok(pipeline) => pipeline.add(raw).await,
                Err(error) => Err(error),
            };
            return match added {
                Ok(code) => {
                    if code.is_added() {
                        self.shared.report(|m| m.adds.inc());
                    }
                    Ok(added_of(&self.shared, code, 0))
                }
                Err(error) => Err(AddError { item, error }),
            };
        }
        let result = self
            .shared
            .call(move |mut conn, shared| async move {
                let (keys, now) = (&shared.keys, shared.now());
                if local_retry {
                    shared.report(|m| m.retries.inc());
                }
                let (code, depth, delay) = if opts.rate_limited {
                    shared.report(|m| m.retries.inc());
                    let limited =
                        ops::add_rate_limited(&mut conn, keys, &raw, &shared.limiter, now).await?;
                    // The shorter of the two delays wins (`AddOpts::delay`):
                    // the script used the limiter's; a shorter `after` is
                    // added on top (the earliest delay wins in Redis too).
                    let limiter = Duration::from_millis(limited.delay_ms);
                    let chosen = opts.delay(Some(limiter)).map(millis);
                    match chosen.filter(|&ms| ms < limited.delay_ms) {
                        Some(ms) => {
                            let reply = ops::add_after(&mut conn, keys, &raw, ms, now).await?;
                            (reply.code, reply.depth, ms)
                        }
                        None => (limited.code, limited.depth, limited.delay_ms),
                    }
                } else {
                    // Only delayed adds get here (plain ones took the
                    // pipeline); a zero delay is an immediate add anyway.
                    let ms = after.unwrap_or(0);
                    let reply = ops::add_after(&mut conn, keys, &raw, ms, now).await?;
                    (reply.code, reply.depth, ms)
                };
                shared.report_depth(depth);
                if code.is_added() {
                    shared.report(|m| m.adds.inc());
                }
                Ok(added_of(&shared, code, delay))
            })
            .await;
        result.map_err(|error| AddError { item, error })
    }

    /// Waits for the next item and leases it to this process.
    /// [`QueueError::ShutDown`] once this process is shutting down;
    /// [`QueueError::Decode`] for stored bytes the codec refuses (the item
    /// stays in Redis: its lease runs out and it comes back with backoff);
    /// [`QueueError::Corrupt`] when the queue's keys hold something the
    /// scripts never write (nothing was taken; repair the state, e.g. with
    /// `requeue repair`, and call again).
    /// Connection errors are not returned: the get waits, reconnects and
    /// renews this process's leases first.
    pub async fn get(&self) -> Result<Item<T>, QueueError> {
        self.get_inner(None).await
    }

    /// As [`get`](RedisQueue::get), but gives up with
    /// [`QueueError::Stopped`] when `stop` fires.
    pub async fn get_until(&self, stop: &Stop) -> Result<Item<T>, QueueError> {
        self.get_inner(Some(stop)).await
    }

    async fn get_inner(&self, stop: Option<&Stop>) -> Result<Item<T>, QueueError> {
        let shared = &self.shared;
        let mut backoff = retry_backoff(Duration::from_millis(20));
        let never = Stop::new();
        let stop = stop.unwrap_or(&never);
        loop {
            if shared.is_shutting_down() {
                return Err(QueueError::ShutDown);
            }
            if stop.is_stopped() {
                return Err(QueueError::Stopped);
            }
            if let Some(fetched) = shared.ahead.take() {
                return self.claim(fetched);
            }
            // Registered before the script runs, so a wake-up that lands
            // while it runs is not missed.
            let ready = shared.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if !shared.keeper.is_healthy() {
                // Renew first: wait for the renewer's next success.
                tokio::select! {
                    _ = shared.keeper.wait_healthy() => {}
                    _ = &mut ready => {}
                    _ = stop.stopped() => {}
                }
                continue;
            }
            let reply = match shared.pipeline() {
                Ok(pipeline) => pipeline.get().await,
                Err(error) => Err(error),
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(error @ QueueError::Corrupt { .. }) => {
                    // Not transient: the caller must know (nothing was taken).
                    tracing::error!(queue = %shared.name, %error, "get refused: the queue's state needs repair");
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(queue = %shared.name, %error, "get failed; retrying");
                    tokio::select! {
                        _ = shared.runtime.spawn(tokio::time::sleep(backoff.step())) => {}
                        _ = stop.stopped() => {}
                    }
                    continue;
                }
            };
            backoff = retry_backoff(Duration::from_millis(20));
            if let Some(leased) = reply.item {
                return self.hand_out(leased, reply.sent_ms);
            }
            let wait = reply
                .next_wake_ms
                .map_or(WAKE_CAP, |due| {
                    Duration::from_millis(due.saturating_sub(reply.now_ms))
                })
                .min(WAKE_CAP);
            let deadline = requeue::clock::deadline_after(shared.clock.now(), wait);
            // Idle only while waiting: the marker waiter blocks for this
            // process only while someone here can use a wake-up.
            let _idle = Idle::new(shared);
            tokio::select! {
                _ = &mut ready => {}
                _ = Sleep::new(&*shared.clock, deadline) => {}
                _ = stop.stopped() => {}
            }
        }
    }

    /// One attempt, without waiting: the next ready item (after reaping
    /// expired leases and promoting due delayed items), or `Ok(None)`.
    /// Connection errors are returned, not retried.
    pub async fn try_get(&self) -> Result<Option<Item<T>>, QueueError> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(QueueError::ShutDown);
        }
        if let Some(fetched) = shared.ahead.take() {
            return self.claim(fetched).map(Some);
        }
        let reply = shared.pipeline()?.get().await?;
        reply
            .item
            .map(|leased| self.hand_out(leased, reply.sent_ms))
            .transpose()
    }

    /// Wraps an item fetched ahead (its lease already renewed) in the guard.
    fn claim(&self, fetched: ahead::Fetched) -> Result<Item<T>, QueueError> {
        let leased = fetched.leased;
        self.shared
            .report(|m| m.latency.observe(leased.queue_ms as f64 / 1000.0));
        match self.shared.codec.decode(&leased.item) {
            Ok(item) => {
                Ok(
                    remote::guard(&self.shared, item, leased.item, leased.token, fetched.state)
                        .with_requeues(leased.requeues),
                )
            }
            Err(reason) => {
                // No longer renewed: it is reaped after the lease and comes
                // back with backoff, as any undecodable item.
                self.shared.keeper.forget(&leased.item, leased.token);
                Err(QueueError::Decode {
                    raw: leased.item,
                    reason,
                })
            }
        }
    }

    /// Wraps a leased item in the guard, registering its lease for renewal.
    fn hand_out(&self, leased: Leased, sent_ms: u64) -> Result<Item<T>, QueueError> {
        self.shared
            .report(|m| m.latency.observe(leased.queue_ms as f64 / 1000.0));
        let item = match self.shared.codec.decode(&leased.item) {
            Ok(item) => item,
            Err(reason) => {
                // Not registered, so not renewed: it is reaped after the
                // lease and comes back with backoff; nothing is deleted.
                return Err(QueueError::Decode {
                    raw: leased.item,
                    reason,
                });
            }
        };
        Ok(
            remote::hand_out(&self.shared, item, leased.item, leased.token, sent_ms)
                .with_requeues(leased.requeues),
        )
    }

    /// Ends the processing of `item`, held by this process under a guard
    /// that was [detached](Item::detach) (client-go's `Done`): the fenced
    /// done of its lease, which stops being renewed. `Ok(false)` if this
    /// process holds no lease on `item`; [`QueueError::LeaseLost`] if the
    /// lease ran out meanwhile.
    pub async fn done(&self, item: &T) -> Result<bool, QueueError> {
        let raw = self.shared.codec.encode(item);
        let Some(token) = self.shared.keeper.table().token_of(&raw) else {
            return Ok(false);
        };
        if self.shared.ahead.holds(&raw, token) {
            // Fetched ahead, not handed to anyone: nothing to end.
            return Ok(false);
        }
        remote::end_with_retries(&self.shared, raw, token, Then::Done, None)
            .await
            .map(|ended| ended.released)
    }

    /// Clears `item`'s failure count (client-go's `Forget`).
    pub async fn forget(&self, item: &T) -> Result<(), QueueError> {
        self.shared.local_forget(item);
        let raw = self.shared.codec.encode(item);
        self.shared
            .call(move |mut conn, shared| async move {
                ops::forget(&mut conn, &shared.keys, &raw).await.map(drop)
            })
            .await
    }

    /// `item`'s failure count (client-go's `NumRequeues`).
    pub async fn num_requeues(&self, item: &T) -> Result<u32, QueueError> {
        if let Some(limiter) = &self.shared.local_limiter {
            return Ok(limiter.num_requeues(item));
        }
        let raw = self.shared.codec.encode(item);
        let n = self
            .shared
            .call(move |mut conn, shared| async move {
                ops::num_requeues(&mut conn, &shared.keys, &raw).await
            })
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Items ready in the queue, across every process (client-go's `Len`),
    /// with the items this process fetched ahead and no worker took yet
    /// (those of other processes are not counted).
    pub async fn len(&self) -> Result<usize, QueueError> {
        let ahead = self.shared.ahead.len();
        let n = self
            .shared
            .call(|mut conn, shared| async move {
                ops::len(&mut conn, &shared.keys, shared.now()).await
            })
            .await?;
        Ok(usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_add(ahead))
    }

    /// Whether no item is ready (see [`len`](RedisQueue::len)).
    pub async fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len().await? == 0)
    }

    /// Stops this process taking work: waiting gets return
    /// [`QueueError::ShutDown`] and adds are refused. The queue in Redis
    /// lives on for other processes; items this process holds stay leased
    /// until their guards end them, and items fetched ahead that no worker
    /// took yet are given back at once.
    pub fn shut_down(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.ready.notify_waiters();
        // Fetched ahead but not started: back to the head of the queue.
        self.shared.give_back_ahead(self.shared.ahead.take_all());
    }

    /// As [`shut_down`](RedisQueue::shut_down), then waits until this
    /// process holds no lease (client-go's `ShutDownWithDrain`).
    pub async fn shut_down_with_drain(&self) {
        self.shut_down();
        self.shared.keeper.drained().await;
    }

    /// As [`shut_down`](RedisQueue::shut_down), then gives every held item
    /// back at the head of the queue at once, without waiting for its
    /// handler (asynq's requeue-on-shutdown). Their guards find the lease
    /// gone. Returns how many items were given back.
    pub async fn shut_down_and_release(&self) -> Result<usize, QueueError> {
        self.shut_down();
        let held = self.shared.keeper.table().snapshot();
        let mut released = 0;
        for (raw, token) in held {
            if self.shared.clone().release(raw.clone(), token).await? {
                released += 1;
            }
            self.shared.keeper.forget(&raw, token);
        }
        Ok(released)
    }

    /// Whether [`shut_down`](RedisQueue::shut_down) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }
}

impl<T: Key> AsyncQueue<T> for RedisQueue<T> {
    fn name(&self) -> &str {
        RedisQueue::name(self)
    }

    fn clock(&self) -> &SharedClock {
        RedisQueue::clock(self)
    }

    async fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>> {
        RedisQueue::add_with(self, item, opts).await
    }

    async fn get(&self) -> Result<Item<T>, QueueError> {
        RedisQueue::get(self).await
    }

    async fn get_until(&self, stop: &Stop) -> Result<Item<T>, QueueError> {
        RedisQueue::get_until(self, stop).await
    }

    async fn done(&self, item: &T) -> Result<bool, QueueError> {
        RedisQueue::done(self, item).await
    }

    async fn forget(&self, item: &T) -> Result<(), QueueError> {
        RedisQueue::forget(self, item).await
    }

    async fn num_requeues(&self, item: &T) -> Result<u32, QueueError> {
        RedisQueue::num_requeues(self, item).await
    }

    async fn len(&self) -> Result<usize, QueueError> {
        RedisQueue::len(self).await
    }

    fn shut_down(&self) -> Vec<T> {
        RedisQueue::shut_down(self);
        Vec::new()
    }

    async fn shut_down_with_drain(&self) -> Vec<T> {
        RedisQueue::shut_down_with_drain(self).await;
        Vec::new()
    }

    fn is_shutting_down(&self) -> bool {
        RedisQueue::is_shutting_down(self)
    }
}
