//! A model-based property test of an engine: random operation sequences
//! applied both to the engine's queue and to requeue's in-memory
//! [`WorkQueue`] (each on its own [`FakeClock`], the same rate limiter),
//! comparing every observable after every step, with the engine's own
//! check of its stored state ([`Engine::check`]) after every step too.
//!
//! The checks of [`conformance`](super) pin down chosen scenarios; this
//! test walks many more interleavings than anyone writes by hand, and is
//! how both remote engines found ordering bugs the checks missed. An
//! engine author supplies how to open a queue and how to check its stored
//! state; the generator, the comparison and the failure report are here,
//! so every engine is compared the same way.
//!
//! Compared: the item `try_get` hands out (both none or the same key), what
//! every add did ([`Added`]; a delay as its due time relative to each
//! clock's now), `num_requeues` of the key an op touched and on its own,
//! `len`, the [`Ended`] (released, re-add, refused) of ending a held item,
//! and, at the end of a case, the order in which everything left comes out.
//!
//! With [`Model::second_process`], gets alternate at random between two
//! queues of the engine on the same stored queue and fake clock, as two
//! processes would share it.
//!
//! # What the generator avoids, and why
//!
//! * **Equal due times.** Items due at the same instant may come out of an
//!   engine in another order than out of memory, which keeps the order in
//!   which they were delayed (Redis: a sorted set's byte order for equal
//!   scores; PostgreSQL: key order). Delays are distinct per op
//!   (`3 × op index + 1` ms plus a multiple of 50), and before any op that
//!   would delay an item to a due time another delay already uses, the
//!   harness moves the time on (rate-limited adds, whose delay it predicts
//!   from `num_requeues`) or lengthens the delay (explicit delays) until
//!   it is free.
//! * **Lease expiry.** The engine's lease ([`Setup::lease`]) is an hour,
//!   far longer than a case's fake time: reaping a dead holder has no
//!   in-memory counterpart.
//! * **The token bucket.** Only the per-item exponential limiter
//!   (5 ms … 1 s, [`Setup::limiter`]) is configured on both sides.
//! * **`done(key)` by key, priorities, shutdown**: items end through their
//!   guard; FIFO only.
//!
//! The case count is `PROPTEST_CASES` if set, else [`Model::cases`].
//! Failing cases are persisted in the file given to [`Model::regressions`]
//! (commit it) and replayed first; a regression file stores seeds, and
//! the generator draws exactly as the engines' own model tests did before
//! it moved here, so their committed seeds still replay the same cases.
//!
//! ```
//! use requeue::engine::QueueError;
//! use requeue::engine::conformance::model::{Engine, Held, Model, Setup};
//! use requeue::queue::{Item, WorkQueue};
//!
//! /// The in-memory queue itself as the engine: it must match trivially.
//! struct InMemory;
//!
//! impl Engine for InMemory {
//!     type Queue = WorkQueue<String>;
//!
//!     async fn open(&mut self, setup: &Setup<'_>) -> WorkQueue<String> {
//!         WorkQueue::builder()
//!             .clock(setup.clock.clone())
//!             .rate_limiter(setup.limiter.build_with_clock(setup.clock.clone()))
//!             .build()
//!     }
//!
//!     async fn try_get(queue: &WorkQueue<String>) -> Result<Option<Item<String>>, QueueError> {
//!         Ok(queue.try_get().ok())
//!     }
//!
//!     async fn check(&mut self, _queue: &WorkQueue<String>, held: &[Held]) -> Result<(), String> {
//!         // A remote engine compares its stored leases with `held` here.
//!         match held.iter().all(|h| h.token.is_none()) {
//!             true => Ok(()),
//!             false => Err("in-memory items carry no token".into()),
//!         }
//!     }
//! }
//!
//! Model::new().cases(4).run(|| async { InMemory });
//! ```

