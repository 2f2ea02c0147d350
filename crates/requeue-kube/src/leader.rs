//! Leader election on a `coordination.k8s.io/v1` Lease, with a fencing
//! token: client-go's `leaderelection` package, made safe to lose.
//!
//! # Usage
//!
//! Build a [`LeaderElector`] (namespace, Lease name, this candidate's
//! identity; client-go's timings by default), wait until it leads with
//! [`acquire`](LeaderElector::acquire), and run the guarded work until the
//! [`Leadership`]'s [`stop`](Leadership::stop) fires — for instance
//! `controller.run_async(leadership.stop(), handler)`. Stamp every write
//! the work makes with [`Leadership::token`] (see [`FencingToken`]), and
//! when the work has finished, [`release`](Leadership::release) the Lease so
//! another candidate takes over at once (or drop the `Leadership` and let
//! the Lease expire). [`LeaderElector::run`] does all of this in one call,
//! as client-go's `Run` (with `ReleaseOnCancel` as
//! [`release_on_cancel`](LeaderElectorBuilder::release_on_cancel)).
//!
//! The elector renews from a tokio task, so it needs a tokio runtime (as
//! kube's client does).
//!
//! ```
//! # use http::{Request, Response};
//! # use kube::client::Body;
//! use requeue::wait::Stop;
//! use requeue_kube::leader::{LeaderElector, Released};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
//! # let client = kube::Client::new(service, "default");
//! # let server = tokio::spawn(async move {
//! #     // A fake API server: no Lease yet, then accept what is written.
//! #     let (_, send) = api.next_request().await.unwrap();
//! #     send.send_response(Response::builder().status(404)
//! #         .body(Body::from(br#"{"code":404,"reason":"NotFound"}"#.to_vec())).unwrap());
//! #     for rv in ["1", "2"] {
//! #         let (request, send) = api.next_request().await.unwrap();
//! #         let body = request.into_body().collect_bytes().await.unwrap();
//! #         let mut lease: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! #         lease["metadata"]["resourceVersion"] = rv.into();
//! #         send.send_response(Response::builder().status(200)
//! #             .body(Body::from(serde_json::to_vec(&lease).unwrap())).unwrap());
//! #     }
//! # });
//! let elector = LeaderElector::builder(client, "default", "my-controller", "pod-a").build()?;
//! let shutdown = Stop::new();
//! let leadership = elector.acquire(&shutdown).await?;
//! println!("leading with token {}", leadership.token());
//! assert_eq!(leadership.token().transitions(), 0, "a new Lease starts at 0");
//! // controller.run_async(leadership.stop(), handler).await; — runs only while leading.
//! assert_eq!(leadership.release().await?, Released::Cleared);
//! # server.await.unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! # How it decides
//!
//! * **Time is ours.** A candidate never compares the Lease's `renewTime`
//!   with its own clock (clocks of two machines disagree). Like client-go,
//!   it notes on *its* [`Clock`] when it first saw the Lease's current
//!   contents, and takes the Lease only once `leaseDurationSeconds` have
//!   passed since without a change (or at once when no one holds it). A
//!   holder that renews changes `renewTime`, which restarts that wait.
//! * **Writes are conditional.** Every acquisition and renewal is a
//!   replace carrying the `resourceVersion` last read (or a create when
//!   there is no Lease); a 409 means another candidate wrote first, so two
//!   candidates can never both win the same version.
//! * **A new term, a new token.** Acquiring increments `leaseTransitions`,
//!   even when the identity was the previous holder (a restarted process
//!   does not inherit its former term: it waits for the Lease to expire
//!   or be released). The number and the identity form the
//!   [`FencingToken`].
//! * **Losing is decided locally, early.** Each successful renewal moves
//!   the *lose deadline* to the instant its request was *sent* plus the
//!   renew deadline. Others measure the lease duration from when they saw
//!   that write, which is later than it was sent, and the renew deadline
//!   is shorter than the lease duration (checked by
//!   [`build`](LeaderElectorBuilder::build)): so the leader's
//!   [`stop`](Leadership::stop) fires before anyone else may take over —
//!   by a timer, whatever an in-flight request is doing. A renewal that
//!   finds another holder ends the term at once.
//!
//! A stop that fires while an acquiring write is in flight abandons it; if
//! the write landed, that Lease is never renewed and expires for others
//! after the lease duration, as after a crash.
//!
//! Clock *rates* are trusted, as in client-go: a margin of lease duration
//! minus renew deadline (5 s by default) absorbs drift and pauses between
//! the timer firing and the work noticing. A paused process can still make
//! a late write after its term ended — that is what the fencing token is
//! for.
//!
//! # Tracing
//!
//! Each transition is logged with the fields `lease` (`namespace/name`)
//! and `identity`: acquiring (`info`, with `token`), renewing (`debug`),
//! the Lease held by another (`debug`, with `holder`), a failed attempt
//! (`warn`), losing (`warn`, with `reason`) and releasing (`info`).

