//! The state invariants of a queue, checked by a full read (tests only).

use crate::keys::QueueKeys;

/// Checks every rule of the queue's state by reading all of it in one
/// read-only script call (O(N), for tests and repair tools): the rules of
/// [`diagnose`](super::diagnose) (key types, numbers, and how `queue`,
/// `dirty`, `processing`, `owners`, `delayed` and `added_at` agree),
/// returned as one `; `-separated message. A Redis error is reported as a
/// violation too.
pub async fn check_invariants<C>(conn: &mut C, keys: &QueueKeys) -> Result<(), String>
where
    C: redis::aio::ConnectionLike + Send,
{
    let found = super::diagnose(conn, keys)
        .await
        .map_err(|e| format!("reading the state failed: {e}"))?;
    if found.problems.is_empty() {
        Ok(())
    } else {
        let all: Vec<String> = found.problems.iter().map(ToString::to_string).collect();
        Err(all.join("; "))
    }
}
