//! Typed async calls of the scripts, plus the plain single-command helpers.
//!
//! Every function takes any async connection (`ConnectionManager`,
//! `MultiplexedConnection`, …), the queue's [`QueueKeys`] and, for the
//! scripts, a [`Now`]: the server's clock in production, a fake time in
//! tests. Times and durations are whole milliseconds of that clock.
//!
//! | client-go | here |
//! |---|---|
//! | `Add` | [`add`], [`add_batch`] |
//! | `AddAfter` | [`add_after`] |
//! | `AddRateLimited` | [`add_rate_limited`] with a [`LimiterSpec`] |
//! | `Get` | [`get`] (leases the item under a [`Token`]) |
//! | `Done` | [`done`], or [`done_get`] to fetch the next item too |
//! | — | [`extend`] (renew leases), [`release`] (give back to the head), [`reap`] |
//! | many of `Add`, `Done`, `Get` at once | [`batch`] (what `RedisQueue` sends) |
//! | `Forget`, `NumRequeues`, `Len` | [`forget`], [`num_requeues`], [`len`] |
//!
//! A reply of an unexpected shape is [`Error::Protocol`], never a panic.
//!
//! # When delayed items become ready
//!
//! The in-memory queue's timer makes a delayed item ready *at* its due
//! time. Redis has no timer, so every script that changes the queue
//! ([`add`], [`add_batch`], [`add_after`], [`add_rate_limited`], [`get`],
//! [`done`], [`done_get`], [`release`], [`reap`]) and [`len`] first
//! promotes the items due at its `now`, then acts. A due item is therefore
//! queued before anything that happens after its due time, whichever
//! process does it: `add_after(x, 10 ms)`, 20 ms later `add(y)`, then
//! `get` returns `x`, as in memory. That costs one
//! `ZRANGE … BYSCORE LIMIT 0 n` per call when nothing is due.
//!
//! Two differences remain, both about many items due at once:
//!
//! * **Bounded promotion**: one call promotes at most `batch` items
//!   ([`GetArgs::batch`], [`ReapArgs::batch`]) or, in the scripts without a
//!   batch argument, 100. A larger backlog is promoted, earliest first, by
//!   the next calls, so an add may overtake the rest of it.
//! * **Ties**: items due at the same millisecond are promoted in the order
//!   of their bytes (a sorted set's order for equal scores); the in-memory
//!   queue promotes them in the order they were delayed. Times are whole
//!   milliseconds here, so "the same due time" is also coarser.
//!
//! [`extend`] and `inspect` never promote.
//!
//! [`QueueKeys`]: crate::keys::QueueKeys

mod add;
mod batch;
mod lease;
mod limiter;
mod plain;
mod renew;
mod reply;
mod token;

pub use add::{AddBatchReply, AddCode, AddReply, add, add_after, add_batch};
pub use batch::{BatchOp, BatchReply, BatchResult, MAX_BATCH_ITEMS, batch};
pub use lease::{
    DoneCode, DoneGetReply, DoneReply, GetArgs, GetReply, Leased, done, done_forgetting, done_get,
    get,
};
pub use limiter::{Bucket, Exponential, FastSlow, LimiterSpec, RateLimitedReply, add_rate_limited};
pub use plain::{forget, len, num_requeues};
pub use renew::{ReapArgs, ReleaseCode, ReleaseReply, extend, reap, release};
pub use token::{ParseTokenError, Token};

use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::{ScriptName, Scripts};
use redis::{ScriptInvocation, Value};

/// The most items (or item/token pairs) sent in one script call; longer
/// inputs are split into several calls.
pub const MAX_BATCH: usize = 1000;

/// The longest delay or lease, in ms: 2^63 − 1 ns (requeue's
/// [`NEVER`](requeue::limiter::NEVER)) rounded up, about 292 years. Longer
/// ones are clamped to it, which keeps every time sum exact in Lua.
pub const MAX_MS: u64 = 9_223_372_036_855;

/// Which clock the scripts read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Now {
    /// The Redis server's `TIME`: one clock for every client, whatever
    /// their skew. What production uses.
    #[default]
    Server,
    /// This time, in ms (any epoch; tests use a fake clock's reading).
    Fake(u64),
}

impl Now {
    /// `ARGV[1]` of every script: the ms as decimal digits, or empty.
    fn arg(self) -> Vec<u8> {
        match self {
            Now::Server => Vec::new(),
            Now::Fake(ms) => ms.to_string().into_bytes(),
        }
    }
}

/// A duration argument, clamped to [`MAX_MS`].
fn ms(value: u64) -> u64 {
    value.min(MAX_MS)
}

/// `name` with its KEYS and `ARGV[1]` filled in; callers append the rest.
fn invocation(name: ScriptName, keys: &QueueKeys, now: Now) -> ScriptInvocation<'static> {
    Scripts::global().prepare(name, keys, &now.arg())
}

/// Runs a prepared invocation (EVALSHA, EVAL on NOSCRIPT).
async fn run<C>(conn: &mut C, invocation: &ScriptInvocation<'_>) -> Result<Value, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    invocation
        .invoke_async::<Value>(conn)
        .await
        .map_err(|error| Error::corruption(&error).unwrap_or(Error::Redis(error)))
}
