//! Coalescing: the plain adds, dones and gets of every caller in this
//! process that arrive while a statement is on its way go together in the
//! next `batch` statement (migration 0003). One caller alone pays one
//! round trip per operation; many callers share round trips and, above
//! all, commits: with `fsync` on, a commit is a WAL flush, and one flush
//! for a whole batch is what makes a busy queue fast. Each caller still
//! gets its own answer.
//!
//! Each caller has at most one operation outstanding (it waits for the
//! answer before its next), so no order between callers needs keeping.
//! The statement applies adds, then dones, then reaping, then claims.

use super::shared::{PgToken, Shared};
use requeue::engine::QueueError;
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Operations waiting for the next statement: bounded, so a flood of
/// callers waits for room instead of growing memory.
const QUEUED_OPS: usize = 4096;

/// The most operations in one statement.
const OPS_PER_CALL: usize = 256;

/// Statements in flight at once: while they run, the next batch fills.
const IN_FLIGHT: usize = 2;

/// SQLSTATE lock_not_available: the batch met a row lock held by another
/// transaction for longer than its lock timeout (migration 0003).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A leased item as the database returned it.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) key: String,
    pub(crate) token: PgToken,
    /// When it was added (µs of the statement's clock), for the queue-time metric.
    pub(crate) added_us: Option<i64>,
    /// Its failure count.
    pub(crate) failures: u32,
}

/// An item leased for a getter, on its way to it: if the getter is gone
/// before it takes the item (its future dropped, even after the answer
/// was sent), the item is given back to the head of the queue at once
/// instead of waiting out its lease.
pub(crate) struct Lent {
    item: Option<Claimed>,
    back: Option<Box<dyn FnOnce(Claimed) + Send>>,
}

impl Lent {
    /// The item, now the getter's to register (or `None`).
    pub(crate) fn take(mut self) -> Option<Claimed> {
        self.item.take()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(item), Some(back)) = (self.item.take(), self.back.take()) {
            back(item);
        }
    }
}

/// What a get's share of a batch brought back.
pub(crate) struct Got {
    /// The leased item, if the queue had one for this caller.
    pub(crate) item: Lent,
    /// Local ms (queue clock) just before the statement was sent: the
    /// lease runs at least a lease from then.
    pub(crate) sent_ms: u64,
    /// The statement's time, µs.
    pub(crate) now_us: i64,
    /// When a get could next succeed (µs), if the queue had nothing ready.
    pub(crate) next_us: Option<i64>,
}

/// What a fenced done found: `done`'s code (-3 busy, -2 nobody holds it,
/// -1 another lease, 1 done, 2 requeued).
pub(crate) type DoneCode = i32;

/// One caller's operation and where its answer goes.
enum Op {
    Add(String, oneshot::Sender<Result<i32, QueueError>>),
    Done(Ending, oneshot::Sender<Result<DoneCode, QueueError>>),
    Get(oneshot::Sender<Result<Got, QueueError>>),
    /// A done and, in the same statement, a get for the same worker.
    DoneGet(Ending, oneshot::Sender<Result<(DoneCode, Got), QueueError>>),
}

/// A fenced done's arguments.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub(crate) key: String,
    pub(crate) token: PgToken,
    pub(crate) forget: bool,
}

/// The submitting side, one per queue (clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    ops: mpsc::Sender<Op>,
}

fn stopped() -> QueueError {
    QueueError::backend("the queue's engine has stopped")
}