use crate::clock::{Clock, FakeClock};
use crate::engine::{AsyncQueue, Ended, QueueError, Then};
use crate::limiter::{Exponential, ItemExponential, LimiterSpec};
use crate::queue::{Added, Item, TryGetError, WorkQueue};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// Keys are `k0 .. k{KEYS-1}`.
const KEYS: u8 = 6;
/// The limiter on both sides: exponential, 5 ms doubling up to 1 s.
const BASE_MS: u64 = 5;
const MAX_MS: u64 = 1_000;
/// Longer than any delay a case can create (at most 1 s).
const SETTLE_MS: u64 = 2_000;
/// The engine's lease: far longer than a case's fake time.
const LEASE: Duration = Duration::from_secs(3_600);

/// How to build the engine's queue for a case.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The queue's name: fresh for every case
    /// ([`unique_name`](super::unique_name)`("model")`); with
    /// [`Model::second_process`], both queues of a case get the same.
    pub name: &'a str,
    /// The case's fake clock; the engine's delays and leases must run on it.
    pub clock: &'a FakeClock,
    /// The rate limiter the in-memory side has: exponential, 5 ms … 1 s.
    pub limiter: LimiterSpec,
    /// The lease to configure (an hour: never runs out in a case).
    pub lease: Duration,
}

/// A guard the engine handed out and the case still holds, for
/// [`Engine::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The item.
    pub key: String,
    /// Its fencing token ([`Item::token`]), if the engine gives one.
    pub token: Option<String>,
}

/// What the model test needs of an engine.
pub trait Engine {
    /// The engine's queue.
    type Queue: AsyncQueue<String>;

    /// Opens a queue as `setup` says. Called at the start of every case
    /// (twice with [`Model::second_process`], before the clock moves).
    fn open(&mut self, setup: &Setup<'_>) -> impl Future<Output = Self::Queue>;

    /// A get that does not wait (`try_get`, which [`AsyncQueue`] does
    /// not have): the next ready item, or `None`.
    fn try_get(
        queue: &Self::Queue,
    ) -> impl Future<Output = Result<Option<Item<String>>, QueueError>>;

    /// Checks the engine's stored state after a step: `held` are the
    /// guards the case holds, in the order they were handed out. An `Err`
    /// fails the case with its text.
    fn check(
        &mut self,
        queue: &Self::Queue,
        held: &[Held],
    ) -> impl Future<Output = Result<(), String>>;
}

/// The model test's settings; [`run`](Model::run) runs it.
#[derive(Debug, Clone)]
pub struct Model {
    cases: u32,
    regressions: Option<&'static str>,
    second_process: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    /// 64 cases, one queue, failing cases not persisted.
    pub fn new() -> Self {
        Model {
            cases: 64,
            regressions: None,
            second_process: false,
        }
    }

    /// How many cases to run when `PROPTEST_CASES` is not set.
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }

    /// The file failing cases are persisted in and replayed from first
    /// (typically `concat!(env!("CARGO_MANIFEST_DIR"),
    /// "/proptest-regressions/model.txt")`).
    pub fn regressions(mut self, path: &'static str) -> Self {
        self.regressions = Some(path);
        self
    }

    /// Gets alternate at random between two queues of the engine on the
    /// same name and fake clock, as two processes would share it. (It
    /// changes what the generator draws: a regression file recorded
    /// without it replays other cases with it.)
    pub fn second_process(mut self) -> Self {
        self.second_process = true;
        self
    }

