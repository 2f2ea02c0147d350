//! Coalescing: the adds, dones and gets of every caller in this process
//! that arrive while a call is on its way go together in the next
//! [`ops::batch`] call. One caller alone pays one round trip per operation
//! as before; many callers share round trips and the scripts' fixed work
//! (clock, checks, promotion, reaping, wake-up), which is what makes a
//! busy queue fast. Each caller still gets its own answer.
//!
//! Each caller has at most one operation outstanding (it waits for the
//! answer before its next), so no order between callers needs keeping;
//! within a call the script applies the operations in the order they
//! were submitted.

use super::ahead::Fetched;
use super::shared::Shared;
use crate::ops::{self, AddCode, BatchOp, BatchResult, DoneCode, Leased, MAX_BATCH_ITEMS, Token};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use requeue::engine::QueueError;
use requeue::queue::Key;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Operations waiting for the next call: bounded, so a flood of callers
/// waits for room instead of growing memory (each caller has one
/// operation outstanding, so the callers alive bound it anyway).
const QUEUED_OPS: usize = 4096;

/// The most operations in one call; each names or leases one item, so
/// this also keeps a call under [`MAX_BATCH_ITEMS`].
const OPS_PER_CALL: usize = 256;
const _: () = assert!(OPS_PER_CALL <= MAX_BATCH_ITEMS);

/// What a get's share of a batch brought back.
#[derive(Debug)]
pub(crate) struct Got {
    /// The leased item, or `None` when the queue had none for this caller.
    pub(crate) item: Option<Leased>,
    /// Local ms (queue clock) just before the call was sent: the lease
    /// runs at least a lease from then.
    pub(crate) sent_ms: u64,
    /// The script's time, ms.
    pub(crate) now_ms: u64,
    /// When a get could next succeed, if the queue was empty.
    pub(crate) next_wake_ms: Option<u64>,
}

/// One caller's operation and where its answer goes.
enum Request {
    Add(Vec<u8>, oneshot::Sender<Result<AddCode, QueueError>>),
    Done(
        Vec<u8>,
        Token,
        bool,
        oneshot::Sender<Result<DoneCode, QueueError>>,
    ),
    Get(oneshot::Sender<Result<Got, QueueError>>),
    /// A done and, after it in the same call, a get for the same worker.
    DoneGet(
        Vec<u8>,
        Token,
        bool,
        oneshot::Sender<Result<(DoneCode, Got), QueueError>>,
    ),
}

/// The submitting side, one per queue (clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    requests: mpsc::Sender<Request>,
}

/// The pipeline has stopped: the queue's engine is gone.
fn stopped() -> QueueError {
    QueueError::backend("the queue's engine has stopped")
}

