//! requeue's work-queue semantics shared by many processes through Redis.
//!
//! client-go's work queue (dedup on dirty, one holder per key, re-adds
//! parked until done, earliest delay wins, rate-limited retries) with its
//! state in Redis, so that processes on many machines share one queue.
//! Leases with fencing tokens replace the in-memory processing set: a
//! process that dies loses its items to others after one lease.
//!
//! This is the low-level layer: one atomic Lua script per state transition
//! and typed calls for them. The design, with the reasons behind it, is in
//! `docs/redis.md` in the repository.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`keys`] | [`QueueKeys`](keys::QueueKeys): a queue name's 10 Redis keys, one hash tag |
//! | [`scripts`] | the Lua sources and [`Scripts::load_all`](scripts::Scripts::load_all) |
//! | [`ops`] | typed async calls: [`add`](ops::add), [`get`](ops::get), [`done`](ops::done), [`extend`](ops::extend), … |
//! | [`inspect`] | a consistent snapshot of a queue, and its invariants |
//! | [`local_server`] | a throwaway `redis-server` for tests and benchmarks |
//! | [`redact`] | URLs without their passwords, for messages, logs and `Debug` |
//! | [`error`] | the crate's [`Error`](error::Error), and [`Chain`](error::Chain) to print a cause chain once |
//!
//! ```no_run
//! use requeue_redis::keys::QueueKeys;
//! use requeue_redis::ops::{self, DoneCode, GetArgs, Now};
//! use requeue_redis::scripts::Scripts;
//!
//! # async fn demo() -> Result<(), requeue_redis::error::Error> {
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! Scripts::global().load_all(&mut conn).await?;
//! let keys = QueueKeys::new("emails")?;
//! ops::add(&mut conn, &keys, b"user-42", Now::Server).await?;
//! let reply = ops::get(&mut conn, &keys, &GetArgs::default(), Now::Server).await?;
//! if let Some(leased) = reply.item {
//!     // … process leased.item, renewing with ops::extend while it runs …
//!     let done = ops::done(&mut conn, &keys, &leased.item, leased.token, Now::Server).await?;
//!     assert!(!done.code.is_lost());
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod inspect;
pub mod keys;
pub mod local_server;
pub mod ops;
pub mod queue;
pub mod redact;
pub mod scripts;

pub use queue::{BlockingRedisQueue, RedisQueue, RedisQueueBuilder, connect_client};
