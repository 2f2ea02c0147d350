//! [`PostgresQueue`]: client-go's rate-limiting work queue shared by many
//! processes through PostgreSQL, behind requeue's [`AsyncQueue`]
//! interface, with adds that can join the caller's transaction.
//!
//! # Usage
//!
//! ```no_run
//! use requeue::engine::AsyncQueue;
//! use requeue_postgres::PostgresQueue;
//!
//! # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! let queue: PostgresQueue<String> =
//!     PostgresQueue::builder("postgres://app@127.0.0.1/app", "orders")
//!         .build()
//!         .await?;
//! // An add that commits with the business write that caused it.
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE orders SET state = 'paid' WHERE id = 7").execute(&mut *tx).await?;
//! queue.add_in(&mut tx, "order/7".to_string()).await?;
//! tx.commit().await?;
//!
//! let item = queue.get().await?;
//! println!("processing {}", *item);
//! item.forget(); // success: done, backoff history cleared
//! # Ok(()) }
//! ```
//!
//! # Implementation
//!
//! Every state change is one SQL function of the schema's migrations, so
//! one statement: atomic, validated before it writes. The plain adds,
//! dones and gets of all this process's callers are coalesced into one
//! `batch` statement (two in flight), so a busy queue pays a fraction of
//! a round trip and of a commit per operation. Claims use `FOR UPDATE
//! SKIP LOCKED`, so processes never wait for each other. Idle getters
//! wait for a `NOTIFY` (one listening connection per process), or for the
//! next due time or lease deadline the database told them, at most 5 s.
//! One task renews every held lease each third of the lease, on a small
//! runtime the queue owns, so a handler that blocks its own runtime cannot
//! starve renewal, and the queue can be used from a plain thread
//! ([`BlockingPostgresQueue`]).
//!
//! # Cancellation safety
//!
//! Dropping a `get` future never loses an item: if its batch already
//! leased one for it, the item is given back to the head of the queue at
//! once (no failure counted); should that fail, the lease runs out and
//! the item comes back with backoff, as for a crashed worker.

mod batch;
mod builder;
mod lease;
mod listen;
mod shared;
mod sql;
mod transactional;

pub use builder::{DEFAULT_LEASE, DEFAULT_MAX_CONNECTIONS, PostgresQueueBuilder};
pub use requeue::engine::codec::{DefaultCodec, Json, KeyCodec, Raw, Utf8};
pub use shared::PgToken;

use batch::Got;
use builder::OwnedRuntime;
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

/// A [`PostgresQueue`] for threads without an async runtime: the same
/// calls, blocking (core's [`Blocking`](requeue::engine::Blocking)
/// facade). Build it with
/// [`PostgresQueueBuilder::build_blocking`].
pub type BlockingPostgresQueue<T> = requeue::engine::Blocking<PostgresQueue<T>>;

/// A work queue in PostgreSQL; clones share one pool and lease table.
/// See the [module docs](self).
pub struct PostgresQueue<T> {
    shared: Arc<Shared<T>>,
    engine: Arc<Engine>,
}

impl<T> Clone for PostgresQueue<T> {
    fn clone(&self) -> Self {
        PostgresQueue {
            shared: self.shared.clone(),
            engine: self.engine.clone(),
        }
    }
}

impl<T> std::fmt::Debug for PostgresQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresQueue")
            .field("name", &self.shared.name)
            .field("url", &self.shared.url)
            .field("schema", &self.shared.channel)
            .field("held", &self.shared.keeper.table().len())
            .finish()
    }
}

/// The queue's runtime and background tasks; stopped with the last clone.
struct Engine {
    _runtime: OwnedRuntime,
    cancel: CancellationToken,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The tasks stop first; the runtime then shuts down in the background.
        self.cancel.cancel();
    }
}

impl<T: Key> PostgresQueue<T> {
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

    /// Expired leases (of any process) this process's statements reaped so far.
    pub fn leases_reaped(&self) -> u64 {
        self.shared.stats.reaped.load(Ordering::Relaxed)
    }

    /// Statements this process has sent so far (each a round trip; the
    /// adds, dones and gets that went in one batch count once), renewals
    /// excluded.
    pub fn statements(&self) -> u64 {
        self.shared.stats.calls.load(Ordering::Relaxed)
    }

