//! `add_rate_limited` and the limiter it evaluates in Lua.

use super::add::AddCode;
use super::reply::{fields, int, uint};
use super::{Now, invocation, ms, run};
use crate::error::Error;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
pub use requeue::limiter::{Bucket, Exponential, FastSlow, LimiterSpec};

/// ARGV[3..=9] of `add_rate_limited.lua` for `spec` ('' = not configured):
/// the limiter description, serialised for the script that evaluates it.
/// Items' failure counts (`NumRequeues`) live in the queue's `failures`
/// hash and the bucket in its `limiter` hash, so every process shares
/// them. The waits match the in-memory limiters for the same inputs, in
/// whole ms: the bucket's wait is rounded up to the next ms so an item is
/// never due before its token.
fn args(spec: &LimiterSpec) -> [String; 7] {
    let none = String::new;
    let (base, max) = match spec.exponential {
        Some(e) => (ms(e.base_ms).to_string(), ms(e.max_ms).to_string()),
        None => (none(), none()),
    };
    let (fast, slow, max_fast) = match spec.fast_slow {
        Some(f) => (
            ms(f.fast_ms).to_string(),
            ms(f.slow_ms).to_string(),
            f.max_fast.to_string(),
        ),
        None => (none(), none(), none()),
    };
    let (rate, burst) = match spec.bucket {
        // Unlimited never waits and keeps no state: same as no bucket.
        Some(b) if b.qps >= f64::MAX => (none(), none()),
        Some(b) if b.qps.is_nan() || b.qps <= 0.0 => ("0".to_owned(), b.burst.to_string()),
        // f64's Display is plain decimal (no exponent), which Lua reads.
        Some(b) => (b.qps.to_string(), b.burst.to_string()),
        None => (none(), none()),
    };
    [base, max, fast, slow, max_fast, rate, burst]
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
    for arg in args(limiter) {
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
        let controller = args(&LimiterSpec::default_controller());
        assert_eq!(controller, ["5", "1000000", "", "", "", "10", "100"]);
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
            args(&odd),
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
            args(&unlimited),
            ["", "", "", "", "", "", ""].map(String::from)
        );
        let tiny = Bucket {
            qps: 1e-7,
            burst: 1,
        };
        assert_eq!(tiny.qps.to_string(), "0.0000001");
    }
}