impl Pipeline {
    /// A pipeline whose task (to be spawned on the queue's runtime) runs
    /// until `cancel` fires.
    pub(crate) fn new<T: Key>(
        shared: Arc<Shared<T>>,
        cancel: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUED_OPS);
        (Pipeline { requests: tx }, run(shared, rx, cancel))
    }

    async fn submit<R>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<R, QueueError>>) -> Request,
    ) -> Result<R, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(request(tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// client-go `Add` of `raw`.
    pub(crate) async fn add(&self, raw: Vec<u8>) -> Result<AddCode, QueueError> {
        self.submit(|tx| Request::Add(raw, tx)).await
    }

    /// Fenced `Done` of `raw` under `token`, clearing its failure count if
    /// `forget`.
    pub(crate) async fn done(
        &self,
        raw: Vec<u8>,
        token: Token,
        forget: bool,
    ) -> Result<DoneCode, QueueError> {
        self.submit(|tx| Request::Done(raw, token, forget, tx))
            .await
    }

    /// Leases the head of the queue, if there is one.
    pub(crate) async fn get(&self) -> Result<Got, QueueError> {
        self.submit(Request::Get).await
    }

    /// A fenced `Done` of `raw` (as [`done`](Pipeline::done)), then, in the
    /// same call, a lease of the head of the queue for the same worker.
    pub(crate) async fn done_get(
        &self,
        raw: Vec<u8>,
        token: Token,
        forget: bool,
    ) -> Result<(DoneCode, Got), QueueError> {
        self.submit(|tx| Request::DoneGet(raw, token, forget, tx))
            .await
    }
}

/// Calls on their way at once. More than one overlaps a call's answer
/// handling (waking its callers) with the next call's trip; fewer makes
/// each call carry more operations, whose fixed work (clock, checks,
/// wake-up) Redis then pays less often. Measured on W3 with 8 and 32
/// workers once workers end an item and take the next in one operation:
/// 2 beat 1, 3, 4 and 8 (1 by 1.6x, 4 by about 5 % at 8 workers and
/// 10 % at 32, with a third fewer calls per item). Calls in flight may
/// run in either order, which is safe because every caller has at most
/// one operation outstanding: concurrent callers have no order to keep.
const IN_FLIGHT: usize = 2;

/// The task: takes whatever is waiting (at least one operation), sends it
/// as one call (at most [`IN_FLIGHT`] at once), hands out the answers,
/// and again.
async fn run<T: Key>(
    shared: Arc<Shared<T>>,
    mut requests: mpsc::Receiver<Request>,
    cancel: CancellationToken,
) {
    // The calls on their way run inside this task (no task per call, so
    // no extra hop between tasks on the way in or out).
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            next = requests.recv(), if in_flight.len() < IN_FLIGHT => {
                let Some(first) = next else { return };
                // Let the callers that were woken by the last answer
                // submit their next operation before this call is closed:
                // they are usually ready within one scheduling round, and
                // waiting one round makes a busy queue's batches many
                // times larger (a lone caller loses no more than that).
                tokio::task::yield_now().await;
                let mut waiting = Vec::with_capacity(OPS_PER_CALL);
                waiting.push(first);
                while waiting.len() < OPS_PER_CALL {
                    match requests.try_recv() {
                        Ok(request) => waiting.push(request),
                        Err(_) => break,
                    }
                }
                let shared = shared.clone();
                in_flight.push(async move { send(&shared, waiting).await });
            }
        }
    }
}

/// The operations of `requests`, and where each request's answer is:
/// (operation, place among a merged get's items). A done-get's place is
/// its done's operation and its place among the merged get's items (the
/// last operation).
///
/// The requests are concurrent (each caller has one outstanding), so any
/// order is one they could have had. This one is the cheapest: the dones
/// first (freeing parked items), then the adds, then every get as one
/// (the script leases them all with one pop), so that each kind forms one
/// run the script handles with a fixed number of commands.
///
/// Each done also asks for one item ahead (at most `ahead` in all): its
/// worker is about to ask for its next item.
fn operations(requests: &[Request], ahead: usize) -> (Vec<BatchOp>, Vec<(usize, usize)>) {
    let mut ops: Vec<BatchOp> = Vec::with_capacity(requests.len());
    let mut places = vec![(0, 0); requests.len()];
    for (n, request) in requests.iter().enumerate() {
        if let Request::Done(raw, token, forget, _) | Request::DoneGet(raw, token, forget, _) =
            request
        {
            places[n] = (ops.len(), 0);
            ops.push(BatchOp::Done {
                item: raw.clone(),
                token: *token,
                forget: *forget,
            });
        }
    }
    for (n, request) in requests.iter().enumerate() {
        if let Request::Add(raw, _) = request {
            places[n] = (ops.len(), 0);
            ops.push(BatchOp::Add(raw.clone()));
        }
    }
    let dones = ops.len() - adds(&ops);
    let mut gets = 0;
    for (n, request) in requests.iter().enumerate() {
        match request {
            Request::Get(_) => {
                places[n] = (ops.len(), gets as usize);
                gets += 1;
            }
            Request::DoneGet(..) => {
                places[n].1 = gets as usize;
                gets += 1;
            }
            _ => {}
        }
    }
    // Within the script's bound, whatever `prefetch` allows.
    let named = ops.len() + gets as usize;
    let ahead = dones.min(ahead).min(MAX_BATCH_ITEMS.saturating_sub(named));
    let ahead = u32::try_from(ahead).unwrap_or(0);
    if gets + ahead > 0 {
        ops.push(BatchOp::Get(gets + ahead));
    }
    (ops, places)
}

fn adds(ops: &[BatchOp]) -> usize {
    ops.iter()
        .filter(|op| matches!(op, BatchOp::Add(_)))
        .count()
}