impl Batcher {
    /// A batcher whose task (to be spawned on the queue's runtime) runs
    /// until `cancel` fires.
    pub(crate) fn new<T: requeue::queue::Key>(
        shared: Arc<Shared<T>>,
        cancel: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUED_OPS);
        (Batcher { ops: tx }, run(shared, rx, cancel))
    }

    async fn submit<R>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<R, QueueError>>) -> Op,
    ) -> Result<R, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(op(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// client-go `Add` of `key` (priority 0): `add`'s code.
    pub(crate) async fn add(&self, key: String) -> Result<i32, QueueError> {
        self.submit(|tx| Op::Add(key, tx)).await
    }

    /// A fenced done.
    pub(crate) async fn done(&self, ending: Ending) -> Result<DoneCode, QueueError> {
        self.submit(|tx| Op::Done(ending, tx)).await
    }

    /// Leases the head of the queue, if there is one.
    pub(crate) async fn get(&self) -> Result<Got, QueueError> {
        self.submit(Op::Get).await
    }

    /// A fenced done, then a get for the same worker, in one statement.
    pub(crate) async fn done_get(&self, ending: Ending) -> Result<(DoneCode, Got), QueueError> {
        self.submit(|tx| Op::DoneGet(ending, tx)).await
    }
}

async fn run<T: requeue::queue::Key>(
    shared: Arc<Shared<T>>,
    mut rx: mpsc::Receiver<Op>,
    cancel: CancellationToken,
) {
    let mut running = JoinSet::new();
    loop {
        // At most IN_FLIGHT statements: meanwhile operations pile up and
        // the next batch grows.
        while running.len() >= IN_FLIGHT {
            running.join_next().await;
        }
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            op = rx.recv() => match op {
                Some(op) => op,
                None => return,
            },
        };
        let mut ops = vec![first];
        while ops.len() < OPS_PER_CALL {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        running.spawn(execute(shared.clone(), ops));
    }
}

/// The arrays of one batch statement, and where each answer goes.
#[derive(Default)]
struct Plan {
    adds: Vec<String>,
    keys: Vec<String>,
    tokens: Vec<i64>,
    nonces: Vec<i64>,
    forget: Vec<bool>,
    claims: i32,
}

impl Plan {
    fn of(ops: &[Op]) -> Plan {
        let mut plan = Plan::default();
        for op in ops {
            match op {
                Op::Add(key, _) => plan.adds.push(key.clone()),
                Op::Done(ending, _) => plan.push_done(ending),
                Op::Get(_) => plan.claims += 1,
                Op::DoneGet(ending, _) => {
                    plan.push_done(ending);
                    plan.claims += 1;
                }
            }
        }
        plan
    }

    fn push_done(&mut self, ending: &Ending) {
        self.keys.push(ending.key.clone());
        self.tokens.push(ending.token.token);
        self.nonces.push(ending.token.nonce);
        self.forget.push(ending.forget);
    }
}

/// What one batch statement answered.
struct Answer {
    adds: Vec<i32>,
    dones: Vec<DoneCode>,
    claimed: Vec<Claimed>,
    reaped: u64,
    now_us: i64,
    next_us: Option<i64>,
    sent_ms: u64,
    /// Every get of the batch found an item.
    claims_filled: bool,
}

async fn execute<T: requeue::queue::Key>(shared: Arc<Shared<T>>, ops: Vec<Op>) {
    let plan = Plan::of(&ops);
    match send(&shared, plan).await {
        Ok(answer) => deliver(&shared, ops, answer).await,
        Err(error) if is_lock_timeout(&error) => {
            // A caller's open transaction holds a row one of these
            // operations needs: nothing changed; run them one by one, so
            // that only the operation that must wait does.
            tracing::debug!(queue = %shared.name, "a batch met a locked row; running its operations one by one");
            for op in ops {
                alone(&shared, op).await;
            }
        }
        Err(error) => {
            let error = failed(&shared, error);
            for op in ops {
                fail(op, same_error(&error));
            }
        }
    }
}

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE))
}

