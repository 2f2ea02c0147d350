//! Model-based property test: random operation sequences applied both to a
//! `PostgresQueue` (statements on its fake clock, a fresh queue name per
//! case, on the binary's shared PostgreSQL server) and to requeue's
//! in-memory `WorkQueue` (on its own fake clock, same rate limiter; the
//! gets alternate between two `PostgresQueue`s on the same table and fake
//! clock, as two processes would),
//! comparing every observable after every step — the structure of the
//! Redis engine's `tests/model.rs`.
//!
//! Compared: the item `try_get` hands out (both none or the same key), what
//! every add did (`Added`; a delay as its due time relative to each clock's
//! now), `num_requeues` of the key an op touched and on its own, `len`, the
//! `Ended` (released, re-add, refused) of ending a held item, and, at the
//! end of a case, the order in which everything left comes out. After every
//! step the table is checked against the model: exactly the held keys are
//! in state `p` (processing), under their guards' tokens (the table's
//! CHECK constraints guard the other state rules).
//!
//! Run longer with `PROPTEST_CASES=500`. Failing cases are persisted in
//! `proptest-regressions/model.txt` (commit it) and replayed first.
//!
//! # What the generator avoids, and why (as the Redis model)
//!
//! * **Equal due times.** Items due at the same instant are promoted in
//!   key order (`promote`: `ORDER BY due_us, key`) and come out of memory
//!   in the order they were delayed. Delays are distinct per op
//!   (`3 × op index + 1` ms plus a multiple of 50), and before any op that
//!   would delay an item to a due time another delay already uses, the
//!   harness moves the time on (rate-limited adds, whose delay it predicts
//!   from `num_requeues`) or lengthens the delay (explicit delays) until
//!   it is free.
//! * **Lease expiry.** The lease is an hour, far longer than a case's
//!   fake time: reaping a dead holder has no in-memory counterpart.
//! * **The token bucket.** Only the per-item exponential limiter
//!   (5 ms … 1 s) is configured on both sides.
//! * **`done(key)` by key, priorities, shutdown**: items end through their
//!   guard; priorities are covered by `operations.rs`; FIFO only here.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};
use requeue::clock::{Clock, FakeClock};
use requeue::engine::{Ended, Then};
use requeue::limiter::{Exponential, ItemExponential, LimiterSpec};
use requeue::queue::{Added, Item, TryGetError, WorkQueue};
use requeue_postgres::PostgresQueue;
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Keys are `k0 .. k{KEYS-1}`.
const KEYS: u8 = 6;
/// The limiter on both sides: exponential, 5 ms doubling up to 1 s.
const BASE_MS: u64 = 5;
const MAX_MS: u64 = 1_000;
/// Longer than any delay a case can create (at most 1 s).
const SETTLE_MS: u64 = 2_000;

/// How a held item's processing ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Done,
    Forget,
    Retry,
    Requeue,
    /// `RetryAfter` with an explicit delay (see [`Op::AddAfter`]).
    RetryAfter(u64),
    /// `ForgetRetryAfter`, likewise.
    ForgetRetryAfter(u64),
}

/// One step of a case.
#[derive(Debug, Clone, Copy)]
enum Op {
    Add(u8),
    /// `add_after(key, 3 × op index + 1 + 50 × n ms)`.
    AddAfter(u8, u64),
    AddRateLimited(u8),
    /// `try_get` on both (on the Postgres side through the case's second
    /// queue, another "process" on the same table and clock, if `true`);
    /// a handed-out pair of guards is kept.
    TryGet(bool),
    /// Ends the held pair at this index (mod the count); nothing if none.
    End(usize, End),
    Forget(u8),
    NumRequeues(u8),
    Len,
    /// Both clocks move on by this many ms.
    Advance(u64),
}