mod config;
mod renew;
mod store;
mod token;

pub use config::{
    ConfigError, DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, MAX_NAME_LEN,
};
pub use token::FencingToken;

use config::Timing;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use requeue::clock::{self, Clock, SharedClock, Sleep};
use requeue::wait::Stop;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use store::{Either, Store, Write, first};

/// Why an elector call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// The stop signal fired before the elector led.
    #[error("stopped before acquiring the lease")]
    Stopped,
    /// The API server answered with an error (other than a 409, which is
    /// not an error here but another candidate winning).
    #[error("lease request failed: {0}")]
    Api(#[source] kube::Error),
    /// The API server did not answer in time (measured on the elector's clock).
    #[error("lease request timed out")]
    TimedOut,
    /// The Lease came back without a `resourceVersion`, so it cannot be
    /// written conditionally.
    #[error("the lease has no resourceVersion; refusing an unconditional write")]
    NoResourceVersion,
    /// `leaseTransitions` is at `i32::MAX` and cannot count another term.
    #[error("leaseTransitions cannot be incremented further")]
    TransitionsExhausted,
    /// A conflicting write happened twice in a row while releasing.
    #[error("the lease kept changing while being released")]
    Conflict,
    /// The task renewing the lease panicked or was cancelled.
    #[error("the lease renewal task failed: {0}")]
    Renewer(String),
}

/// Why a [`Leadership`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// No renewal succeeded within the renew deadline: the term ended
    /// before the Lease could expire for others.
    RenewDeadlineExceeded,
    /// The Lease was found held by another candidate (`None`: deleted or
    /// emptied by someone else).
    Superseded(Option<String>),
    /// [`Leadership::release`] ended it.
    Released,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::RenewDeadlineExceeded => f.write_str("renew deadline exceeded"),
            Loss::Superseded(Some(holder)) => write!(f, "superseded by {holder}"),
            Loss::Superseded(None) => f.write_str("lease deleted or emptied by another writer"),
            Loss::Released => f.write_str("released"),
        }
    }
}

/// How a [`LeaderElector::run`] term ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ended {
    /// The term's fencing token.
    pub token: FencingToken,
    /// Why the term ended before the work returned, if it did (`None`:
    /// the work returned while still leading, e.g. on shutdown).
    pub loss: Option<Loss>,
    /// What releasing did (`None`: not asked to release).
    pub released: Option<Released>,
}

/// What [`Leadership::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The Lease's holder was cleared: another candidate can take it at once.
    Cleared,
    /// The term had already ended; the Lease was left alone.
    NotHeld,
}

/// Builds a [`LeaderElector`]; see [`LeaderElector::builder`].
#[must_use = "call build() to get an elector"]
pub struct LeaderElectorBuilder {
    client: kube::Client,
    namespace: String,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    release_on_cancel: bool,
    clock: SharedClock,
}

impl fmt::Debug for LeaderElectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElectorBuilder")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .field("renew_deadline", &self.renew_deadline)
            .field("retry_period", &self.retry_period)
            .field("release_on_cancel", &self.release_on_cancel)
            .finish_non_exhaustive()
    }
}

impl LeaderElectorBuilder {
    /// How long others wait after they last saw the Lease change before
    /// taking it (default [`DEFAULT_LEASE_DURATION`]); whole seconds.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// How long the leader keeps leading without a successful renewal
    /// (default [`DEFAULT_RENEW_DEADLINE`]); below the lease duration.
    pub fn renew_deadline(mut self, duration: Duration) -> Self {
        self.renew_deadline = duration;
        self
    }

