//! The simulated reconcile: a little work, then success, a transient
//! failure, a flaky key's failure, a request to come back later, or a panic.
//!
//! Every choice comes from a generator seeded by (seed, key, attempt), so a
//! key's n-th reconcile decides the same way in every run, whichever worker
//! thread takes it. (With several worker processes each counts its own
//! attempts, so this holds per process.) The blocking [`Reconciler`] serves
//! the in-memory demo's threads; [`AsyncReconciler`] the same decisions for
//! `Controller::run_async` on any engine.

use super::fleet::Fleet;
use requeue::controller::Action;
use requeue::engine::AsyncQueue;
use requeue::queue::WorkQueue;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Marks the demo's own panics, so the quiet panic hook can tell them from real bugs.
pub const SIMULATED_PANIC: &str = "simulated bug";

/// Share of successful reconciles that ask to be looked at again later.
const REQUEUE_AFTER_SHARE: f64 = 0.02;

/// Why a simulated reconcile failed (the text becomes the Warning event's message).
#[derive(Debug)]
pub enum ReconcileError {
    /// Someone else updated the object first: any key, now and then.
    Conflict { name: String },
    /// A flaky key's dependency is missing until enough retries have passed.
    DependencyNotReady { namespace: String, name: String },
}

impl fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconcileError::Conflict { name } => {
                write!(f, "conflict updating {name}: the object has been modified")
            }
            ReconcileError::DependencyNotReady { namespace, name } => write!(
                f,
                "waiting for ConfigMap {namespace}/{name}-config: not found"
            ),
        }
    }
}

/// The odds and the seed every reconcile draws from.
#[derive(Debug, Clone, Copy)]
pub struct Odds {
    pub fail_rate: f64,
    pub panic_rate: f64,
    pub seed: u64,
}

/// One reconcile under way: its key's position and its seeded draws.
struct Draw {
    i: usize,
    rng: fastrand::Rng,
}

impl Odds {
    /// Counts an attempt of `key` and draws how long its work takes;
    /// `None` for a key that is not in the fleet.
    fn start(&self, fleet: &Fleet, key: &str) -> Option<(Draw, Duration)> {
        let i = fleet.position(key)?;
        let attempt = fleet.attempt(i);
        let mut rng = fastrand::Rng::with_seed(mix(self.seed, i as u64, u64::from(attempt)));
        // Talking to an API server takes a moment: 50–500 µs.
        let work = Duration::from_micros(rng.u64(50..=500));
        Some((Draw { i, rng }, work))
    }

    /// How the reconcile ends, after its work. `retries` reads the key's
    /// `num_requeues`; it is called only for flaky keys.
    fn finish(
        &self,
        fleet: &Fleet,
        key: &str,
        mut draw: Draw,
        retries: impl FnOnce() -> u32,
        requeued_after: &AtomicU64,
    ) -> Result<Action, ReconcileError> {
        let (i, rng) = (draw.i, &mut draw.rng);
        if rng.f64() < self.panic_rate {
            fleet.failed(i);
            panic!("{SIMULATED_PANIC} in reconcile of {key}: index out of bounds");
        }
        let streak = fleet.flaky_streak(i);
        let failure = if streak > 0 && retries() < streak {
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            Some(ReconcileError::DependencyNotReady {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        } else if rng.f64() < self.fail_rate {
            let name = key.split_once('/').map_or(key, |(_, n)| n);
            Some(ReconcileError::Conflict {
                name: name.to_string(),
            })
        } else {
            None
        };
        if let Some(error) = failure {
            fleet.failed(i);
            return Err(error);
        }
        if rng.f64() < REQUEUE_AFTER_SHARE {
            // "The rollout is still progressing; look again in a few seconds."
            requeued_after.fetch_add(1, Ordering::Relaxed);
            return Ok(Action::RequeueAfter(Duration::from_millis(
                rng.u64(1_000..=5_000),
            )));
        }
        Ok(Action::Done)
    }
}

/// The reconciler: the fleet, the queue (to read a key's retry count) and the odds.
#[derive(Debug)]
pub struct Reconciler<'a> {
    pub fleet: &'a Fleet,
    pub queue: &'a WorkQueue<String>,
    pub fail_rate: f64,
    pub panic_rate: f64,
    pub seed: u64,
    /// Reconciles that returned `Action::RequeueAfter`.
    pub requeued_after: AtomicU64,
}

impl Reconciler<'_> {
    /// Reconciles `key` (the controller's handler).
    pub fn reconcile(&self, key: &String) -> Result<Action, ReconcileError> {
        let odds = Odds {
            fail_rate: self.fail_rate,
            panic_rate: self.panic_rate,
            seed: self.seed,
        };
        let Some((draw, work)) = odds.start(self.fleet, key) else {
            return Ok(Action::Done); // not ours: nothing to do
        };
        std::thread::sleep(work);
        let retries = || self.queue.num_requeues(key);
        odds.finish(self.fleet, key, draw, retries, &self.requeued_after)
    }
}