    /// Runs the cases on a current-thread tokio runtime of its own, one
    /// engine from `engine` for all of them; panics with the failing case
    /// (shrunk) and the trace of what it ran. Call it from a plain
    /// `#[test]`, not from inside a runtime.
    pub fn run<E, F, Fut>(self, engine: F)
    where
        E: Engine,
        F: FnOnce() -> Fut,
        Fut: Future<Output = E>,
    {
        // One runtime for every case; each queue runs its calls on its own.
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => panic!("the model test's runtime: {error}"),
        };
        // `TestRunner::run` takes an `Fn`: the engine is lent to one case
        // at a time, through a lock that a panicking case does not poison
        // (proptest catches the panic and runs more cases).
        let engine = tokio::sync::Mutex::new(runtime.block_on(engine()));
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.cases);
        let config = Config {
            cases,
            failure_persistence: self
                .regressions
                .map(|path| Box::new(FileFailurePersistence::Direct(path)) as Box<_>),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let two = self.second_process;
        let result = runner.run(&ops(two), |ops| {
            runtime.block_on(async {
                let mut engine = engine.lock().await;
                let mut case = Case::new(&mut *engine, two).await;
                let result = case.run(&ops).await;
                // Guards still held end here, before the queues go; shut
                // down, so that no case's connections outlive it.
                case.held.clear();
                for queue in &case.queues {
                    queue.shut_down();
                }
                result.map_err(|e| fail(format!("{e}\n{}", case.trace.join("\n"))))
            })
        });
        if let Err(error) = result {
            panic!("{error}");
        }
    }
}

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
    /// `try_get` on both (on the engine's side through the second queue
    /// if `true`); a handed-out pair of guards is kept.
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

fn op(two: bool) -> impl Strategy<Value = Op> {
    // With one queue the get draws nothing (as `Just(TryGet)` did before
    // the second queue existed), so recorded seeds replay the same cases.
    let try_get: BoxedStrategy<Op> = if two {
        any::<bool>().prop_map(Op::TryGet).boxed()
    } else {
        Just(Op::TryGet(false)).boxed()
    };
    prop_oneof![
        5 => key().prop_map(Op::Add),
        4 => (key(), 0..4_u64).prop_map(|(k, n)| Op::AddAfter(k, n)),
        2 => key().prop_map(Op::AddRateLimited),
        6 => try_get,
        5 => (any::<usize>(), end()).prop_map(|(i, e)| Op::End(i, e)),
        1 => key().prop_map(Op::Forget),
        1 => key().prop_map(Op::NumRequeues),
        2 => Just(Op::Len),
        4 => prop_oneof![3 => 1..30_u64, 2 => 30..300_u64, 1 => 300..1_500_u64]
            .prop_map(Op::Advance),
    ]
}

fn ops(two: bool) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(two), 1..=40)
}

fn key_name(k: u8) -> String {
    format!("k{k}")
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
        Added::Delayed { at } => Did::Delayed(
            u64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
        ),
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

/// One case: the engine's queues, the in-memory one, the guards held in
/// pairs, the delays pending.
struct Case<'e, E: Engine> {
    engine: &'e mut E,
    /// The engine's queue, and with a second process its other queue on
    /// the same name and clock.
    queues: Vec<E::Queue>,
    eclock: FakeClock,
    mem: WorkQueue<String>,
    mclock: FakeClock,
    /// (engine guard, in-memory guard) of the same key.
    held: Vec<(Item<String>, Item<String>)>,
    /// ms since the case began, on both clocks.
    now: u64,
    /// Due times (ms since the case began) of delays that may be pending.
    dues: BTreeSet<u64>,
    /// What ran, for the failure message.
    trace: Vec<String>,
}

impl<'e, E: Engine> Case<'e, E> {
    async fn new(engine: &'e mut E, two: bool) -> Self {
        let name = super::unique_name("model");
        let eclock = FakeClock::new();
        let setup = Setup {
            name: &name,
            clock: &eclock,
            limiter: LimiterSpec {
                exponential: Some(Exponential {
                    base_ms: BASE_MS,
                    max_ms: MAX_MS,
                }),
                ..LimiterSpec::default()
            },
            lease: LEASE,
        };
        // All before the clock moves: their fake times agree.
        let mut queues = vec![engine.open(&setup).await];
        if two {
            queues.push(engine.open(&setup).await);
        }
        let mclock = FakeClock::new();
        let mem = WorkQueue::builder()
            .clock(mclock.clone())
            .rate_limiter(ItemExponential::new(
                Duration::from_millis(BASE_MS),
                Duration::from_millis(MAX_MS),
            ))
            .build();
        Case {
            engine,
            queues,
            eclock,
            mem,
            mclock,
            held: Vec::new(),
            now: 0,
            dues: BTreeSet::new(),
            trace: Vec::new(),
        }
    }

