//! Model-based property tests: random operation sequences applied both to a
//! real `WorkQueue` on a `FakeClock` and to a small reference model written
//! from docs/behaviour.md (§3.2–§3.9, §4 and the deviations), comparing every
//! observable after every step.
//!
//! The model is deliberately naive: one record per key, the ready items found
//! by scanning for the highest priority and the smallest enqueue sequence, the
//! delayed items sorted on demand. Failing cases are persisted under
//! `crates/requeue/proptest-regressions/` (commit those files).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use requeue::clock::{Clock, FakeClock};
use requeue::limiter::ItemExponential;
use requeue::queue::{AddOpts, Added, Item, QueueSnapshot, ShutDown, TryGetError, WorkQueue};
use std::time::{Duration, Instant};

/// Keys are `0..KEYS`.
const KEYS: u8 = 6;
const MS: Duration = Duration::from_millis(1);
/// The limiter under test: `ItemExponential::new(BASE, MAX_DELAY)`.
const BASE: Duration = MS;
const MAX_DELAY: Duration = Duration::from_secs(1);

/// One step of a test case.
#[derive(Debug, Clone)]
enum Op {
    /// `add(key)`.
    Add(u8),
    /// `add_after(key, ms)` (0 ms included: an immediate add).
    AddAfter(u8, u64),
    /// `add_with(key, opts)`.
    AddWith {
        key: u8,
        priority: i32,
        after_ms: Option<u64>,
        rate_limited: bool,
    },
    /// `add_rate_limited(key)`.
    AddRateLimited(u8),
    /// `try_get()`; a returned guard is kept by the model worker.
    Get,
    /// `guard.done()` of the held guard at this index (mod the count).
    Done(usize),
    /// `guard.retry()` of the held guard at this index (mod the count).
    Retry(usize),
    /// `queue.done(&key)`, whether or not `key` is held.
    DoneKey(u8),
    /// `forget(key)`.
    Forget(u8),
    /// `shut_down()`.
    ShutDown,
    /// `FakeClock::advance(ms)`.
    Advance(u64),
}

fn key() -> impl Strategy<Value = u8> {
    0..KEYS
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => key().prop_map(Op::Add),
        4 => (key(), 0..8_u64).prop_map(|(k, d)| Op::AddAfter(k, d)),
        4 => (key(), -1..=1_i32, proptest::option::of(0..8_u64), any::<bool>()).prop_map(
            |(key, priority, after_ms, rate_limited)| Op::AddWith {
                key,
                priority,
                after_ms,
                rate_limited,
            }
        ),
        2 => key().prop_map(Op::AddRateLimited),
        8 => Just(Op::Get),
        5 => any::<usize>().prop_map(Op::Done),
        2 => any::<usize>().prop_map(Op::Retry),
        2 => key().prop_map(Op::DoneKey),
        1 => key().prop_map(Op::Forget),
        1 => Just(Op::ShutDown),
        4 => (0..10_u64).prop_map(Op::Advance),
        1 => (100..1_100_u64).prop_map(Op::Advance),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
fn config(cases: u32, file: &'static str) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// The reference model.

/// What the model knows about one key.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// Needs processing (ready, or due again after the current processing).
    dirty: bool,
    /// The hand-out currently processing it.
    processing: Option<u64>,
    /// Waiting for a delay: (due, order in which the delay was set).
    delayed: Option<(Duration, u64)>,
    /// The highest priority of the adds merged into the pending instance
    /// (`None` when nothing is pending).
    priority: Option<i32>,
    /// When it joined the back of its priority level (valid while queued).
    seq: u64,
}

impl Entry {
    fn queued(&self) -> bool {
        self.dirty && self.processing.is_none()
    }
}

#[derive(Debug)]
struct Model {
    /// The fake clock's reading at the start.
    start: Instant,
    /// Fake time elapsed since the start.
    now: Duration,
    entries: Vec<Entry>,
    /// Failure counts of the `ItemExponential` limiter.
    failures: Vec<u32>,
    shutting_down: bool,
    fairness: Option<u32>,
    /// Consecutive hand-outs that passed over an older, lower-priority item.
    passed_over: u32,
    next_seq: u64,
    next_delay_seq: u64,
    next_hand_out: u64,
}

/// What `try_get` gave, in model terms.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Item { key: u8, priority: i32 },
    Empty,
    ShutDown,
}