/// A batch's results, each taken once by the request it answers.
enum Answer {
    Add(AddCode),
    Done(DoneCode),
    Get(Vec<Option<Leased>>),
    Taken,
}

/// One call for `requests`, and every caller's answer.
async fn send<T: Key>(shared: &Arc<Shared<T>>, requests: Vec<Request>) {
    if requests.is_empty() {
        return;
    }
    let room = if shared.is_shutting_down() {
        0
    } else {
        shared.ahead.room()
    };
    let (ops, places) = operations(&requests, room);
    let asked = requests
        .iter()
        .filter(|r| matches!(r, Request::Get(_) | Request::DoneGet(..)))
        .count();
    let want_depth = shared.metrics.is_some();
    let sent_ms = shared.local_ms();
    let reply = shared
        .call_here(move |mut conn, shared| async move {
            ops::batch(
                &mut conn,
                &shared.keys,
                &shared.get_args,
                &ops,
                want_depth,
                shared.now(),
            )
            .await
        })
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            for request in requests {
                fail(request, same_error(&error));
            }
            return;
        }
    };
    shared.observe_batch(&reply);
    let (now_ms, next_wake_ms) = (reply.now_ms, reply.next_wake_ms);
    let mut answers: Vec<Answer> = reply
        .results
        .into_iter()
        .map(|result| match result {
            BatchResult::Add(code) => Answer::Add(code),
            BatchResult::Done(code) => Answer::Done(code),
            BatchResult::Get(items) => Answer::Get(items.into_iter().map(Some).collect()),
        })
        .collect();
    // The items leased beyond what getters asked for: fetched ahead.
    if let Some(Answer::Get(items)) = answers.last_mut() {
        let extra: Vec<Leased> = items
            .iter_mut()
            .skip(asked)
            .filter_map(Option::take)
            .collect();
        keep_ahead(shared, extra, sent_ms);
    }
    give_back_stale(shared);
    for (request, (op, slot)) in requests.into_iter().zip(places) {
        let answer = answers.get_mut(op);
        match request {
            Request::Add(_, tx) => {
                let code = match answer.map(|a| std::mem::replace(a, Answer::Taken)) {
                    Some(Answer::Add(code)) => Ok(code),
                    _ => Err(mismatch()),
                };
                let _ = tx.send(code);
            }
            Request::Done(_, _, _, tx) => {
                let code = match answer.map(|a| std::mem::replace(a, Answer::Taken)) {
                    Some(Answer::Done(code)) => Ok(code),
                    _ => Err(mismatch()),
                };
                let _ = tx.send(code);
            }
            Request::Get(tx) => {
                let Some(Answer::Get(items)) = answer else {
                    let _ = tx.send(Err(mismatch()));
                    continue;
                };
                // A short get leaves its last getters without an item.
                let item = items.get_mut(slot).and_then(Option::take);
                let got = Got {
                    item,
                    sent_ms,
                    now_ms,
                    next_wake_ms,
                };
                if let Err(Ok(Got {
                    item: Some(orphan), ..
                })) = tx.send(Ok(got))
                {
                    // Its getter gave up meanwhile: give the item back at
                    // once rather than let its lease run out (which would
                    // count a failure).
                    give_back(shared, orphan);
                }
            }
            Request::DoneGet(_, _, _, tx) => {
                let code = match answer.map(|a| std::mem::replace(a, Answer::Taken)) {
                    Some(Answer::Done(code)) => code,
                    _ => {
                        let _ = tx.send(Err(mismatch()));
                        continue;
                    }
                };
                let Some(Answer::Get(items)) = answers.last_mut() else {
                    let _ = tx.send(Err(mismatch()));
                    continue;
                };
                let got = Got {
                    item: items.get_mut(slot).and_then(Option::take),
                    sent_ms,
                    now_ms,
                    next_wake_ms,
                };
                if let Err(Ok((
                    _,
                    Got {
                        item: Some(orphan), ..
                    },
                ))) = tx.send(Ok((code, got)))
                {
                    give_back(shared, orphan);
                }
            }
        }
    }
}