    /// The engine's first queue (adds and the rest go through it).
    fn queue(&self) -> &E::Queue {
        &self.queues[0]
    }

    fn advance(&mut self, ms: u64) {
        let step = Duration::from_millis(ms);
        self.eclock.advance(step);
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
    fn compare_added(&mut self, ours: Added, mem: Added, what: &str) -> Result<(), TestCaseError> {
        let r = did(ours, self.eclock.now());
        let m = did(mem, self.mclock.now());
        self.trace.push(format!("  -> {m:?}"));
        prop_assert_eq!(r, m, "{}: engine vs memory", what);
        if let Did::Delayed(ms) = m {
            self.dues.insert(self.now + ms);
        }
        Ok(())
    }

    async fn compare_num_requeues(&mut self, key: &String) -> Result<(), TestCaseError> {
        let r = self.queue().num_requeues(key).await.map_err(fail)?;
        let m = self.mem.num_requeues(key);
        prop_assert_eq!(r, m, "num_requeues({})", key);
        Ok(())
    }

    async fn compare_len(&mut self) -> Result<(), TestCaseError> {
        let r = self.queue().len().await.map_err(fail)?;
        let m = self.mem.len();
        self.trace.push(format!("  -> len {m}"));
        prop_assert_eq!(r, m, "len");
        Ok(())
    }

    /// `try_get` on both (through the engine's second queue if `other`):
    /// the same key or both nothing.
    async fn try_get(&mut self, other: bool) -> Result<Option<String>, TestCaseError> {
        let queue = &self.queues[usize::from(other && self.queues.len() > 1)];
        let r = E::try_get(queue).await.map_err(fail)?;
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
        prop_assert_eq!(&rk, &mk, "try_get: engine vs memory");
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
        let (r, m) = (norm(r, self.eclock.now()), norm(m, self.mclock.now()));
        self.trace.push(format!("  -> {m:?}"));
        prop_assert_eq!(r, m, "ending {} with {:?}: engine vs memory", key, then);
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
                let r = (self.queue().add(key.clone()).await).map_err(|e| fail(e.error))?;
                let m = (self.mem.add(key.clone())).map_err(|_| fail("memory add refused"))?;
                self.compare_added(r, m, &format!("add({key})"))?;
            }
            Op::AddAfter(k, n) => {
                let key = key_name(k);
                let ms = self.free_delay(explicit_delay(index, n));
                self.trace.push(format!("  delay {ms} ms"));
                let delay = Duration::from_millis(ms);
                let r = (self.queue().add_after(key.clone(), delay).await)
                    .map_err(|e| fail(e.error))?;
                let m = (self.mem.add_after(key.clone(), delay))
                    .map_err(|_| fail("memory add refused"))?;
                self.compare_added(r, m, &format!("add_after({key}, {ms} ms)"))?;
            }
            Op::AddRateLimited(k) => {
                let key = key_name(k);
                self.free_rate_limited(&key);
                let r = (self.queue().add_rate_limited(key.clone()).await)
                    .map_err(|e| fail(e.error))?;
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
                self.queue().forget(&key).await.map_err(fail)?;
                self.mem.forget(&key);
                self.compare_num_requeues(&key).await?;
            }
            Op::NumRequeues(k) => self.compare_num_requeues(&key_name(k)).await?,
            Op::Len => self.compare_len().await?,
            Op::Advance(ms) => self.advance(ms),
        }
        self.check().await
    }

    /// The engine's check of its stored state against the held guards.
    async fn check(&mut self) -> Result<(), TestCaseError> {
        let held: Vec<Held> = self
            .held
            .iter()
            .map(|(ours, _)| Held {
                key: (**ours).clone(),
                token: ours.token(),
            })
            .collect();
        let queue = &self.queues[0];
        (self.engine.check(queue, &held).await).map_err(fail)
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
