//! The renewing task of one term: renew every retry period, lose at the
//! deadline, release on request.

use super::store::{self, Either, Write, first};
use super::{Elector, LeaderError, Loss, Released, Shared, Term};
use k8s_openapi::api::coordination::v1::LeaseSpec;
use requeue::clock::{self, Sleep};
use requeue::wait::Stop;
use std::sync::Arc;
use std::time::Instant;

/// What ended a wait between renewals.
enum Wake {
    Release,
    Lose,
    Renew,
}

/// What one renewal found.
enum Renewal {
    Renewed,
    Superseded(Option<String>),
}

/// Keeps `term` until it is lost or `release` fires.
pub(crate) async fn keep(
    el: Arc<Elector>,
    mut term: Term,
    shared: Arc<Shared>,
    release: Stop,
) -> Result<Released, LeaderError> {
    let clock = &*el.clock;
    loop {
        let lose_at = clock::deadline_after(term.sent_at, el.timing.renew_deadline);
        let next = clock::deadline_after(clock.now(), el.timing.retry_period).min(lose_at);
        match wait(&el, &release, lose_at, next).await {
            Wake::Release => return release_term(&el, &mut term, &shared).await,
            Wake::Lose => {
                shared.lose(&el, &term.token, Loss::RenewDeadlineExceeded);
                return Ok(Released::NotHeld);
            }
            Wake::Renew => {}
        }
        // The request is bounded by the lose deadline: at that instant the
        // loop above ends the term, whatever the request is doing.
        match first(release.stopped(), renew_once(&el, &mut term, lose_at)).await {
            Either::Left(()) => return release_term(&el, &mut term, &shared).await,
            Either::Right(Ok(Renewal::Renewed)) => {
                tracing::debug!(lease = %el.lease_path(), identity = %el.identity,
                    token = %term.token, "renewed the lease");
            }
            Either::Right(Ok(Renewal::Superseded(holder))) => {
                shared.lose(&el, &term.token, Loss::Superseded(holder));
                return Ok(Released::NotHeld);
            }
            Either::Right(Err(error)) => {
                tracing::warn!(lease = %el.lease_path(), identity = %el.identity,
                    token = %term.token, %error, "failed to renew the lease; retrying");
            }
        }
    }
}

/// Waits for a release request, the lose deadline or the next renewal, in
/// that order of precedence.
async fn wait(el: &Elector, release: &Stop, lose_at: Instant, next: Instant) -> Wake {
    let clock = &*el.clock;
    let lose = Sleep::new(clock, lose_at);
    let renew = Sleep::new(clock, next);
    match first(release.stopped(), first(lose, renew)).await {
        Either::Left(()) => Wake::Release,
        Either::Right(Either::Left(())) => Wake::Lose,
        Either::Right(Either::Right(())) => Wake::Renew,
    }
}

/// One renewal (client-go's fast path, then its slow path on a conflict).
async fn renew_once(
    el: &Elector,
    term: &mut Term,
    lose_at: Instant,
) -> Result<Renewal, LeaderError> {
    let clock = &*el.clock;
    let sent_at = clock.now();
    let base = term.lease.spec.clone().unwrap_or_default();
    let spec = el.our_spec(
        &base,
        term.token.transitions(),
        term.acquire_time.clone(),
        store::micro_time(clock),
    )?;
    let current = term.lease.clone();
    let written = match el
        .store
        .replace(clock, lose_at, &current, spec.clone())
        .await?
    {
        Write::Done(lease) => Some(*lease),
        Write::Conflict => match reread(el, term, lose_at).await? {
            Some(holder) => return Ok(Renewal::Superseded(holder)),
            // Still ours (another writer touched the object, or a
            // renewal we gave up on landed late): once more, on the
            // version just read.
            None => match el.store.replace(clock, lose_at, &term.lease, spec).await? {
                Write::Done(lease) => Some(*lease),
                Write::Conflict => None,
            },
        },
    };
    match written {
        Some(lease) => {
            term.lease = lease;
            term.sent_at = sent_at;
            Ok(Renewal::Renewed)
        }
        // A second conflict in a row: let the next attempt read again.
        None => Err(LeaderError::Conflict),
    }
}

/// After a conflict: reads the Lease again. `Ok(None)` if it still records
/// our term (then `term.lease` is the version read), else who holds it.
async fn reread(
    el: &Elector,
    term: &mut Term,
    deadline: Instant,
) -> Result<Option<Option<String>>, LeaderError> {
    match el.store.get(&*el.clock, deadline).await? {
        Some(lease) if el.still_ours(&lease, &term.token) => {
            term.lease = lease;
            Ok(None)
        }
        Some(lease) => Ok(Some(
            lease
                .spec
                .as_ref()
                .and_then(store::holder)
                .map(str::to_owned),
        )),
        None => Ok(Some(None)),
    }
}

/// Ends the term first (so the work stops before anyone else can start),
/// then clears the holder if the Lease still records this term.
async fn release_term(
    el: &Elector,
    term: &mut Term,
    shared: &Shared,
) -> Result<Released, LeaderError> {
    let clock = &*el.clock;
    let lose_at = clock::deadline_after(term.sent_at, el.timing.renew_deadline);
    if clock.now() >= lose_at {
        shared.lose(el, &term.token, Loss::RenewDeadlineExceeded);
        return Ok(Released::NotHeld);
    }
    shared.lose(el, &term.token, Loss::Released);
    let deadline = clock::deadline_after(clock.now(), el.timing.renew_deadline);
    let now = store::micro_time(clock);
    // client-go's release record: no holder, a 1 s lease, transitions kept.
    let spec = LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..term.lease.spec.clone().unwrap_or_default()
    };
    let current = term.lease.clone();
    match el
        .store
        .replace(clock, deadline, &current, spec.clone())
        .await?
    {
        Write::Done(_) => return Ok(Released::Cleared),
        Write::Conflict => {}
    }
    if reread(el, term, deadline).await?.is_some() {
        return Ok(Released::NotHeld);
    }
    match el.store.replace(clock, deadline, &term.lease, spec).await? {
        Write::Done(_) => Ok(Released::Cleared),
        Write::Conflict => Err(LeaderError::Conflict),
    }
}
