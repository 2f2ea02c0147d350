//! The Lease object on the API server: reading it, and writing a new
//! record with optimistic concurrency, each call bounded on our clock.

use super::LeaderError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use requeue::clock::{Clock, Sleep};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::{Instant, SystemTime};

/// What a write attempt ended with, when the API server answered.
#[derive(Debug)]
pub(crate) enum Write {
    /// The write was accepted; the Lease as stored (with its new resourceVersion).
    Done(Box<Lease>),
    /// 409: someone else wrote (or created) the Lease first.
    Conflict,
}

/// One Lease, named and placed.
#[derive(Clone)]
pub(crate) struct Store {
    api: Api<Lease>,
    namespace: String,
    name: String,
}

impl Store {
    pub(crate) fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Store {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Lease, or `None` if it does not exist.
    pub(crate) async fn get(
        &self,
        clock: &dyn Clock,
        deadline: Instant,
    ) -> Result<Option<Lease>, LeaderError> {
        within(clock, deadline, self.api.get_opt(&self.name))
            .await?
            .map_err(LeaderError::Api)
    }

    /// Creates the Lease with `spec`; a 409 (it exists) is a [`Write::Conflict`].
    pub(crate) async fn create(
        &self,
        clock: &dyn Clock,
        deadline: Instant,
        spec: LeaseSpec,
    ) -> Result<Write, LeaderError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        let created = within(
            clock,
            deadline,
            self.api.create(&PostParams::default(), &lease),
        )
        .await?;
        settle(created)
    }

    /// Replaces `current` (whose resourceVersion the server checks) with
    /// `spec`; a 409 (it changed since) is a [`Write::Conflict`].
    pub(crate) async fn replace(
        &self,
        clock: &dyn Clock,
        deadline: Instant,
        current: &Lease,
        spec: LeaseSpec,
    ) -> Result<Write, LeaderError> {
        // Without a resourceVersion the server would accept a blind
        // overwrite, and two candidates could both win.
        if current.metadata.resource_version.is_none() {
            return Err(LeaderError::NoResourceVersion);
        }
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(spec),
        };
        let replaced = within(
            clock,
            deadline,
            self.api.replace(&self.name, &PostParams::default(), &lease),
        )
        .await?;
        settle(replaced)
    }
}

fn settle(result: Result<Lease, kube::Error>) -> Result<Write, LeaderError> {
    match result {
        Ok(lease) => Ok(Write::Done(Box::new(lease))),
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
            Ok(Write::Conflict)
        }
        Err(error) => Err(LeaderError::Api(error)),
    }
}

/// Runs `fut` until `deadline` on `clock`; dropping it then (an in-flight
/// request is abandoned, which optimistic concurrency makes harmless: a
/// late write can only renew a term, never start one we don't know of).
pub(crate) async fn within<T>(
    clock: &dyn Clock,
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Result<T, LeaderError> {
    let mut fut = pin!(fut);
    let mut sleep = Sleep::new(clock, deadline);
    poll_fn(|cx| {
        if let Poll::Ready(value) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        if std::pin::Pin::new(&mut sleep).poll(cx).is_ready() {
            return Poll::Ready(Err(LeaderError::TimedOut));
        }
        Poll::Pending
    })
    .await
}

/// The wall time to write as `renewTime`/`acquireTime`: the clock's own
/// (a `FakeClock` moves it), only ever read by people and by other
/// candidates' change detection, never compared with their clocks.
pub(crate) fn micro_time(clock: &dyn Clock) -> MicroTime {
    let wall = clock.wall_now();
    let since = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = i64::try_from(since.as_micros()).unwrap_or(i64::MAX);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::MAX))
}

/// The holder written in `spec`, if any (an empty string means none, as in client-go).
pub(crate) fn holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// `leaseTransitions` as a token number (a negative value, which the API
/// server's validation forbids, reads as 0).
pub(crate) fn transitions(spec: &LeaseSpec) -> u32 {
    spec.lease_transitions
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(0)
}

/// Which of two futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls `a` first, then `b`: when both are ready `a` wins.
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(value));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}