fn key() -> impl Strategy<Value = u8> {
    0..KEYS
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        3 => Just(End::Done),
        1 => Just(End::Forget),
        3 => Just(End::Retry),
        2 => Just(End::Requeue),
        2 => (0..4_u64).prop_map(End::RetryAfter),
        1 => (0..4_u64).prop_map(End::ForgetRetryAfter),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => key().prop_map(Op::Add),
        4 => (key(), 0..4_u64).prop_map(|(k, n)| Op::AddAfter(k, n)),
        2 => key().prop_map(Op::AddRateLimited),
        6 => any::<bool>().prop_map(Op::TryGet),
        5 => (any::<usize>(), end()).prop_map(|(i, e)| Op::End(i, e)),
        1 => key().prop_map(Op::Forget),
        1 => key().prop_map(Op::NumRequeues),
        2 => Just(Op::Len),
        4 => prop_oneof![3 => 1..30_u64, 2 => 30..300_u64, 1 => 300..1_500_u64]
            .prop_map(Op::Advance),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..=40)
}

fn key_name(k: u8) -> String {
    format!("k{k}")
}

/// A queue name no other case (or earlier run) uses.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "model-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        fastrand::u32(..)
    )
}

/// The explicit delay of op `index`: distinct per op, never 0.
fn explicit_delay(index: usize, n: u64) -> u64 {
    index as u64 * 3 + 1 + 50 * n
}

/// What an add did, with a delay as ms from the clock's now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Did {
    Queued,
    Merged,
    AfterDone,
    Delayed(u64),
    Sent,
}

fn did(added: Added, now: Instant) -> Did {
    match added {
        Added::Queued => Did::Queued,
        Added::Merged => Did::Merged,
        Added::AfterDone => Did::AfterDone,
        Added::Delayed { at } => {
            Did::Delayed(u64::try_from(at.saturating_duration_since(now).as_millis()).unwrap())
        }
        Added::Sent => Did::Sent,
    }
}

/// An `Ended` with its re-add normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EndedAs {
    released: bool,
    added: Option<Did>,
    refused: bool,
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// One case: both queues, the guards held in pairs, the delays pending.
struct Case {
    pg: PostgresQueue<String>,
    /// Another process's queue on the same table and fake clock.
    pg2: PostgresQueue<String>,
    pclock: FakeClock,
    mem: WorkQueue<String>,
    mclock: FakeClock,
    /// (Postgres guard, in-memory guard) of the same key.
    held: Vec<(Item<String>, Item<String>)>,
    /// The test's own connection, to read the table.
    conn: PgConnection,
    /// ms since the case began, on both clocks.
    now: u64,
    /// Due times (ms since the case began) of delays that may be pending.
    dues: BTreeSet<u64>,
    /// What ran, for the failure message.
    trace: Vec<String>,
}

impl Case {
    async fn new(conn: PgConnection) -> Case {
        let name = unique_name();
        let pclock = FakeClock::new();
        let open = || {
            PostgresQueue::builder(support::server().url(), &name)
                .fake_time(pclock.clone())
                .max_connections(2)
                .lease(Duration::from_secs(3_600))
                .limiter(LimiterSpec {
                    exponential: Some(Exponential {
                        base_ms: BASE_MS,
                        max_ms: MAX_MS,
                    }),
                    ..LimiterSpec::default()
                })
                .build()
        };
        // Both before the clock moves: their statements' fake times agree.
        let pg = open().await.unwrap();
        let pg2 = open().await.unwrap();
        let mclock = FakeClock::new();
        let mem = WorkQueue::builder()
            .clock(mclock.clone())
            .rate_limiter(ItemExponential::new(
                Duration::from_millis(BASE_MS),
                Duration::from_millis(MAX_MS),
            ))
            .build();
        Case {
            pg,
            pg2,
            pclock,
            mem,
            mclock,
            held: Vec::new(),
            conn,
            now: 0,
            dues: BTreeSet::new(),
            trace: Vec::new(),
        }
    }

    fn advance(&mut self, ms: u64) {
        let step = Duration::from_millis(ms);
        self.pclock.advance(step);
        self.mclock.advance(step);
        self.now += ms;
        let now = self.now;
        self.dues.retain(|&due| due > now);
    }

    /// Whether a delay of `ms` from now would tie with a pending due time.
    fn ties(&self, ms: u64) -> bool {
        self.dues.contains(&(self.now + ms))
    }

    /// An explicit delay from `ms` on, lengthened until its due time is free.
    fn free_delay(&self, mut ms: u64) -> u64 {
        while self.ties(ms) {
            ms += 1;
        }
        ms
    }

