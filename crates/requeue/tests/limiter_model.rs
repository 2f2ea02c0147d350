//! Model-based property tests of the rate limiters: random sequences of
//! `when` / `forget` / `num_requeues` (and fake-clock advances for the token
//! bucket) checked against the formulas of docs/behaviour.md §4, computed here
//! independently (saturating doubling; exact integer token arithmetic).
//!
//! Failing cases are persisted under `crates/requeue/proptest-regressions/`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use requeue::clock::FakeClock;
use requeue::limiter::{
    self, ItemExponential, ItemFastSlow, MaxOf, NEVER, RateLimiter, TokenBucket, WithMaxWait,
};
use std::collections::HashMap;
use std::time::Duration;

const KEYS: u8 = 4;

#[derive(Debug, Clone)]
enum Op {
    /// `when(key)`, `times` times in a row (each answer checked).
    When {
        key: u8,
        times: u32,
    },
    Forget(u8),
    NumRequeues(u8),
    /// Advance the fake clock by this many nanoseconds.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..KEYS).prop_map(|key| Op::When { key, times: 1 }),
        1 => (0..KEYS, 2..140_u32).prop_map(|(key, times)| Op::When { key, times }),
        2 => (0..KEYS).prop_map(Op::Forget),
        2 => (0..KEYS).prop_map(Op::NumRequeues),
        3 => (0..200_000_000_u64).prop_map(Op::Advance),
        1 => (0..5_000_000_000_u64).prop_map(Op::Advance),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..60)
}

/// Durations from the interesting ranges: zero, sub-second, any
/// nanosecond count, anything up to `Duration::MAX`.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        4 => (0..5_000_000_u64).prop_map(Duration::from_nanos),
        2 => (0..2_000_u64).prop_map(Duration::from_millis),
        1 => any::<u64>().prop_map(Duration::from_nanos),
        1 => (any::<u64>(), 0..1_000_000_000_u32).prop_map(|(s, n)| Duration::new(s, n)),
        1 => Just(Duration::MAX),
    ]
}

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/limiter_model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Models.

/// A limiter as the formulas describe it.
trait Model {
    fn when(&mut self, key: u8) -> Duration;
    fn forget(&mut self, key: u8);
    fn num_requeues(&self, key: u8) -> u32;
    fn tracked_items(&self) -> usize;
    fn advance(&mut self, _by: Duration) {}
}

/// Per-key failure counters (a key is tracked from its first `when` until `forget`).
#[derive(Debug, Default)]
struct Counts(HashMap<u8, u32>);

impl Counts {
    /// Counts one more failure; returns the count before it.
    fn record(&mut self, key: u8) -> u32 {
        let n = self.0.entry(key).or_insert(0);
        let before = *n;
        *n = n.saturating_add(1);
        before
    }
    fn get(&self, key: u8) -> u32 {
        self.0.get(&key).copied().unwrap_or(0)
    }
}

/// `min(base · 2^failures, max)`, failures counted before this attempt.
#[derive(Debug)]
struct ExpModel {
    base: Duration,
    max: Duration,
    counts: Counts,
}

impl ExpModel {
    fn new(base: Duration, max: Duration) -> Self {
        ExpModel {
            base,
            max,
            counts: Counts::default(),
        }
    }
}

/// `base` doubled `exp` times, stopping as soon as it reaches `max` (an
/// overflowing doubling is beyond any `max`).
fn doubled_capped(base: Duration, exp: u32, max: Duration) -> Duration {
    let mut d = base;
    for _ in 0..exp {
        if d >= max || d.is_zero() {
            break;
        }
        match d.checked_mul(2) {
            Some(next) => d = next,
            None => return max,
        }
    }
    d.min(max)
}

impl Model for ExpModel {
    fn when(&mut self, key: u8) -> Duration {
        let exp = self.counts.record(key);
        doubled_capped(self.base, exp, self.max)
    }
    fn forget(&mut self, key: u8) {
        self.counts.0.remove(&key);
    }
    fn num_requeues(&self, key: u8) -> u32 {
        self.counts.get(key)
    }
    fn tracked_items(&self) -> usize {
        self.counts.0.len()
    }
}

/// `fast` while the attempt number (counted first) is at most `n`, then `slow`.
#[derive(Debug)]
struct FastSlowModel {
    fast: Duration,
    slow: Duration,
    n: u32,
    counts: Counts,
}

impl Model for FastSlowModel {
    fn when(&mut self, key: u8) -> Duration {
        let attempt = self.counts.record(key).saturating_add(1);
        if attempt <= self.n {
            self.fast
        } else {
            self.slow
        }
    }
    fn forget(&mut self, key: u8) {
        self.counts.0.remove(&key);
    }
    fn num_requeues(&self, key: u8) -> u32 {
        self.counts.get(key)
    }
    fn tracked_items(&self) -> usize {
        self.counts.0.len()
    }
}

/// Every part is asked; the longest answer wins.
struct MaxOfModel(Vec<Box<dyn Model>>);

