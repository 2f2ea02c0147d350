//! `add_rate_limited` and the limiter it evaluates in Lua.

use super::add::AddCode;
use super::reply::{fields, int, uint};
use super::{Now, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;

/// client-go's `ItemExponentialFailureRateLimiter`
/// ([`requeue::limiter::ItemExponential`]): `base × 2^failures`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exponential {
    /// The wait after an item's first failure, in ms (0: always 0).
    pub base_ms: u64,
    /// The longest wait, in ms.
    pub max_ms: u64,
}

/// client-go's `ItemFastSlowRateLimiter` ([`requeue::limiter::ItemFastSlow`]):
/// `fast` for an item's first `max_fast` attempts, then `slow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastSlow {
    /// The wait of the first `max_fast` attempts, in ms.
    pub fast_ms: u64,
    /// The wait of every later attempt, in ms.
    pub slow_ms: u64,
    /// How many attempts wait only `fast_ms` (0: every attempt is slow).
    pub max_fast: u32,
}

/// client-go's `BucketRateLimiter` ([`requeue::limiter::TokenBucket`]): one
/// bucket shared by every item and every process using the queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Tokens per second. `f64::MAX` or more (or infinity) never waits;
    /// 0, negative or NaN spends the burst, then waits "forever" ([`MAX_MS`](super::MAX_MS)),
    /// as golang.org/x/time/rate does.
    pub qps: f64,
    /// Capacity; the bucket starts full. 0 with a positive rate always
    /// waits "forever".
    pub burst: u32,
}

/// The rate limiter of `add_rate_limited`: client-go's `MaxOfRateLimiter`
/// of the limiters that are `Some` (the longest wait wins, and every one
/// counts the attempt). All `None` waits 0.
///
/// Items' failure counts (`NumRequeues`) live in the queue's `failures`
/// hash and the bucket in its `limiter` hash, so every process shares them.
/// The waits match the in-memory limiters of `requeue` for the same inputs,
/// in whole ms: the bucket's wait is rounded up to the next ms so an item is
/// never due before its token.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimiterSpec {
    /// Per-item exponential backoff.
    pub exponential: Option<Exponential>,
    /// Per-item two-speed backoff.
    pub fast_slow: Option<FastSlow>,
    /// Overall token bucket.
    pub bucket: Option<Bucket>,
}

impl LimiterSpec {
    /// client-go's `DefaultControllerRateLimiter`
    /// ([`requeue::limiter::default_controller`]): exponential 5 ms … 1000 s
    /// and a bucket of 10 per second with a burst of 100.
    pub fn default_controller() -> Self {
        LimiterSpec {
            exponential: Some(Exponential {
                base_ms: 5,
                max_ms: 1_000_000,
            }),
            fast_slow: None,
            bucket: Some(Bucket {
                qps: 10.0,
                burst: 100,
            }),
        }
    }

    /// client-go's `DefaultItemBasedRateLimiter`: exponential 1 ms … 1000 s.
    pub fn default_item_based() -> Self {
        LimiterSpec {
            exponential: Some(Exponential {
                base_ms: 1,
                max_ms: 1_000_000,
            }),
            ..LimiterSpec::default()
        }
    }

    /// ARGV[3..=9] of `add_rate_limited.lua` ('' = not configured).
    fn args(&self) -> [String; 7] {
        let none = String::new;
        let (base, max) = match self.exponential {
            Some(e) => (ms(e.base_ms).to_string(), ms(e.max_ms).to_string()),
            None => (none(), none()),
        };
        let (fast, slow, max_fast) = match self.fast_slow {
            Some(f) => (
                ms(f.fast_ms).to_string(),
                ms(f.slow_ms).to_string(),
                f.max_fast.to_string(),
            ),
            None => (none(), none(), none()),
        };
        let (rate, burst) = match self.bucket {
            // Unlimited never waits and keeps no state: same as no bucket.
            Some(b) if b.qps >= f64::MAX => (none(), none()),
            Some(b) if b.qps.is_nan() || b.qps <= 0.0 => ("0".to_owned(), b.burst.to_string()),
            // f64's Display is plain decimal (no exponent), which Lua reads.
            Some(b) => (b.qps.to_string(), b.burst.to_string()),
            None => (none(), none()),
        };
        [base, max, fast, slow, max_fast, rate, burst]
    }
}

/// The reply of [`add_rate_limited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitedReply {
    /// What the resulting `add_after` did.
    pub code: AddCode,
    /// The limiter's wait, in ms.
    pub delay_ms: u64,
    /// Items in the queue afterwards.
    pub depth: u64,
}

/// client-go `AddRateLimited`: asks `limiter` for the item's wait (which
/// counts the attempt: `NumRequeues` + 1 when a per-item limiter is
/// configured, one bucket token when a bucket is) and does [`add_after`](super::add_after)
/// with it, all in one atomic call. Also counts `retries_total` in `meta`.
///
/// Retrying a call whose reply was lost counts the attempt twice.
pub async fn add_rate_limited<C>(
    conn: &mut C,
    keys: &QueueKeys,
    item: &[u8],
    limiter: &LimiterSpec,
    now: Now,
) -> Result<RateLimitedReply, Error>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut call = invocation(ScriptName::AddRateLimited, keys, now);
    call.arg(item);
    for arg in limiter.args() {
        call.arg(arg);
    }
    let what = "add_rate_limited";
    let [code, delay, depth] = fields(run(conn, &call).await?, what)?;
    Ok(RateLimitedReply {
        code: AddCode::from_code(int(&code, what)?)?,
        delay_ms: uint(&delay, what)?,
        depth: uint(&depth, what)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_args_mark_missing_limiters_empty() {
        let args = LimiterSpec::default_controller().args();
        assert_eq!(args, ["5", "1000000", "", "", "", "10", "100"]);
        let odd = LimiterSpec {
            exponential: None,
            fast_slow: Some(FastSlow {
                fast_ms: 1,
                slow_ms: u64::MAX,
                max_fast: 0,
            }),
            bucket: Some(Bucket {
                qps: f64::NAN,
                burst: 2,
            }),
        };
        assert_eq!(
            odd.args(),
            ["", "", "1", "9223372036855", "0", "0", "2"].map(String::from)
        );
        let unlimited = LimiterSpec {
            bucket: Some(Bucket {
                qps: f64::INFINITY,
                burst: 0,
            }),
            ..LimiterSpec::default()
        };
        assert_eq!(
            unlimited.args(),
            ["", "", "", "", "", "", ""].map(String::from)
        );
        let tiny = Bucket {
            qps: 1e-7,
            burst: 1,
        };
        assert_eq!(tiny.qps.to_string(), "0.0000001");
    }
}