    /// Before a rate-limited add of `key`: moves the time on until the
    /// delay the limiter will give (predicted from `num_requeues`) does
    /// not tie with a pending due time.
    fn free_rate_limited(&mut self, key: &String) {
        let n = self.mem.num_requeues(key);
        let delay = (BASE_MS << n.min(20)).min(MAX_MS);
        while self.ties(delay) {
            self.trace.push("  (advance 1 to avoid a tie)".into());
            self.advance(1);
        }
    }

    /// Compares two adds' outcomes and records a new due time.
    fn compare_added(&mut self, pg: Added, mem: Added, what: &str) -> Result<(), TestCaseError> {
        let r = did(pg, self.pclock.now());
        let m = did(mem, self.mclock.now());
        self.trace.push(format!("  -> {m:?}"));
        prop_assert_eq!(r, m, "{}: Postgres vs memory", what);
        if let Did::Delayed(ms) = m {
            self.dues.insert(self.now + ms);
        }
        Ok(())
    }

    async fn compare_num_requeues(&mut self, key: &String) -> Result<(), TestCaseError> {
        let r = self.pg.num_requeues(key).await.map_err(fail)?;
        let m = self.mem.num_requeues(key);
        prop_assert_eq!(r, m, "num_requeues({})", key);
        Ok(())
    }

    async fn compare_len(&mut self) -> Result<(), TestCaseError> {
        let r = self.pg.len().await.map_err(fail)?;
        let m = self.mem.len();
        self.trace.push(format!("  -> len {m}"));
        prop_assert_eq!(r, m, "len");
        Ok(())
    }

    /// `try_get` on both (through the second Postgres queue if `other`):
    /// the same key or both nothing.
    async fn try_get(&mut self, other: bool) -> Result<Option<String>, TestCaseError> {
        let pg = if other { &self.pg2 } else { &self.pg };
        let r = pg.try_get().await.map_err(fail)?;
        let m = match self.mem.try_get() {
            Ok(item) => Some(item),
            Err(TryGetError::Empty) => None,
            Err(e) => return Err(fail(format!("memory try_get: {e:?}"))),
        };
        let (rk, mk) = (
            r.as_ref().map(|i| (**i).clone()),
            m.as_ref().map(|i| (**i).clone()),
        );
        self.trace.push(format!("  -> {mk:?}"));
        prop_assert_eq!(&rk, &mk, "try_get: Postgres vs memory");
        if let (Some(r), Some(m)) = (r, m) {
            self.held.push((r, m));
        }
        Ok(mk)
    }

    /// Ends the held pair `index` as `then` says on both sides.
    async fn end(&mut self, index: usize, then: Then) -> Result<(), TestCaseError> {
        let (r, m) = self.held.remove(index);
        let key = (*m).clone();
        let r = r.end_async(then).await.map_err(fail)?;
        let m = m.end(then);
        let norm = |e: Ended, now: Instant| EndedAs {
            released: e.released,
            added: e.added.map(|a| did(a, now)),
            refused: e.refused,
        };
        let (r, m) = (norm(r, self.pclock.now()), norm(m, self.mclock.now()));
        self.trace.push(format!("  -> {m:?}"));
        prop_assert_eq!(r, m, "ending {} with {:?}: Postgres vs memory", key, then);
        if let Some(Did::Delayed(ms)) = m.added {
            self.dues.insert(self.now + ms);
        }
        self.compare_num_requeues(&key).await
    }