/// Sends one batch statement.
async fn send<T: requeue::queue::Key>(
    shared: &Arc<Shared<T>>,
    plan: Plan,
) -> Result<Answer, sqlx::Error> {
    let reap = if plan.claims > 0 && shared.reap_now() {
        shared.batch_limit
    } else {
        0
    };
    let (base_us, max_us) = shared.reap_backoff;
    // The connection first: the decisions below are about the moment the
    // statement runs, and during an outage a statement waits here.
    let mut conn = shared.pool.acquire().await?;
    // This process's own expired leases are spared while its renewer may
    // be behind (after an outage): it renews them first. Once it renews
    // again, an expired lease of this nonce is one nobody here holds.
    let spare = (!shared.renewed_lately()).then_some(shared.nonce);
    let sent_ms = shared.keeper.local_ms();
    let nonce = shared.nonce;
    let rows = sqlx::query(&shared.sql.batch)
        .bind(shared.queue_id)
        .bind(shared.now())
        .bind(&plan.adds)
        .bind(&plan.keys)
        .bind(&plan.tokens)
        .bind(&plan.nonces)
        .bind(&plan.forget)
        .bind(plan.claims)
        .bind(shared.lease_us())
        .bind(nonce)
        .bind(reap)
        .bind(base_us)
        .bind(max_us)
        .bind(spare)
        .bind(shared.fairness)
        .bind(
            i32::try_from(
                shared
                    .passed_over
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
            .unwrap_or(i32::MAX),
        )
        .bind(shared.batch_limit)
        .fetch_all(&mut *conn)
        .await?;
    shared
        .stats
        .calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut answer = Answer {
        adds: Vec::with_capacity(plan.adds.len()),
        dones: Vec::with_capacity(plan.keys.len()),
        claimed: Vec::new(),
        reaped: 0,
        now_us: 0,
        next_us: None,
        sent_ms,
        claims_filled: false,
    };
    for row in rows {
        let kind: i8 = row.try_get(0)?;
        match kind as u8 {
            b'a' => answer.adds.push(row.try_get(3)?),
            b'd' => answer.dones.push(row.try_get(3)?),
            b'c' => {
                let failures: i32 = row.try_get(5)?;
                answer.claimed.push(Claimed {
                    key: row.try_get(1)?,
                    token: PgToken {
                        token: row.try_get(2)?,
                        nonce,
                    },
                    added_us: row.try_get(4)?,
                    failures: u32::try_from(failures).unwrap_or(0),
                })
            }
            b'm' => {
                let reaped: i32 = row.try_get(3)?;
                answer.reaped = u64::try_from(reaped).unwrap_or(0);
                answer.now_us = row.try_get(4)?;
                answer.next_us = row.try_get(2)?;
                let passed: Option<i32> = row.try_get(5)?;
                if let Some(passed) = passed {
                    shared.passed_over.store(
                        u32::try_from(passed).unwrap_or(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
            other => {
                return Err(sqlx::Error::Protocol(format!(
                    "batch returned a row of unknown kind {other}"
                )));
            }
        }
    }
    answer.claims_filled =
        plan.claims > 0 && answer.claimed.len() == usize::try_from(plan.claims).unwrap_or(0);
    Ok(answer)
}

/// Hands each caller its share of `answer`. Claimed items go to the
/// workers that ended one in this batch first, then to plain gets, in
/// order. An item whose getter has gone (its future was dropped) is
/// given back to the head of the queue at once.
async fn deliver<T: requeue::queue::Key>(shared: &Arc<Shared<T>>, ops: Vec<Op>, answer: Answer) {
    shared
        .stats
        .reaped
        .fetch_add(answer.reaped, std::sync::atomic::Ordering::Relaxed);
    shared.report(|m| {
        for _ in 0..answer.reaped {
            m.lease_expired.inc();
        }
    });
    let got = |item: Option<Claimed>| Got {
        item: Lent {
            back: item.as_ref().map(|_| giver(shared)),
            item,
        },
        sent_ms: answer.sent_ms,
        now_us: answer.now_us,
        next_us: answer.next_us,
    };
    if answer.claims_filled {
        // Every get found an item: more may be ready. Wake one idle getter
        // (if none waits, the next get to register looks once more).
        shared.ready.notify_one();
    }
    let (mut adds, mut dones) = (answer.adds.into_iter(), answer.dones.into_iter());
    let mut claimed = answer.claimed.into_iter();
    let mut busy = Vec::new();
    let mut gets = Vec::new();
    for op in ops {
        match op {
            Op::Add(_, tx) => drop(tx.send(adds.next().ok_or_else(short))),
            Op::Done(ending, tx) => match dones.next() {
                Some(BUSY) => busy.push((ending, tx)),
                code => drop(tx.send(code.ok_or_else(short))),
            },
            Op::DoneGet(ending, tx) => {
                let code = dones.next();
                let item = claimed.next();
                match code {
                    Some(BUSY) => {
                        // End it alone (waiting for the lock), then answer.
                        let code = done_alone(shared, &ending).await;
                        let _ = tx.send(code.map(|code| (code, got(item))));
                    }
                    Some(code) => drop(tx.send(Ok((code, got(item))))),
                    None => {
                        drop(got(item));
                        drop(tx.send(Err(short())));
                    }
                }
            }
            Op::Get(tx) => gets.push(tx),
        }
    }
    for tx in gets {
        let _ = tx.send(Ok(got(claimed.next())));
    }
    for (ending, tx) in busy {
        let _ = tx.send(done_alone(shared, &ending).await);
    }
    // More items than getters cannot happen (the statement claims at most
    // one per get), but none may be left leased to nobody.
    for item in claimed {
        drop(got(Some(item)));
    }
}

/// What gives back an item a getter did not take: a release on the
/// queue's runtime.
fn giver<T: requeue::queue::Key>(shared: &Arc<Shared<T>>) -> Box<dyn FnOnce(Claimed) + Send> {
    let shared = shared.clone();
    Box::new(move |item| {
        let runtime = shared.runtime.clone();
        runtime.spawn(async move { give_back(&shared, item).await });
    })
}

/// `done`'s code for a row locked by another transaction.
const BUSY: DoneCode = -3;

/// The batch answered fewer rows than it was sent operations.
fn short() -> QueueError {
    QueueError::backend("the batch statement answered fewer rows than operations")
}

/// A fenced done on its own statement, waiting for the key's row lock.
async fn done_alone<T: requeue::queue::Key>(
    shared: &Arc<Shared<T>>,
    ending: &Ending,
) -> Result<DoneCode, QueueError> {
    let result = sqlx::query_scalar::<_, i16>(&shared.sql.done)
        .bind(shared.queue_id)
        .bind(&ending.key)
        .bind(ending.token.token)
        .bind(ending.token.nonce)
        .bind(shared.now())
        .bind(ending.forget)
        .bind(shared.batch_limit)
        .fetch_one(&shared.pool)
        .await;
    shared.outcome(result).map(i32::from)
}

/// An operation of a batch that met a locked row, on its own statement.
async fn alone<T: requeue::queue::Key>(shared: &Arc<Shared<T>>, op: Op) {
    let single = |ops: Vec<Op>| {
        let shared = shared.clone();
        async move {
            let plan = Plan::of(&ops);
            match send(&shared, plan).await {
                Ok(answer) => deliver(&shared, ops, answer).await,
                Err(error) => {
                    let error = failed(&shared, error);
                    for op in ops {
                        fail(op, same_error(&error));
                    }
                }
            }
        }
    };
    match op {
        Op::Add(key, tx) => {
            // Waits for the lock: only this add does.
            let result = sqlx::query_scalar::<_, i16>(&shared.sql.add)
                .bind(shared.queue_id)
                .bind(key)
                .bind(shared.now())
                .bind(0_i16)
                .bind(shared.batch_limit)
                .fetch_one(&shared.pool)
                .await;
            let _ = tx.send(shared.outcome(result).map(i32::from));
        }
        Op::Done(ending, tx) => {
            let _ = tx.send(done_alone(shared, &ending).await);
        }
        // A get takes only rows nobody locks (SKIP LOCKED): it cannot
        // have been the one that waited.
        op @ Op::Get(_) => single(vec![op]).await,
        Op::DoneGet(ending, tx) => {
            let code = done_alone(shared, &ending).await;
            match code {
                Ok(code) => {
                    let (get_tx, get_rx) = oneshot::channel();
                    single(vec![Op::Get(get_tx)]).await;
                    let got = get_rx.await.unwrap_or_else(|_| Err(stopped()));
                    let _ = tx.send(got.map(|got| (code, got)));
                }
                Err(error) => drop(tx.send(Err(error))),
            }
        }
    }
}

/// Gives a claimed item nobody took back to the head of the queue (no
/// failure counted); if that fails, its lease runs out and it comes back
/// with backoff, as a crashed worker's would.
async fn give_back<T: requeue::queue::Key>(shared: &Arc<Shared<T>>, item: Claimed) {
    let result = sqlx::query_scalar::<_, i16>(&shared.sql.release)
        .bind(shared.queue_id)
        .bind(&item.key)
        .bind(item.token.token)
        .bind(item.token.nonce)
        .bind(shared.now())
        .fetch_one(&shared.pool)
        .await;
    if let Err(error) = shared.outcome(result) {
        tracing::warn!(queue = %shared.name, %error, "cannot give back an item whose getter left; it comes back when its lease expires");
    }
}

/// A failed statement's error, counted (and a connection failure reported).
fn failed<T: Send + Sync + 'static>(shared: &Shared<T>, error: sqlx::Error) -> QueueError {
    match shared.outcome::<()>(Err(error)) {
        Err(error) => error,
        Ok(()) => stopped(),
    }
}

/// Answers `op` with `error`.
fn fail(op: Op, error: QueueError) {
    match op {
        Op::Add(_, tx) => drop(tx.send(Err(error))),
        Op::Done(_, tx) => drop(tx.send(Err(error))),
        Op::Get(tx) => drop(tx.send(Err(error))),
        Op::DoneGet(_, tx) => drop(tx.send(Err(error))),
    }
}

/// `error` again, for the next caller of a failed batch (as text: the
/// error type is not `Clone`; this crate's errors show their cause in
/// their message).
fn same_error(error: &QueueError) -> QueueError {
    match error {
        QueueError::Backend(inner) => QueueError::backend(inner.to_string()),
        other => QueueError::backend(other.to_string()),
    }
}
