//! The one-holder scenarios: a worker process holds `k`, and is killed
//! (`kill -9`) or paused (SIGSTOP) while the parent waits for the key.

use crate::log::Line;
use crate::parent::Worker;
use crate::run::ms;
use crate::worker::Mode;
use requeue::engine::{AsyncQueue, Then};
use requeue::queue::Item;
use std::future::Future;
use std::time::{Duration, Instant};

/// The lease of the holder scenarios: short and real, since processes
/// cannot share a fake clock.
pub const HOLD_LEASE_MS: u64 = 600;

/// What the holder scenarios need of an engine: a look at its stored
/// leases, and the checks after the key was handed out once more.
pub trait Store {
    /// The engine's queue.
    type Queue: AsyncQueue<String>;

    /// The lease of `key` in the stored queue: (its deadline, in the
    /// store's own units, its holder's token), if it is held.
    fn lease_of(&mut self, key: &str) -> impl Future<Output = Option<(f64, String)>>;

    /// Whether `newer` is the token of a later lease than `older`.
    fn later(newer: &str, older: &str) -> bool;

    /// How many leases `queue` reaped.
    fn leases_reaped(queue: &Self::Queue) -> u64;

    /// After the child's lease of `k` was reaped and the parent ended its
    /// own hand-out of `k`: exactly one hand-out more than the child's,
    /// one reaped lease (the child's), a failure counted for it, and
    /// nothing left.
    fn assert_handed_out_exactly_once_more(
        &mut self,
        parent: &Self::Queue,
    ) -> impl Future<Output = ()>;
}

/// A worker process holding `k` (logged `S`), plus the parent's queue.
pub struct Holder<S: Store> {
    parent: S::Queue,
    child: Worker,
    child_token: String,
    store: S,
    _dir: tempfile::TempDir,
}

impl<S: Store> Holder<S> {
    /// Starts a worker (its files in `dir`) that takes `k` from `queue` at
    /// `url`, where `parent` (a queue on the same, leases of
    /// [`HOLD_LEASE_MS`]) has just added it, and holds it; checks that the
    /// stored lease is the child's.
    pub async fn start(
        parent: S::Queue,
        mut store: S,
        url: &str,
        queue: &str,
        dir: tempfile::TempDir,
    ) -> Self {
        let child = Worker::spawn(
            dir.path(),
            "holder",
            url,
            queue,
            HOLD_LEASE_MS,
            Mode::Hold,
            0,
        );
        let child_token = child
            .wait_line("S k", |l| match l {
                Line::Start { key, token, .. } if key == "k" => Some(token.clone()),
                _ => None,
            })
            .await;
        let (_, owner) = store.lease_of("k").await.expect("k is processing");
        assert_eq!(owner, child_token, "the stored lease is the child's");
        Holder {
            parent,
            child,
            child_token,
            store,
            _dir: dir,
        }
    }