/// The same reconciler for `Controller::run_async`, on any engine: it owns
/// what it uses, since the handler's futures must be `'static`.
#[derive(Debug)]
pub struct AsyncReconciler<Q> {
    pub fleet: Arc<Fleet>,
    pub queue: Q,
    pub odds: Odds,
    /// Reconciles that returned `Action::RequeueAfter`.
    pub requeued_after: AtomicU64,
}

impl<Q: AsyncQueue<String>> AsyncReconciler<Q> {
    /// Reconciles `key`. The work is a timer, not a sleeping thread, so it
    /// takes at least a millisecond (tokio's timer resolution).
    pub async fn reconcile(&self, key: &str) -> Result<Action, ReconcileError> {
        let Some((draw, work)) = self.odds.start(&self.fleet, key) else {
            return Ok(Action::Done); // not ours: nothing to do
        };
        tokio::time::sleep(work).await;
        // Read before `finish` (which cannot await), and only when needed.
        // A failed read counts as "not retried enough yet": the key fails
        // once more and comes back with backoff, as a real controller
        // whose read failed would.
        let retries = if self.fleet.flaky_streak(draw.i) > 0 {
            self.queue.num_requeues(&key.to_string()).await.unwrap_or(0)
        } else {
            0
        };
        self.odds
            .finish(&self.fleet, key, draw, || retries, &self.requeued_after)
    }
}

/// splitmix64 over the three inputs: one well-mixed seed per (seed, key, attempt).
pub fn mix(seed: u64, key: u64, attempt: u64) -> u64 {
    let mut z = seed
        ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ attempt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconciler<'a>(fleet: &'a Fleet, queue: &'a WorkQueue<String>) -> Reconciler<'a> {
        Reconciler {
            fleet,
            queue,
            fail_rate: 0.0,
            panic_rate: 0.0,
            seed: 7,
            requeued_after: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_flaky_key_fails_until_it_has_been_retried_enough() {
        let fleet = Fleet::new(200, 0.5, 3);
        let queue = WorkQueue::new();
        let r = Reconciler {
            fail_rate: 0.5,
            ..reconciler(&fleet, &queue)
        };
        let i = (0..200)
            .find(|&i| fleet.flaky_streak(i) > 0)
            .expect("a flaky key");
        let key = fleet.key(i).to_string();
        let error = r.reconcile(&key).expect_err("fails at first");
        assert!(error.to_string().contains("not found"), "{error}");
        for _ in 0..fleet.flaky_streak(i) {
            queue.add_rate_limited(key.clone()).expect("running");
        }
        // Past its streak, it only fails the transient way (or not at all).
        let after = r.reconcile(&key);
        assert!(!matches!(
            after,
            Err(ReconcileError::DependencyNotReady { .. })
        ));
    }

    #[test]
    fn without_failures_every_reconcile_succeeds() {
        let fleet = Fleet::new(100, 0.0, 3);
        let queue = WorkQueue::new();
        let r = reconciler(&fleet, &queue);
        for i in 0..100 {
            assert!(r.reconcile(&fleet.key(i).to_string()).is_ok());
        }
        assert_eq!(fleet.reconciled(), 100);
    }

    #[test]
    fn mixing_separates_neighbouring_inputs() {
        assert_ne!(mix(1, 2, 3), mix(1, 3, 2));
        assert_ne!(mix(1, 2, 3), mix(2, 2, 3));
    }
}