    /// The pause between attempts to acquire or renew (default
    /// [`DEFAULT_RETRY_PERIOD`]); below the renew deadline.
    pub fn retry_period(mut self, duration: Duration) -> Self {
        self.retry_period = duration;
        self
    }

    /// Whether [`run`](LeaderElector::run) releases the Lease when its
    /// work returns (client-go's `ReleaseOnCancel`; default `false`: the
    /// Lease then expires for others after the lease duration).
    pub fn release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }

    /// Measures every duration (waits, deadlines, request timeouts) on
    /// `clock` instead of the real clock, and takes written timestamps from
    /// its wall time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings (see [`ConfigError`]).
    pub fn build(self) -> Result<LeaderElector, ConfigError> {
        config::check_name("namespace", &self.namespace)?;
        config::check_name("lease name", &self.name)?;
        config::check_name("identity", &self.identity)?;
        let timing = Timing::validate(self.lease_duration, self.renew_deadline, self.retry_period)?;
        Ok(LeaderElector {
            inner: Arc::new(Elector {
                store: Store::new(self.client, &self.namespace, &self.name),
                identity: self.identity,
                timing,
                release_on_cancel: self.release_on_cancel,
                clock: self.clock,
            }),
        })
    }
}

/// A candidate for leadership of one Lease (client-go's `LeaderElector`).
///
/// Cheap to clone; every clone is the same candidate. See the
/// [module documentation](self) for the rules it follows.
#[derive(Clone)]
pub struct LeaderElector {
    inner: Arc<Elector>,
}

impl fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.inner.lease_path())
            .field("identity", &self.inner.identity)
            .field("timing", &self.inner.timing)
            .finish()
    }
}

/// What every part of the elector shares.
pub(crate) struct Elector {
    store: Store,
    identity: String,
    timing: Timing,
    release_on_cancel: bool,
    clock: SharedClock,
}

/// One term held: the Lease as we last wrote it and when that write was sent.
pub(crate) struct Term {
    lease: Lease,
    token: FencingToken,
    acquire_time: MicroTime,
    /// When the last successful write was *sent*: the lose deadline is
    /// this plus the renew deadline.
    sent_at: Instant,
}

impl Elector {
    fn lease_path(&self) -> String {
        format!("{}/{}", self.store.namespace(), self.store.name())
    }