/// Registers items fetched ahead (so they are renewed) and keeps them
/// for the next getters; gives back what does not fit, and what waited
/// unclaimed for a quarter of a lease.
fn keep_ahead<T: Key>(shared: &Arc<Shared<T>>, items: Vec<Leased>, sent_ms: u64) {
    let now = shared.local_ms();
    let mut back = Vec::new();
    for leased in items {
        let state = shared
            .keeper
            .hand_out(leased.item.clone(), leased.token, sent_ms);
        let fetched = Fetched {
            leased,
            state,
            at_ms: now,
        };
        if shared.is_shutting_down() {
            back.push(fetched);
        } else if let Err(fetched) = shared.ahead.keep(fetched) {
            back.push(fetched);
        }
    }
    shared.give_back_ahead(back);
}

/// Gives back the items fetched ahead that waited unclaimed for a quarter
/// of a lease: this process's workers are busier than the fetch assumed,
/// and another process may be idle. Checked after every call.
fn give_back_stale<T: Key>(shared: &Arc<Shared<T>>) {
    let quarter = u64::try_from((shared.keeper.lease() / 4).as_millis()).unwrap_or(u64::MAX);
    let stale = shared
        .ahead
        .take_older(shared.local_ms().saturating_sub(quarter));
    shared.give_back_ahead(stale);
}

fn mismatch() -> QueueError {
    QueueError::backend("the batch reply does not match its operations")
}

fn fail(request: Request, error: QueueError) {
    match request {
        Request::Add(_, tx) => drop(tx.send(Err(error))),
        Request::Done(_, _, _, tx) => drop(tx.send(Err(error))),
        Request::Get(tx) => drop(tx.send(Err(error))),
        Request::DoneGet(_, _, _, tx) => drop(tx.send(Err(error))),
    }
}

/// `error` again, for the next caller of a failed batch (the cause chain
/// is kept as text).
fn same_error(error: &QueueError) -> QueueError {
    match error {
        QueueError::Corrupt {
            key,
            field,
            problem,
        } => QueueError::Corrupt {
            key: key.clone(),
            field: field.clone(),
            problem: problem.clone(),
        },
        QueueError::Backend(inner) => {
            QueueError::backend(crate::error::Chain(inner.as_ref()).to_string())
        }
        other => QueueError::backend(other.to_string()),
    }
}

fn give_back<T: Key>(shared: &Arc<Shared<T>>, leased: Leased) {
    let shared = shared.clone();
    shared.runtime.clone().spawn(async move {
        let released = shared
            .call(move |mut conn, shared| async move {
                ops::release(&mut conn, &shared.keys, &leased.item, leased.token, shared.now())
                    .await
            })
            .await;
        if let Err(error) = released {
            tracing::debug!(queue = %shared.name, %error, "cannot give back an unclaimed item; it comes back when its lease expires");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(n: u8) -> Request {
        let (tx, _rx) = oneshot::channel();
        Request::Done(vec![n], Token::new(1, 1), false, tx)
    }

    #[test]
    fn fetching_ahead_never_takes_a_call_past_the_scripts_bound() {
        let requests: Vec<Request> = (0..=255).map(done).collect();
        // A huge `prefetch`: one item ahead per done, and never more
        // than the script takes.
        let (ops, _) = operations(&requests, 100_000);
        let items: usize = ops.iter().map(BatchOp::items).sum();
        assert!(items <= MAX_BATCH_ITEMS, "{items}");
        assert!(matches!(ops.last(), Some(BatchOp::Get(256))));
    }

    #[test]
    fn dones_come_first_then_adds_then_one_merged_get() {
        let (tx1, _r1) = oneshot::channel();
        let (tx2, _r2) = oneshot::channel();
        let (tx3, _r3) = oneshot::channel();
        let requests = vec![
            Request::Get(tx1),
            Request::Add(b"a".to_vec(), tx2),
            done(7),
            Request::Get(tx3),
        ];
        let (ops, places) = operations(&requests, 0);
        assert!(matches!(ops[0], BatchOp::Done { .. }));
        assert!(matches!(ops[1], BatchOp::Add(_)));
        assert!(matches!(ops[2], BatchOp::Get(2)));
        assert_eq!(places, vec![(2, 0), (1, 0), (0, 0), (2, 1)]);
    }
}
