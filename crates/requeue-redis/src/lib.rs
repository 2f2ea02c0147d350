//! requeue's work-queue semantics shared by many processes through Redis.
//!
//! Not built yet: this crate reserves the name and the place in the
//! workspace. The design is in the project's `REDIS.md`; until it lands,
//! use the in-process engine of the [`requeue`] crate.
//!
//! ```
//! assert_eq!(requeue_redis::STATUS, "planned");
//! ```
#![deny(missing_docs)]

/// Where this engine stands: `"planned"` until the Redis engine lands.
pub const STATUS: &str = "planned";