impl Model for MaxOfModel {
    fn when(&mut self, key: u8) -> Duration {
        let answers: Vec<Duration> = self.0.iter_mut().map(|m| m.when(key)).collect();
        answers.into_iter().max().unwrap_or(Duration::ZERO)
    }
    fn forget(&mut self, key: u8) {
        self.0.iter_mut().for_each(|m| m.forget(key));
    }
    fn num_requeues(&self, key: u8) -> u32 {
        self.0
            .iter()
            .map(|m| m.num_requeues(key))
            .max()
            .unwrap_or(0)
    }
    fn tracked_items(&self) -> usize {
        self.0.iter().map(|m| m.tracked_items()).max().unwrap_or(0)
    }
    fn advance(&mut self, by: Duration) {
        self.0.iter_mut().for_each(|m| m.advance(by));
    }
}

/// `min(inner, cap)`.
struct MaxWaitModel(Box<dyn Model>, Duration);

impl Model for MaxWaitModel {
    fn when(&mut self, key: u8) -> Duration {
        self.0.when(key).min(self.1)
    }
    fn forget(&mut self, key: u8) {
        self.0.forget(key);
    }
    fn num_requeues(&self, key: u8) -> u32 {
        self.0.num_requeues(key)
    }
    fn tracked_items(&self) -> usize {
        self.0.tracked_items()
    }
    fn advance(&mut self, by: Duration) {
        self.0.advance(by);
    }
}

/// golang.org/x/time/rate's reservation in exact integers, for a rate of
/// `num / den` tokens per second. Token amounts are kept in units of
/// `1 / (1e9 · den)` token, so one nanosecond refills exactly `num` units.
#[derive(Debug)]
struct BucketModel {
    rate: Rate,
    burst: u32,
    /// Units available at the last reservation (`None` before the first: full).
    units: Option<i128>,
    /// Nanoseconds since the last reservation.
    elapsed: u128,
}

#[derive(Debug, Clone, Copy)]
enum Rate {
    /// `num / den` per second, both positive.
    Finite {
        num: u32,
        den: u32,
    },
    Zero,
    Infinite,
}

impl Rate {
    fn qps(self) -> f64 {
        match self {
            Rate::Finite { num, den } => f64::from(num) / f64::from(den),
            Rate::Zero => 0.0,
            Rate::Infinite => f64::INFINITY,
        }
    }
}

impl BucketModel {
    fn new(rate: Rate, burst: u32) -> Self {
        BucketModel {
            rate,
            burst,
            units: None,
            elapsed: 0,
        }
    }
}

impl Model for BucketModel {
    fn when(&mut self, _key: u8) -> Duration {
        let Rate::Finite { num, den } = self.rate else {
            return match self.rate {
                Rate::Infinite => Duration::ZERO,
                // Zero rate: the initial burst, then never.
                _ => {
                    let left = self.units.get_or_insert(i128::from(self.burst));
                    if *left >= 1 {
                        *left -= 1;
                        Duration::ZERO
                    } else {
                        NEVER
                    }
                }
            };
        };
        if self.burst == 0 {
            return NEVER; // can never hold one token; nothing changes
        }
        let token = 1_000_000_000 * i128::from(den);
        let full = i128::from(self.burst) * token;
        let available = match self.units {
            None => full,
            Some(units) => {
                let refill = i128::try_from(self.elapsed * u128::from(num)).unwrap_or(i128::MAX);
                units.saturating_add(refill).min(full)
            }
        };
        self.elapsed = 0;
        let left = available - token;
        self.units = Some(left);
        if left >= 0 {
            return Duration::ZERO;
        }
        let nanos = (-left) / i128::from(num);
        u64::try_from(nanos)
            .ok()
            .filter(|&n| n < NEVER.as_nanos() as u64)
            .map_or(NEVER, Duration::from_nanos)
    }
    fn forget(&mut self, _key: u8) {}
    fn num_requeues(&self, _key: u8) -> u32 {
        0
    }
    fn tracked_items(&self) -> usize {
        0
    }
    fn advance(&mut self, by: Duration) {
        self.elapsed += by.as_nanos();
    }
}

// ---------------------------------------------------------------------------
// The harness.

/// How far a float-computed wait may be from the exact one: the token
/// bucket works in `f64`, so its answers may be off by rounding.
#[derive(Debug, Clone, Copy)]
enum Tolerance {
    Exact,
    Nanos(u128),
}

fn close(got: Duration, want: Duration, tolerance: Tolerance) -> bool {
    match tolerance {
        Tolerance::Exact => got == want,
        Tolerance::Nanos(n) => got.as_nanos().abs_diff(want.as_nanos()) <= n,
    }
}