    async fn apply(&mut self, index: usize, op: Op) -> Result<(), TestCaseError> {
        self.trace.push(format!("{index}: {op:?} at {}", self.now));
        match op {
            Op::Add(k) => {
                let key = key_name(k);
                let r = self.pg.add(key.clone()).await.map_err(|e| fail(e.error))?;
                let m = self
                    .mem
                    .add(key.clone())
                    .map_err(|_| fail("memory add refused"))?;
                self.compare_added(r, m, &format!("add({key})"))?;
            }
            Op::AddAfter(k, n) => {
                let key = key_name(k);
                let ms = self.free_delay(explicit_delay(index, n));
                self.trace.push(format!("  delay {ms} ms"));
                let delay = Duration::from_millis(ms);
                let r = (self.pg.add_after(key.clone(), delay).await).map_err(|e| fail(e.error))?;
                let m = (self.mem.add_after(key.clone(), delay))
                    .map_err(|_| fail("memory add refused"))?;
                self.compare_added(r, m, &format!("add_after({key}, {ms} ms)"))?;
            }
            Op::AddRateLimited(k) => {
                let key = key_name(k);
                self.free_rate_limited(&key);
                let r = (self.pg.add_rate_limited(key.clone()).await).map_err(|e| fail(e.error))?;
                let m = (self.mem.add_rate_limited(key.clone()))
                    .map_err(|_| fail("memory add refused"))?;
                self.compare_added(r, m, &format!("add_rate_limited({key})"))?;
                self.compare_num_requeues(&key).await?;
            }
            Op::TryGet(other) => {
                self.try_get(other).await?;
            }
            Op::End(i, end) => {
                if self.held.is_empty() {
                    return Ok(());
                }
                let i = i % self.held.len();
                let key = (*self.held[i].1).clone();
                let then = match end {
                    End::Done => Then::Done,
                    End::Forget => Then::Forget,
                    End::Requeue => Then::Requeue,
                    End::Retry => {
                        self.free_rate_limited(&key);
                        Then::Retry
                    }
                    End::RetryAfter(n) => Then::RetryAfter(Duration::from_millis(
                        self.free_delay(explicit_delay(index, n)),
                    )),
                    End::ForgetRetryAfter(n) => Then::ForgetRetryAfter(Duration::from_millis(
                        self.free_delay(explicit_delay(index, n)),
                    )),
                };
                self.trace.push(format!("  {key} {then:?}"));
                self.end(i, then).await?;
            }
            Op::Forget(k) => {
                let key = key_name(k);
                self.pg.forget(&key).await.map_err(fail)?;
                self.mem.forget(&key);
                self.compare_num_requeues(&key).await?;
            }
            Op::NumRequeues(k) => self.compare_num_requeues(&key_name(k)).await?,
            Op::Len => self.compare_len().await?,
            Op::Advance(ms) => self.advance(ms),
        }
        self.check().await
    }

    /// The table against the model: exactly the held keys are processing,
    /// each under its guard's token.
    async fn check(&mut self) -> Result<(), TestCaseError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT i.key, i.token FROM requeue.items i JOIN requeue.queues q ON q.id = i.queue_id \
             WHERE q.name = $1 AND i.state = 'p'",
        )
        .bind(self.pg.name())
        .fetch_all(&mut self.conn)
        .await
        .map_err(fail)?;
        let processing: BTreeMap<String, String> = rows
            .into_iter()
            .map(|(key, token)| (key, token.to_string()))
            .collect();
        let held: BTreeMap<String, String> = self
            .held
            .iter()
            .map(|(p, _)| ((**p).clone(), p.token().unwrap_or_default()))
            .collect();
        prop_assert_eq!(
            processing,
            held,
            "processing rows (key, token) vs the held guards"
        );
        Ok(())
    }

    /// Ends every held item, lets every delay pass, and takes out what is
    /// left: the same keys in the same order on both sides.
    async fn drain(&mut self) -> Result<(), TestCaseError> {
        self.trace.push("drain".into());
        while !self.held.is_empty() {
            self.end(0, Then::Done).await?;
            self.check().await?;
        }
        self.advance(SETTLE_MS);
        self.compare_len().await?;
        while self.try_get(false).await?.is_some() {
            self.end(0, Then::Done).await?;
            self.check().await?;
        }
        self.compare_len().await?;
        for k in 0..KEYS {
            self.compare_num_requeues(&key_name(k)).await?;
        }
        self.check().await
    }

    async fn run(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        for (index, &op) in ops.iter().enumerate() {
            self.apply(index, op).await?;
        }
        self.drain().await
    }
}

/// Cases: `PROPTEST_CASES` if set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

#[test]
fn postgres_queue_matches_the_in_memory_queue() {
    // One runtime for every case; each queue runs its calls on its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(config(64));
    let result = runner.run(&ops(), |ops| {
        runtime.block_on(async {
            let mut case = Case::new(support::connect().await).await;
            let result = case.run(&ops).await;
            // Guards still held end here, before the queue goes.
            case.held.clear();
            case.pg.shut_down();
            case.pg2.shut_down();
            result.map_err(|e| fail(format!("{e}\n{}", case.trace.join("\n"))))
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
