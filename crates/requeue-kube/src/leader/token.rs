//! [`FencingToken`]: what a leader stamps on its writes so that late writes
//! of a former leader can be told apart and rejected.

use std::cmp::Ordering;
use std::fmt;

/// The identity of one leadership term: the Lease's `leaseTransitions` when
/// the term began, and the holder identity that began it.
///
/// Every new term increments `leaseTransitions` (an acquisition by another
/// candidate, and also a re-acquisition by the same identity after it lost
/// the lease or restarted), and the increment is written with optimistic
/// concurrency, so two terms never share a number. A leader that has lost
/// its lease may not know it yet (a paused process, a partition): its
/// writes are then *stale*, and only the receiver can stop them. So:
///
/// * stamp every write the leader makes downstream with the token (an
///   annotation, a column, a header — [`Display`](fmt::Display) gives
///   `"<transitions>/<holder>"`);
/// * at the receiver, keep the newest token seen and reject a write whose
///   token [`is_stale_against`](FencingToken::is_stale_against) it.
///
/// The numbers only grow while the Lease object exists: deleting it starts
/// the count again at 0, so do not delete a Lease that fences writes.
///
/// ```
/// use requeue_kube::leader::FencingToken;
///
/// let old = FencingToken::new(3, "pod-a");
/// let new = FencingToken::new(4, "pod-b");
/// assert!(new.supersedes(&old));
/// assert!(old.is_stale_against(&new), "pod-a's late write is rejected");
/// assert!(!new.is_stale_against(&new));
/// assert_eq!(new.to_string(), "4/pod-b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencingToken {
    transitions: u32,
    holder: String,
}

impl FencingToken {
    /// The token of the term that began at `transitions` with `holder`.
    pub fn new(transitions: u32, holder: impl Into<String>) -> Self {
        FencingToken {
            transitions,
            holder: holder.into(),
        }
    }

    /// The Lease's `leaseTransitions` for this term: the number that orders terms.
    pub fn transitions(&self) -> u32 {
        self.transitions
    }

    /// The holder identity that began this term.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this term began after `other`'s.
    pub fn supersedes(&self, other: &FencingToken) -> bool {
        self.transitions > other.transitions
    }

    /// Whether a write stamped with this token must be rejected by a
    /// receiver whose newest token is `latest`: it comes from an older
    /// term, or claims `latest`'s number under another holder (which only
    /// a writer outside the protocol can produce).
    pub fn is_stale_against(&self, latest: &FencingToken) -> bool {
        match self.transitions.cmp(&latest.transitions) {
            Ordering::Less => true,
            Ordering::Equal => self.holder != latest.holder,
            Ordering::Greater => false,
        }
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.transitions, self.holder)
    }
}