    /// The pool the queue's statements run on.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.shared.pool
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

    /// Adds `item` as `opts` say; a higher priority is handed out first
    /// (FIFO within a priority). Refused once this process is shutting
    /// down (client-go parity), and for a key whose encoding is not text
    /// PostgreSQL can store. To add inside your own transaction, see
    /// [`add_in_with`](PostgresQueue::add_in_with).
    pub async fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>> {
        match self.add_inner(&item, opts).await {
            Ok(added) => Ok(added),
            Err(error) => Err(AddError { item, error }),
        }
    }

    async fn add_inner(&self, item: &T, opts: AddOpts) -> Result<Added, QueueError> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(QueueError::ShutDown);
        }
        let key = shared.key_text(item)?;
        let priority = transactional::priority_of(&opts);
        if opts.rate_limited {
            let (code, limiter) = shared.add_rate_limited_alone(&key, priority).await?;
            // The shorter of the two delays wins (`AddOpts::delay`).
            return match opts.delay(Some(limiter)).filter(|d| *d < limiter) {
                Some(shorter) => {
                    let code = shared.add_after_alone(&key, shorter, priority).await?;
                    Ok(shared.added(code, shorter))
                }
                None => Ok(shared.added(code, limiter)),
            };
        }
        match opts.delay(None) {
            None if priority == 0 => {
                // The hot path: coalesced with this process's other calls.
                let code = shared.batcher()?.add(key).await?;
                Ok(shared.added(code, Duration::ZERO))
            }
            delay => {
                let delay = delay.unwrap_or(Duration::ZERO);
                let code = shared.add_after_alone(&key, delay, priority).await?;
                Ok(shared.added(code, delay))
            }
        }
    }

    /// Waits for the next item and leases it to this process.
    /// [`QueueError::ShutDown`] once this process is shutting down;
    /// [`QueueError::Decode`] for stored text the codec refuses (the item
    /// stays in the table: its lease runs out and it comes back with
    /// backoff). Connection errors are not returned: the get waits,
    /// reconnects and renews this process's leases first.
    pub async fn get(&self) -> Result<Item<T>, QueueError> {
        self.get_inner(None).await
    }

    /// As [`get`](PostgresQueue::get), but gives up with
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
            // Registered before the statement runs, so a wake-up that
            // lands while it runs is not missed.
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
            let got = match shared.batcher() {
                Ok(batcher) => batcher.get().await,
                Err(error) => Err(error),
            };
            let got = match got {
                Ok(got) => got,
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
            let (now_us, next_us) = (got.now_us, got.next_us);
            if let Some(item) = self.hand_out(got)? {
                return Ok(item);
            }
            let wait = next_us
                .map_or(listen::WAKE_CAP, |due| {
                    Duration::from_micros(u64::try_from(due.saturating_sub(now_us)).unwrap_or(0))
                })
                .min(listen::WAKE_CAP);
            let deadline = requeue::clock::deadline_after(shared.clock.now(), wait);
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
        if self.shared.is_shutting_down() {
            return Err(QueueError::ShutDown);
        }
        // An explicit poll reaps whatever has expired.
        self.shared.force_reap.store(true, Ordering::Relaxed);
        let got = self.shared.batcher()?.get().await?;
        self.hand_out(got)
    }

    /// Wraps a leased item in the guard and registers its lease.
    fn hand_out(&self, got: Got) -> Result<Option<Item<T>>, QueueError> {
        let Some(claimed) = got.item.take() else {
            return Ok(None);
        };
        self.shared.observe_latency(claimed.added_us, got.now_us);
        let raw = claimed.key.into_bytes();
        let item = match self.shared.codec.decode(&raw) {
            Ok(item) => item,
            // Not registered, so not renewed: it is reaped after the
            // lease and comes back with backoff; nothing is deleted.
            Err(reason) => return Err(QueueError::Decode { raw, reason }),
        };
        Ok(Some(
            remote::hand_out(&self.shared, item, raw, claimed.token, got.sent_ms)
                .with_requeues(Some(claimed.failures)),
        ))
    }

    /// Ends the processing of `item`, held by this process under a guard
    /// that was [detached](Item::detach) (client-go's `Done`): the fenced
    /// done of its lease. `Ok(false)` if this process holds no lease on
    /// `item`; [`QueueError::LeaseLost`] if the lease ran out meanwhile.
    pub async fn done(&self, item: &T) -> Result<bool, QueueError> {
        let raw = self.shared.codec.encode(item);
        let Some(token) = self.shared.keeper.table().token_of(&raw) else {
            return Ok(false);
        };
        remote::end_with_retries(&self.shared, raw, token, Then::Done, None)
            .await
            .map(|ended| ended.released)
    }

    /// Clears `item`'s failure count (client-go's `Forget`).
    pub async fn forget(&self, item: &T) -> Result<(), QueueError> {
        let key = self.shared.key_text(item)?;
        self.shared
            .call(move |shared| async move {
                sqlx::query(&shared.sql.forget)
                    .bind(shared.queue_id)
                    .bind(key)
                    .execute(&shared.pool)
                    .await
                    .map(drop)
            })
            .await
    }

    /// `item`'s failure count (client-go's `NumRequeues`).
    pub async fn num_requeues(&self, item: &T) -> Result<u32, QueueError> {
        let key = self.shared.key_text(item)?;
        let n: i32 = self
            .shared
            .call(move |shared| async move {
                sqlx::query_scalar(&shared.sql.num_requeues)
                    .bind(shared.queue_id)
                    .bind(key)
                    .fetch_one(&shared.pool)
                    .await
            })
            .await?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    /// Items ready in the queue, across every process (client-go's `Len`).
    pub async fn len(&self) -> Result<usize, QueueError> {
        let n: i64 = self
            .shared
            .call(|shared| async move {
                sqlx::query_scalar(&shared.sql.len)
                    .bind(shared.queue_id)
                    .bind(shared.now())
                    .fetch_one(&shared.pool)
                    .await
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether no item is ready (see [`len`](PostgresQueue::len)).
    pub async fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len().await? == 0)
    }

    /// Stops this process taking work: waiting gets return
    /// [`QueueError::ShutDown`] and adds are refused. The queue lives on
    /// for other processes; items this process holds stay leased until
    /// their guards end them.
    pub fn shut_down(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        self.shared.ready.notify_waiters();
    }

    /// As [`shut_down`](PostgresQueue::shut_down), then waits until this
    /// process holds no lease (client-go's `ShutDownWithDrain`).
    pub async fn shut_down_with_drain(&self) {
        self.shut_down();
        self.shared.keeper.drained().await;
    }

    /// As [`shut_down`](PostgresQueue::shut_down), then gives every held
    /// item back at the head of the queue at once, without waiting for its
    /// handler. Their guards find the lease gone. Returns how many items
    /// were given back.
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

    /// Whether [`shut_down`](PostgresQueue::shut_down) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }
}

impl<T: Key> AsyncQueue<T> for PostgresQueue<T> {
    fn name(&self) -> &str {
        PostgresQueue::name(self)
    }

    fn clock(&self) -> &SharedClock {
        PostgresQueue::clock(self)
    }

    async fn add_with(&self, item: T, opts: AddOpts) -> Result<Added, AddError<T>> {
        PostgresQueue::add_with(self, item, opts).await
    }

    async fn get(&self) -> Result<Item<T>, QueueError> {
        PostgresQueue::get(self).await
    }

    async fn get_until(&self, stop: &Stop) -> Result<Item<T>, QueueError> {
        PostgresQueue::get_until(self, stop).await
    }

    async fn done(&self, item: &T) -> Result<bool, QueueError> {
        PostgresQueue::done(self, item).await
    }

    async fn forget(&self, item: &T) -> Result<(), QueueError> {
        PostgresQueue::forget(self, item).await
    }

    async fn num_requeues(&self, item: &T) -> Result<u32, QueueError> {
        PostgresQueue::num_requeues(self, item).await
    }

    async fn len(&self) -> Result<usize, QueueError> {
        PostgresQueue::len(self).await
    }

    fn shut_down(&self) -> Vec<T> {
        PostgresQueue::shut_down(self);
        Vec::new()
    }

    async fn shut_down_with_drain(&self) -> Vec<T> {
        PostgresQueue::shut_down_with_drain(self).await;
        Vec::new()
    }

    fn is_shutting_down(&self) -> bool {
        PostgresQueue::is_shutting_down(self)
    }
}