impl Model {
    fn new(fairness: Option<u32>, start: Instant) -> Self {
        Model {
            start,
            now: Duration::ZERO,
            entries: vec![Entry::default(); usize::from(KEYS)],
            failures: vec![0; usize::from(KEYS)],
            shutting_down: false,
            fairness,
            passed_over: 0,
            next_seq: 0,
            next_delay_seq: 0,
            next_hand_out: 0,
        }
    }

    /// `ItemExponential(1 ms, 1 s)`: `min(1 ms · 2^failures, 1 s)`, then count the failure.
    fn limiter_when(&mut self, key: u8) -> Duration {
        let n = &mut self.failures[usize::from(key)];
        let delay = if *n >= 10 {
            MAX_DELAY // 1 ms · 2^10 > 1 s
        } else {
            (BASE * (1_u32 << *n)).min(MAX_DELAY)
        };
        *n += 1;
        delay
    }

    /// Puts `key` at the back of its priority level.
    fn enqueue(&mut self, key: u8) {
        self.next_seq += 1;
        self.entries[usize::from(key)].seq = self.next_seq;
    }

    /// Keeps the maximum priority; a queued item whose priority rises moves
    /// to the back of its new level.
    fn raise(&mut self, key: u8, priority: i32) {
        let e = &mut self.entries[usize::from(key)];
        let old = e.priority.unwrap_or(i32::MIN);
        if priority > old {
            e.priority = Some(priority);
            if e.queued() {
                self.enqueue(key);
            }
        }
    }

    fn add(&mut self, key: u8, opts: AddOpts) -> Result<Added, ShutDown<u8>> {
        // The limiter is asked (and counts) even when the add is refused
        // (docs/behaviour.md §3.8).
        let mut delay = opts.after;
        if opts.rate_limited {
            let limited = self.limiter_when(key);
            delay = Some(match delay {
                Some(after) if !after.is_zero() && after < limited => after,
                _ => limited,
            });
        }
        let delay = delay.filter(|d| !d.is_zero());
        if self.shutting_down {
            return Err(ShutDown(key));
        }
        let k = usize::from(key);
        match delay {
            None => {
                // Deviation 3: an immediate add withdraws a pending delay.
                self.entries[k].delayed = None;
                if self.entries[k].dirty {
                    self.raise(key, opts.priority);
                    return Ok(Added::Merged);
                }
                let e = &mut self.entries[k];
                e.dirty = true;
                e.priority = Some(e.priority.unwrap_or(i32::MIN).max(opts.priority));
                if e.processing.is_some() {
                    return Ok(Added::AfterDone);
                }
                self.enqueue(key);
                Ok(Added::Queued)
            }
            Some(delay) => {
                if self.entries[k].dirty {
                    // Already due: the delay is ignored, the priority counts.
                    self.raise(key, opts.priority);
                    return Ok(Added::Merged);
                }
                let at = self.now + delay;
                let e = &mut self.entries[k];
                e.priority = Some(e.priority.unwrap_or(i32::MIN).max(opts.priority));
                if e.delayed.is_some_and(|(current, _)| current <= at) {
                    return Ok(Added::Merged); // the earliest delay wins
                }
                self.next_delay_seq += 1;
                e.delayed = Some((at, self.next_delay_seq));
                Ok(Added::Delayed { at: self.at(at) })
            }
        }
    }

    /// The fake clock's instant `offset` after the start.
    fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    fn get(&mut self) -> Got {
        let ready: Vec<(u8, i32, u64)> = (0..KEYS)
            .filter(|&k| self.entries[usize::from(k)].queued())
            .map(|k| {
                let e = &self.entries[usize::from(k)];
                (k, e.priority.unwrap(), e.seq)
            })
            .collect();
        if ready.is_empty() {
            return if self.shutting_down {
                Got::ShutDown
            } else {
                Got::Empty
            };
        }
        // Highest priority, FIFO within it.
        let highest = *ready
            .iter()
            .max_by_key(|(_, p, seq)| (*p, std::cmp::Reverse(*seq)))
            .unwrap();
        // The longest-waiting ready item.
        let oldest = *ready.iter().min_by_key(|(_, _, seq)| *seq).unwrap();
        let (key, priority, _) = if highest == oldest {
            self.passed_over = 0;
            highest
        } else if self.fairness.is_some_and(|n| self.passed_over >= n) {
            self.passed_over = 0;
            oldest
        } else {
            self.passed_over += 1;
            highest
        };
        self.next_hand_out += 1;
        let e = &mut self.entries[usize::from(key)];
        e.dirty = false;
        e.priority = None;
        e.processing = Some(self.next_hand_out);
        Got::Item { key, priority }
    }