fn run(
    limiter: &dyn RateLimiter<u8>,
    model: &mut dyn Model,
    clock: &FakeClock,
    ops: &[Op],
    tolerance: Tolerance,
) -> Result<(), TestCaseError> {
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::When { key, times } => {
                for i in 0..times {
                    let got = limiter.when(&key);
                    let want = model.when(key);
                    prop_assert!(
                        close(got, want, tolerance),
                        "step {} ({:?}), call {}: when({}) = {:?}, formula says {:?}",
                        step,
                        op,
                        i,
                        key,
                        got,
                        want
                    );
                }
            }
            Op::Forget(key) => {
                limiter.forget(&key);
                model.forget(key);
            }
            Op::NumRequeues(key) => {
                prop_assert_eq!(limiter.num_requeues(&key), model.num_requeues(key));
            }
            Op::Advance(nanos) => {
                let by = Duration::from_nanos(nanos);
                clock.advance(by);
                model.advance(by);
            }
        }
        for key in 0..KEYS {
            prop_assert_eq!(
                limiter.num_requeues(&key),
                model.num_requeues(key),
                "num_requeues({}) after step {}",
                key,
                step
            );
        }
        prop_assert_eq!(limiter.tracked_items(), model.tracked_items());
    }
    Ok(())
}

/// A rate in tokens per second: mostly finite fractions, sometimes 0 or unlimited.
fn rate() -> impl Strategy<Value = Rate> {
    prop_oneof![
        8 => (1..=1000_u32, 1..=1000_u32).prop_map(|(num, den)| Rate::Finite { num, den }),
        3 => (1..=100_u32).prop_map(|num| Rate::Finite { num, den: 1 }),
        1 => Just(Rate::Zero),
        1 => Just(Rate::Infinite),
    ]
}

fn burst() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0_u32), 8 => 1..20_u32, 1 => 20..200_u32]
}

/// Rounding slack of the float token bucket against the exact model.
const BUCKET_SLACK: Tolerance = Tolerance::Nanos(1_000);

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn item_exponential_waits_base_doubled_per_failure_capped_at_max(
        base in duration(),
        max in duration(),
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = ItemExponential::new(base, max);
        run(&limiter, &mut ExpModel::new(base, max), &clock, &ops, Tolerance::Exact)?;
    }

    #[test]
    fn item_fast_slow_is_fast_for_the_first_attempts_then_slow(
        fast in duration(),
        slow in duration(),
        n in 0..6_u32,
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = ItemFastSlow::new(fast, slow, n);
        let mut model = FastSlowModel { fast, slow, n, counts: Counts::default() };
        run(&limiter, &mut model, &clock, &ops, Tolerance::Exact)?;
    }

    #[test]
    fn max_of_exponential_and_fast_slow_asks_both_and_waits_the_longest(
        base in duration(),
        max in duration(),
        fast in duration(),
        slow in duration(),
        n in 0..6_u32,
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = MaxOf::new(vec![
            Box::new(ItemExponential::new(base, max)),
            Box::new(ItemFastSlow::new(fast, slow, n)),
        ]);
        let mut model = MaxOfModel(vec![
            Box::new(ExpModel::new(base, max)),
            Box::new(FastSlowModel { fast, slow, n, counts: Counts::default() }),
        ]);
        run(&limiter, &mut model, &clock, &ops, Tolerance::Exact)?;
    }

    #[test]
    fn with_max_wait_caps_the_exponential_wait(
        base in duration(),
        max in duration(),
        cap in duration(),
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = WithMaxWait::new(ItemExponential::new(base, max), cap);
        let mut model = MaxWaitModel(Box::new(ExpModel::new(base, max)), cap);
        run(&limiter, &mut model, &clock, &ops, Tolerance::Exact)?;
    }

    #[test]
    fn token_bucket_reserves_like_x_time_rate(
        rate in rate(),
        burst in burst(),
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = TokenBucket::new(rate.qps(), burst).with_clock(clock.clone());
        let mut model = BucketModel::new(rate, burst);
        run(&limiter, &mut model, &clock, &ops, BUCKET_SLACK)?;
    }

    #[test]
    fn capped_max_of_exponential_and_token_bucket_matches_both_formulas(
        base in duration(),
        max in duration(),
        rate in rate(),
        burst in burst(),
        cap in duration(),
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = WithMaxWait::new(
            MaxOf::new(vec![
                Box::new(ItemExponential::new(base, max)),
                Box::new(TokenBucket::new(rate.qps(), burst).with_clock(clock.clone())),
            ]),
            cap,
        );
        let mut model = MaxWaitModel(
            Box::new(MaxOfModel(vec![
                Box::new(ExpModel::new(base, max)),
                Box::new(BucketModel::new(rate, burst)),
            ])),
            cap,
        );
        run(&limiter, &mut model, &clock, &ops, BUCKET_SLACK)?;
    }

    #[test]
    fn default_controller_is_max_of_5ms_exponential_and_10_per_second_burst_100(
        ops in ops(),
    ) {
        let clock = FakeClock::new();
        let limiter = limiter::default_controller_with_clock(clock.clone());
        let mut model = MaxOfModel(vec![
            Box::new(ExpModel::new(Duration::from_millis(5), Duration::from_secs(1000))),
            Box::new(BucketModel::new(Rate::Finite { num: 10, den: 1 }, 100)),
        ]);
        run(&limiter, &mut model, &clock, &ops, BUCKET_SLACK)?;
    }
}