    /// Our record over `base` (whose other fields, such as `strategy`, are kept).
    fn our_spec(
        &self,
        base: &LeaseSpec,
        transitions: u32,
        acquire_time: MicroTime,
        renew_time: MicroTime,
    ) -> Result<LeaseSpec, LeaderError> {
        let transitions =
            i32::try_from(transitions).map_err(|_| LeaderError::TransitionsExhausted)?;
        Ok(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration_seconds()),
            acquire_time: Some(acquire_time),
            renew_time: Some(renew_time),
            lease_transitions: Some(transitions),
            ..base.clone()
        })
    }

    /// Whether `lease` still records the term of `token`.
    fn still_ours(&self, lease: &Lease, token: &FencingToken) -> bool {
        lease.spec.as_ref().is_some_and(|spec| {
            store::holder(spec) == Some(self.identity.as_str())
                && store::transitions(spec) == token.transitions()
        })
    }

    /// One attempt to acquire (client-go's `tryAcquireOrRenew` for a
    /// candidate that does not lead). `Ok(None)`: someone else holds it.
    async fn try_acquire(
        &self,
        observed: &mut Option<(LeaseSpec, Instant)>,
    ) -> Result<Option<Term>, LeaderError> {
        let clock = &*self.clock;
        let sent_at = clock.now();
        let deadline = clock::deadline_after(sent_at, self.timing.renew_deadline);
        let now = store::micro_time(clock);
        let Some(current) = self.store.get(clock, deadline).await? else {
            let spec = self.our_spec(&LeaseSpec::default(), 0, now.clone(), now.clone())?;
            return match self.store.create(clock, deadline, spec).await? {
                Write::Done(lease) => Ok(Some(self.term(*lease, 0, now, sent_at))),
                Write::Conflict => {
                    tracing::debug!(lease = %self.lease_path(), identity = %self.identity,
                        "another candidate created the lease first");
                    Ok(None)
                }
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        // Note when the contents changed, on our clock: that, not the
        // remote renewTime, starts the wait for expiry.
        let seen_at = match observed {
            Some((seen, at)) if *seen == spec => *at,
            _ => {
                let at = clock.now();
                *observed = Some((spec.clone(), at));
                at
            }
        };
        if let Some(holder) = store::holder(&spec) {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(self.timing.lease_duration, Duration::from_secs);
            if clock.now() < clock::deadline_after(seen_at, duration) {
                tracing::debug!(lease = %self.lease_path(), identity = %self.identity, holder,
                    "lease held by another candidate");
                return Ok(None);
            }
        }
        let transitions = store::transitions(&spec)
            .checked_add(1)
            .ok_or(LeaderError::TransitionsExhausted)?;
        let ours = self.our_spec(&spec, transitions, now.clone(), now.clone())?;
        match self.store.replace(clock, deadline, &current, ours).await? {
            Write::Done(lease) => Ok(Some(self.term(*lease, transitions, now, sent_at))),
            Write::Conflict => {
                tracing::debug!(lease = %self.lease_path(), identity = %self.identity,
                    "another candidate wrote the lease first");
                Ok(None)
            }
        }
    }

    fn term(
        &self,
        lease: Lease,
        transitions: u32,
        acquire_time: MicroTime,
        sent_at: Instant,
    ) -> Term {
        Term {
            lease,
            token: FencingToken::new(transitions, self.identity.clone()),
            acquire_time,
            sent_at,
        }
    }
}

impl LeaderElector {
    /// A candidate named `identity` (unique among candidates, e.g. the pod
    /// name) for the Lease `namespace/name`, with client-go's timings and
    /// the real clock.
    pub fn builder(
        client: kube::Client,
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> LeaderElectorBuilder {
        LeaderElectorBuilder {
            client,
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            release_on_cancel: false,
            clock: clock::real(),
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// Waits until this candidate leads, trying every retry period (each
    /// attempt bounded by the renew deadline; failed attempts are logged
    /// and retried), or until `stop` fires ([`LeaderError::Stopped`]).
    ///
    /// Leading, it renews the Lease from a tokio task until the returned
    /// [`Leadership`] is released, dropped or lost. Its
    /// [`stop`](Leadership::stop) is a child of `stop`.
    pub async fn acquire(&self, stop: &Stop) -> Result<Leadership, LeaderError> {
        let el = &*self.inner;
        let mut observed = None;
        loop {
            if stop.is_stopped() {
                return Err(LeaderError::Stopped);
            }
            match first(stop.stopped(), el.try_acquire(&mut observed)).await {
                Either::Left(()) => return Err(LeaderError::Stopped),
                Either::Right(Ok(Some(term))) => return Ok(self.lead(term, stop)),
                Either::Right(Ok(None)) => {}
                Either::Right(Err(error)) => {
                    tracing::warn!(lease = %el.lease_path(), identity = %el.identity, %error,
                        "failed to acquire the lease; retrying");
                }
            }
            let next = clock::deadline_after(el.clock.now(), el.timing.retry_period);
            if let Either::Left(()) = first(stop.stopped(), Sleep::new(&*el.clock, next)).await {
                return Err(LeaderError::Stopped);
            }
        }
    }

    /// client-go's `Run`: waits until leading (or `stop` fires:
    /// [`LeaderError::Stopped`]), then runs `work` with the term's stop
    /// signal and token (`OnStartedLeading`) and awaits it. The term lasts
    /// as long as `work`: when it returns (it should return soon after its
    /// stop fires), the Lease is released if
    /// [`release_on_cancel`](LeaderElectorBuilder::release_on_cancel) is
    /// set, else left to expire. The returned [`Ended`] says how the term
    /// ended (`OnStoppedLeading`).
    ///
    /// Releasing only after `work` has returned is what makes
    /// `ReleaseOnCancel` safe: the next leader cannot start while this
    /// one's work still runs.
    pub async fn run<F, Fut>(&self, stop: &Stop, work: F) -> Result<Ended, LeaderError>
    where
        F: FnOnce(Stop, FencingToken) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let leadership = self.acquire(stop).await?;
        let token = leadership.token().clone();
        work(leadership.stop().clone(), token.clone()).await;
        let loss = leadership.loss();
        let released = if self.inner.release_on_cancel {
            Some(leadership.release().await?)
        } else {
            drop(leadership);
            None
        };
        Ok(Ended {
            token,
            loss,
            released,
        })
    }

    fn lead(&self, term: Term, stop: &Stop) -> Leadership {
        let el = &self.inner;
        tracing::info!(lease = %el.lease_path(), identity = %el.identity, token = %term.token,
            "acquired the lease; leading");
        let shared = Arc::new(Shared {
            leading: stop.child(),
            loss: Mutex::new(None),
        });
        let release = Stop::new();
        let token = term.token.clone();
        let task = tokio::spawn(renew::keep(
            self.inner.clone(),
            term,
            shared.clone(),
            release.clone(),
        ));
        Leadership {
            token,
            shared,
            release,
            task: Some(task),
        }
    }
}

/// What the renewing task and the [`Leadership`] share.
pub(crate) struct Shared {
    /// Fires when the term ends (and with the stop given to `acquire`).
    leading: Stop,
    loss: Mutex<Option<Loss>>,
}

impl Shared {
    /// Ends the term for `reason` (the first reason sticks).
    pub(crate) fn lose(&self, el: &Elector, token: &FencingToken, reason: Loss) {
        {
            let mut loss = self.loss.lock().unwrap_or_else(PoisonError::into_inner);
            if loss.is_some() {
                return;
            }
            *loss = Some(reason.clone());
        }
        self.leading.stop();
        if reason == Loss::Released {
            tracing::info!(lease = %el.lease_path(), identity = %el.identity, %token,
                "releasing the lease; no longer leading");
        } else {
            tracing::warn!(lease = %el.lease_path(), identity = %el.identity, %token,
                %reason, "lost the lease; no longer leading");
        }
    }

    fn loss(&self) -> Option<Loss> {
        self.loss
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One term of leadership, kept by renewing the Lease in a tokio task.
///
/// Run the guarded work until [`stop`](Leadership::stop) fires, and stamp
/// its writes with [`token`](Leadership::token). Keep this value until the
/// work has finished: dropping it stops the renewals (the Lease then
/// expires for others after the lease duration); [`release`](Leadership::release)
/// hands the Lease over at once.
#[must_use = "dropping a Leadership stops renewing the lease"]
pub struct Leadership {
    token: FencingToken,
    shared: Arc<Shared>,
    release: Stop,
    task: Option<tokio::task::JoinHandle<Result<Released, LeaderError>>>,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("token", &self.token)
            .field("loss", &self.shared.loss())
            .finish()
    }
}

impl Leadership {
    /// The fencing token of this term: stamp downstream writes with it.
    pub fn token(&self) -> &FencingToken {
        &self.token
    }

    /// A signal that fires when the term ends (renewal failed past the
    /// renew deadline, another holder found, released, or this value
    /// dropped) or when the stop given to [`LeaderElector::acquire`]
    /// fires. Run the guarded work until it fires.
    pub fn stop(&self) -> &Stop {
        &self.shared.leading
    }

    /// Whether the term is still held (the Lease is still being renewed).
    /// Unlike [`stop`](Leadership::stop), it stays true after a shutdown
    /// signal, until the term is released or lost.
    pub fn is_leading(&self) -> bool {
        self.shared.loss().is_none()
    }

    /// Why the term ended, once it has.
    pub fn loss(&self) -> Option<Loss> {
        self.shared.loss()
    }

    /// Ends the term and, if it was still held, clears the Lease's holder
    /// (keeping `leaseTransitions`, so the next holder's token is higher)
    /// so another candidate can take over at once: client-go's
    /// `ReleaseOnCancel`. Call it only once the guarded work has finished —
    /// the next leader may start as soon as it returns.
    pub async fn release(mut self) -> Result<Released, LeaderError> {
        self.release.stop();
        let Some(task) = self.task.take() else {
            return Ok(Released::NotHeld);
        };
        match task.await {
            Ok(result) => result,
            Err(error) => Err(LeaderError::Renewer(error.to_string())),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.shared.leading.stop();
    }
}