    /// Ends hand-out `hand_out` of `key` (any hand-out if `None`).
    fn done(&mut self, key: u8, hand_out: Option<u64>) -> bool {
        let e = &mut self.entries[usize::from(key)];
        let Some(current) = e.processing else {
            return false;
        };
        if hand_out.is_some_and(|h| h != current) {
            return false;
        }
        e.processing = None;
        if e.dirty {
            // Re-added while processing: to the back of its level now.
            self.enqueue(key);
        }
        true
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        let mut due: Vec<(Duration, u64, u8)> = (0..KEYS)
            .filter_map(|k| {
                let (at, seq) = self.entries[usize::from(k)].delayed?;
                (at <= self.now).then_some((at, seq, k))
            })
            .collect();
        due.sort();
        for (_, _, key) in due {
            let e = &mut self.entries[usize::from(key)];
            e.delayed = None;
            e.dirty = true;
            if e.processing.is_none() {
                self.enqueue(key);
            }
        }
    }

    /// Shuts down; returns the withdrawn delayed keys, sorted.
    fn shut_down(&mut self) -> Vec<u8> {
        self.shutting_down = true;
        let mut withdrawn = Vec::new();
        for key in 0..KEYS {
            let e = &mut self.entries[usize::from(key)];
            if e.delayed.take().is_some() {
                withdrawn.push(key);
                if !e.dirty {
                    e.priority = None;
                }
            }
        }
        withdrawn
    }

    fn snapshot(&self) -> QueueSnapshot {
        let count = |f: &dyn Fn(&Entry) -> bool| self.entries.iter().filter(|e| f(e)).count();
        QueueSnapshot {
            ready: count(&|e| e.queued()),
            processing: count(&|e| e.processing.is_some()),
            added_while_processing: count(&|e| e.dirty && e.processing.is_some()),
            delayed: count(&|e| e.delayed.is_some()),
            waiting_gets: 0,
            shutting_down: self.shutting_down,
        }
    }
}

// ---------------------------------------------------------------------------
// The harness.

/// The queue under test, the model, and the guards the model worker holds
/// (each with the model's hand-out number).
struct Harness {
    clock: FakeClock,
    queue: WorkQueue<u8>,
    model: Model,
    held: Vec<(Item<u8>, u64)>,
}

impl Harness {
    fn new(fairness: Option<u32>) -> Self {
        let clock = FakeClock::new();
        let start = clock.now();
        let queue = WorkQueue::builder()
            .clock(clock.clone())
            .rate_limiter(ItemExponential::new(BASE, MAX_DELAY))
            .fairness(fairness)
            .build();
        Harness {
            clock,
            queue,
            model: Model::new(fairness, start),
            held: Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Add(k) => {
                let got = self.queue.add(k);
                prop_assert_eq!(got, self.model.add(k, AddOpts::new()), "add({})", k);
            }
            Op::AddAfter(k, ms) => {
                let d = Duration::from_millis(ms);
                let got = self.queue.add_after(k, d);
                prop_assert_eq!(got, self.model.add(k, AddOpts::new().after(d)));
            }
            Op::AddWith {
                key,
                priority,
                after_ms,
                rate_limited,
            } => {
                let opts = AddOpts {
                    after: after_ms.map(Duration::from_millis),
                    rate_limited,
                    priority,
                };
                let got = self.queue.add_with(key, opts);
                prop_assert_eq!(got, self.model.add(key, opts));
            }
            Op::AddRateLimited(k) => {
                let got = self.queue.add_rate_limited(k);
                prop_assert_eq!(got, self.model.add(k, AddOpts::new().rate_limited()));
            }
            Op::Get => {
                let expected = self.model.get();
                match self.queue.try_get() {
                    Ok(item) => {
                        let got = Got::Item {
                            key: *item,
                            priority: item.priority(),
                        };
                        prop_assert_eq!(got, expected);
                        self.held.push((item, self.model.next_hand_out));
                    }
                    Err(TryGetError::Empty) => prop_assert_eq!(Got::Empty, expected),
                    Err(TryGetError::ShutDown) => prop_assert_eq!(Got::ShutDown, expected),
                }
            }
            Op::Done(i) => {
                if !self.held.is_empty() {
                    let (item, hand_out) = self.held.remove(i % self.held.len());
                    let key = *item;
                    let got = item.done();
                    prop_assert_eq!(got, self.model.done(key, Some(hand_out)));
                }
            }
            Op::Retry(i) => {
                if !self.held.is_empty() {
                    let (item, hand_out) = self.held.remove(i % self.held.len());
                    let key = *item;
                    let got = item.retry();
                    let expected = self.model.add(key, AddOpts::new().rate_limited());
                    self.model.done(key, Some(hand_out));
                    prop_assert_eq!(got, expected);
                }
            }
            Op::DoneKey(k) => {
                let got = self.queue.done(&k);
                prop_assert_eq!(got, self.model.done(k, None), "done(&{})", k);
            }
            Op::Forget(k) => {
                self.queue.forget(&k);
                self.model.failures[usize::from(k)] = 0;
            }
            Op::ShutDown => {
                let mut got = self.queue.shut_down();
                got.sort_unstable();
                prop_assert_eq!(got, self.model.shut_down());
            }
            Op::Advance(ms) => {
                let d = Duration::from_millis(ms);
                self.clock.advance(d);
                self.model.advance(d);
            }
        }
        self.check()
    }

