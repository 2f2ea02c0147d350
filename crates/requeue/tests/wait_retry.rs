//! `exponential_backoff` and friends (docs/behaviour.md §2.5, §8.1).

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::wait::{self, Backoff, Retry, Stop, WaitError};
use std::cell::Cell;
use std::time::Duration;
use support::Driver;

const SEC: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq, Eq)]
struct Boom;

static NEVER: Stop = Stop::never();

fn instant_backoff(steps: u32) -> Backoff {
    Backoff::new(Duration::ZERO).factor(2.0).steps(steps)
}

fn attempts(
    steps: u32,
    stop: &Stop,
    answer: impl Fn(usize) -> Result<bool, Boom>,
) -> (usize, Result<(), WaitError<Boom>>) {
    let calls = Cell::new(0);
    let out = wait::exponential_backoff_until(instant_backoff(steps), stop, || {
        calls.set(calls.get() + 1);
        answer(calls.get())
    });
    (calls.get(), out)
}

#[test]
fn exponential_backoff_with_zero_steps_never_calls_the_condition() {
    assert_eq!(
        attempts(0, &NEVER, |_| Ok(true)),
        (0, Err(WaitError::Exhausted))
    );
}

#[test]
fn exponential_backoff_calls_at_most_steps_times() {
    assert_eq!(
        attempts(1, &NEVER, |_| Ok(false)),
        (1, Err(WaitError::Exhausted))
    );
    assert_eq!(
        attempts(3, &NEVER, |_| Ok(false)),
        (3, Err(WaitError::Exhausted))
    );
    assert_eq!(
        attempts(5, &NEVER, |_| Ok(false)),
        (5, Err(WaitError::Exhausted))
    );
}

#[test]
fn exponential_backoff_stops_on_success_or_error() {
    assert_eq!(attempts(3, &NEVER, |_| Ok(true)), (1, Ok(())));
    assert_eq!(attempts(1, &NEVER, |_| Ok(true)), (1, Ok(())));
    assert_eq!(
        attempts(3, &NEVER, |_| Err(Boom)),
        (1, Err(WaitError::Condition(Boom)))
    );
    assert_eq!(attempts(5, &NEVER, |i| Ok(i == 3)), (3, Ok(())));
}

#[test]
fn exponential_backoff_with_a_fired_stop_makes_no_attempt() {
    assert_eq!(
        attempts(5, &Stop::stopped_already(), |_| Ok(true)),
        (0, Err(WaitError::Stopped))
    );
}

#[test]
fn exponential_backoff_stopped_after_four_attempts_makes_four() {
    let stop = Stop::new();
    let out = attempts(10, &stop, |i| {
        if i == 4 {
            stop.stop();
        }
        Ok(false)
    });
    assert_eq!(out, (4, Err(WaitError::Stopped)));
}

#[test]
fn exponential_backoff_past_its_timeout_makes_no_attempt() {
    let calls = Cell::new(0);
    let out = Retry::new(instant_backoff(5))
        .timeout(Duration::ZERO)
        .clock(FakeClock::new())
        .run(&NEVER, || {
            calls.set(calls.get() + 1);
            Ok::<_, Boom>(true)
        });
    assert_eq!((calls.get(), out), (0, Err(WaitError::TimedOut)));
}

#[test]
fn exponential_backoff_sleeps_each_step_on_the_clock() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let backoff = Backoff::new(SEC).factor(2.0).steps(4);
    let mut driver = Driver::new(Retry::new(backoff).clock(clock.clone()).run_async(
        &NEVER,
        || {
            calls.set(calls.get() + 1);
            async { Ok::<_, Boom>(false) }
        },
    ));
    for (attempt, wait) in [(1, 1u32), (2, 2), (3, 4)] {
        assert!(driver.step().is_pending());
        assert_eq!(calls.get(), attempt);
        assert_eq!(clock.next_deadline(), Some(clock.now() + SEC * wait));
        clock.advance(SEC * wait);
    }
    assert_eq!(driver.finish(), Err(WaitError::Exhausted));
    assert_eq!(calls.get(), 4, "four attempts, three sleeps");
}

#[test]
fn exponential_backoff_ends_right_after_the_sleep_that_reaches_the_cap() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let backoff = Backoff::new(SEC).factor(2.0).steps(10).cap(3 * SEC);
    let mut driver = Driver::new(Retry::new(backoff).clock(clock.clone()).run_async(
        &NEVER,
        || {
            calls.set(calls.get() + 1);
            async { Ok::<_, Boom>(false) }
        },
    ));
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert!(driver.step().is_pending());
    clock.advance(2 * SEC);
    assert_eq!(driver.finish(), Err(WaitError::Exhausted));
    assert_eq!(
        calls.get(),
        2,
        "upstream's stop-at-cap rule (kubernetes#131122)"
    );
}

#[test]
fn exponential_backoff_timeout_interrupts_a_sleep() {
    let clock = FakeClock::new();
    let backoff = Backoff::new(10 * SEC).steps(5);
    let mut driver = Driver::new(
        Retry::new(backoff)
            .timeout(3 * SEC)
            .clock(clock.clone())
            .run_async(&NEVER, || async { Ok::<_, Boom>(false) }),
    );
    assert!(driver.step().is_pending());
    clock.advance(3 * SEC);
    assert_eq!(driver.finish(), Err(WaitError::TimedOut));
}

#[test]
fn exponential_backoff_with_zero_duration_still_retries() {
    let calls = Cell::new(0);
    let out = wait::exponential_backoff(Backoff::new(Duration::ZERO).steps(3), || {
        calls.set(calls.get() + 1);
        Ok::<_, Boom>(calls.get() == 3)
    });
    assert_eq!((out, calls.get()), (Ok(()), 3));
}

#[tokio::test]
async fn exponential_backoff_async_runs_in_a_task() {
    let mut calls = 0;
    let out = wait::exponential_backoff_async(
        Backoff::new(Duration::from_millis(1)).steps(3),
        &Stop::never(),
        || {
            calls += 1;
            let done = calls == 2;
            async move { Ok::<_, Boom>(done) }
        },
    )
    .await;
    assert_eq!((out, calls), (Ok(()), 2));
    let clock = FakeClock::new();
    assert!(clock.now() <= clock.now());
}