    /// The child is killed with `kill -9` while it holds `k` and renews
    /// its lease, and a getter of the parent waits: the key comes back to
    /// the getter after at most one lease plus `slack`, under a later
    /// token, and is handed out exactly once more.
    pub async fn kill9_hands_item_to_another(mut self, slack: Duration) {
        // Another worker waits for the key while the child holds it.
        let getter = {
            let parent = self.parent.clone();
            tokio::spawn(async move {
                let item = parent.get().await;
                (item, Instant::now())
            })
        };
        // The child is alive and renewing: its stored deadline moves twice
        // (renewals every lease/3), and meanwhile the getter gets nothing.
        let (mut last, _) = self.store.lease_of("k").await.expect("k is processing");
        let mut moves = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while moves < 2 {
            assert!(Instant::now() < deadline, "the holder never renewed");
            tokio::time::sleep(ms(20)).await;
            let (now, owner) = (self.store.lease_of("k").await)
                .expect("k stays processing while its holder renews");
            assert_eq!(owner, self.child_token);
            if now > last {
                moves += 1;
                last = now;
            }
        }
        assert!(!getter.is_finished(), "handed out while its holder renews");

        self.child.signal("KILL");
        let status = self.child.wait_exit(Duration::from_secs(5)).await;
        assert!(!status.success());
        let killed = Instant::now();

        let (item, got_at) = tokio::time::timeout(Duration::from_secs(10), getter)
            .await
            .expect("the killed holder's key never came back")
            .unwrap();
        let item: Item<String> = item.unwrap();
        let waited = got_at
            .checked_duration_since(killed)
            .expect("handed out before its holder was killed");
        assert_eq!(*item, "k");
        let token = item.token().unwrap();
        assert!(
            S::later(&token, &self.child_token),
            "{token} after {}",
            self.child_token
        );
        assert!(
            waited < ms(HOLD_LEASE_MS) + slack,
            "came back after {waited:?}"
        );
        assert_eq!(S::leases_reaped(&self.parent), 1);
        let ended = item.end_async(Then::Done).await.unwrap();
        assert!(ended.released);
        (self.store)
            .assert_handed_out_exactly_once_more(&self.parent)
            .await;
        let child_lines = self.child.lines();
        assert!(
            child_lines.iter().all(|l| !matches!(l, Line::End { .. })),
            "the killed child never ended anything: {child_lines:?}"
        );
        eprintln!(
            "kill -9: the key came back {waited:?} after the kill (lease {HOLD_LEASE_MS} ms)"
        );
    }

    /// The child is paused (SIGSTOP) while it holds `k`: its lease runs
    /// out and the parent gets the key under a later token; resumed, the
    /// child's end reports `LeaseLost` (`is_valid()` said false), leaves
    /// the new lease alone, and its queue counts the loss.
    pub async fn pause_learns_lease_lost(mut self) {
        self.child.signal("STOP");
        self.child.wait_stopped().await;
        let stopped = Instant::now();

        // Its lease runs out; another worker gets the key.
        let item = tokio::time::timeout(Duration::from_secs(10), self.parent.get())
            .await
            .expect("the paused holder's key never came back")
            .unwrap();
        let took = stopped.elapsed();
        assert_eq!(*item, "k");
        let token = item.token().unwrap();
        assert_ne!(token, self.child_token);
        assert!(
            S::later(&token, &self.child_token),
            "{token} after {}",
            self.child_token
        );
        assert_eq!(S::leases_reaped(&self.parent), 1);

        // The child resumes and ends its stale hand-out.
        self.child.signal("CONT");
        self.child.send("end");
        let rc = self
            .child
            .wait_line("E k", |l| match l {
                Line::End { rc, .. } => Some(rc.clone()),
                _ => None,
            })
            .await;
        assert_eq!(
            rc, "lost",
            "the resumed holder's done must report LeaseLost"
        );
        let valid = self.child.lines().iter().find_map(|l| match l {
            Line::Valid { valid, .. } => Some(*valid),
            _ => None,
        });
        assert_eq!(valid, Some(false), "is_valid() after resuming");

        // The new holder's lease is untouched, and its done succeeds.
        let (_, owner) =
            (self.store.lease_of("k").await).expect("k is still processing under the new holder");
        assert_eq!(owner, token, "the stale done left the new lease alone");
        assert!(item.is_valid());
        let ended = item.end_async(Then::Done).await.unwrap();
        assert!(ended.released);
        (self.store)
            .assert_handed_out_exactly_once_more(&self.parent)
            .await;

        self.child.finish().await;
        let counters = self.child.lines().iter().find_map(|l| match l {
            Line::Counters { lost, .. } => Some(*lost),
            _ => None,
        });
        assert_eq!(counters, Some(1), "the child counted its lost lease");
        eprintln!(
            "SIGSTOP: the key was re-leased {took:?} after the pause (lease {HOLD_LEASE_MS} ms)"
        );
    }
}