    /// Compares every observable that does not change the queue.
    fn check(&self) -> Result<(), TestCaseError> {
        let snapshot = self.queue.snapshot();
        let expected = self.model.snapshot();
        prop_assert_eq!(snapshot, expected);
        prop_assert_eq!(self.queue.len(), expected.ready);
        prop_assert_eq!(self.queue.is_empty(), expected.ready == 0);
        prop_assert_eq!(self.queue.is_shutting_down(), self.model.shutting_down);
        for k in 0..KEYS {
            prop_assert_eq!(
                self.queue.num_requeues(&k),
                self.model.failures[usize::from(k)],
                "num_requeues({})",
                k
            );
        }
        Ok(())
    }

    /// Shuts down and works off everything, still comparing at each step;
    /// the queue ends empty.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.apply(&Op::ShutDown)?;
        loop {
            while !self.held.is_empty() {
                self.apply(&Op::Done(0))?;
            }
            let before = self.held.len();
            self.apply(&Op::Get)?;
            if self.held.len() == before {
                break;
            }
        }
        let empty = QueueSnapshot {
            ready: 0,
            processing: 0,
            added_while_processing: 0,
            delayed: 0,
            waiting_gets: 0,
            shutting_down: true,
        };
        prop_assert_eq!(self.queue.snapshot(), empty);
        Ok(())
    }
}

fn run(fairness: Option<u32>, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(fairness);
    h.check()?;
    for op in ops {
        h.apply(op)?;
    }
    h.drain()
}

proptest! {
    #![proptest_config(config(
        2000,
        concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/queue_model.txt"),
    ))]

    #[test]
    fn queue_matches_the_model_with_strict_priorities(ops in ops()) {
        run(None, &ops)?;
    }

    #[test]
    fn queue_matches_the_model_with_fairness_2(ops in ops()) {
        run(Some(2), &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Bugs the model found, each kept as a plain regression test named after it.

/// Raising the priority of a queued item leaves a stale entry in its old,
/// lower level. The fairness rule counts that stale entry as an "older,
/// lower-priority item passed over", so hand-outs that passed over no live
/// item spend the budget, and the oldest item is served out of priority
/// order too early. Here "a" is the only (and oldest) ready item when it is
/// handed out, so that hand-out passes over nothing; "d" then goes first
/// (passing over "c" once, which `fairness(Some(1))` allows), then "c".
/// The queue handed out "c" before "d" until `ReadyQueue::pop` discarded
/// stale fronts before applying the rule.
#[test]
fn regression_fairness_counted_the_stale_entry_of_a_raised_priority_as_passed_over() {
    let queue: WorkQueue<&str> = WorkQueue::builder()
        .clock(FakeClock::new())
        .fairness(Some(1))
        .build();
    queue.add_with("a", AddOpts::new().priority(-1)).unwrap();
    // Raised: "a" moves to the back of level 0; its level -1 entry goes stale.
    queue.add_with("a", AddOpts::new().priority(0)).unwrap();
    queue.add_with("c", AddOpts::new().priority(-1)).unwrap();
    queue.add("d").unwrap();
    let order: Vec<&str> = std::iter::from_fn(|| queue.try_get().ok().map(|item| *item)).collect();
    assert_eq!(order, ["a", "d", "c"]);
}
