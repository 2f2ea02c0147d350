//! Polling (docs/behaviour.md §2.6–§2.8, §8.1): the modern loop's ordering, the
//! legacy functions' timing, `wait_for` with tick streams, and typed errors.

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::crash::PanicPolicy;
use requeue::wait::{self, Backoff, Poller, Stop, WaitError};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;
use support::{BOUND, Driver, Silent, Ticks};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

#[derive(Debug, PartialEq, Eq)]
struct Boom;

static NEVER: Stop = Stop::never();

type Outcome = Result<(), WaitError<Boom>>;

/// A condition answering from a script by attempt number (1-based), counting calls.
fn scripted(
    calls: &Cell<usize>,
    answer: impl Fn(usize) -> Result<bool, Boom>,
) -> impl FnMut() -> Result<bool, Boom> {
    move || {
        calls.set(calls.get() + 1);
        answer(calls.get())
    }
}

fn run_back_to_back(
    immediate: bool,
    stop: &Stop,
    answer: impl Fn(usize) -> Result<bool, Boom>,
) -> (usize, Outcome) {
    let calls = Cell::new(0);
    let out = Poller::every(Duration::ZERO)
        .immediate(immediate)
        .run(stop, scripted(&calls, answer));
    (calls.get(), out)
}

// --- the modern loop (loopConditionUntilContext) ------------------------------

#[test]
fn loop_ends_when_the_condition_holds_on_attempt_1_2_or_100() {
    for n in [1, 2, 100] {
        let (calls, out) = run_back_to_back(false, &NEVER, |i| Ok(i == n));
        assert_eq!((calls, out), (n, Ok(())));
    }
}

#[test]
fn loop_returns_the_condition_error_after_one_attempt() {
    let (calls, out) = run_back_to_back(false, &NEVER, |_| Err(Boom));
    assert_eq!((calls, out), (1, Err(WaitError::Condition(Boom))));
}

#[test]
fn loop_with_a_fired_stop_makes_no_attempt_unless_immediate() {
    let stopped = Stop::stopped_already();
    assert_eq!(
        run_back_to_back(false, &stopped, |_| Ok(true)),
        (0, Err(WaitError::Stopped))
    );
}

#[test]
fn loop_with_a_fired_stop_and_immediate_makes_exactly_one_attempt() {
    let stopped = Stop::stopped_already();
    assert_eq!(run_back_to_back(true, &stopped, |_| Ok(true)), (1, Ok(())));
    assert_eq!(
        run_back_to_back(true, &stopped, |_| Err(Boom)),
        (1, Err(WaitError::Condition(Boom)))
    );
    assert_eq!(
        run_back_to_back(true, &stopped, |_| Ok(false)),
        (1, Err(WaitError::Stopped))
    );
}

#[test]
fn loop_stopped_after_five_attempts_makes_exactly_five() {
    for immediate in [false, true] {
        let stop = Stop::new();
        let (calls, out) = run_back_to_back(immediate, &stop, |i| {
            if i == 5 {
                stop.stop();
            }
            Ok(false)
        });
        assert_eq!(
            (calls, out),
            (5, Err(WaitError::Stopped)),
            "immediate {immediate}"
        );
    }
}

#[test]
fn loop_with_a_passed_deadline_makes_no_attempt_unless_immediate() {
    let calls = Cell::new(0);
    let out = Poller::every(SEC)
        .timeout(Duration::ZERO)
        .clock(FakeClock::new())
        .run(&NEVER, scripted(&calls, |_| Ok(false)));
    assert_eq!((calls.get(), out), (0, Err(WaitError::TimedOut)));
    let out = Poller::every(SEC)
        .timeout(Duration::ZERO)
        .immediate(true)
        .clock(FakeClock::new())
        .run(&NEVER, scripted(&calls, |_| Ok(false)));
    assert_eq!((calls.get(), out), (1, Err(WaitError::TimedOut)));
}

#[test]
fn loop_with_a_deadline_shorter_than_the_period_makes_only_the_immediate_attempt() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::every(2 * SEC)
            .timeout(SEC)
            .immediate(true)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                let answer = scripted(&calls, |_| Ok(false))();
                async move { answer }
            }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert_eq!(driver.finish(), Err(WaitError::TimedOut));
    assert_eq!(calls.get(), 1);
}

#[test]
fn loop_without_immediate_waits_one_period_then_returns_the_error() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::every(SEC)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                async { Err::<bool, _>(Boom) }
            }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC - MS);
    assert!(driver.step().is_pending());
    assert_eq!(calls.get(), 0, "no call before the period");
    clock.advance(MS);
    assert_eq!(driver.finish(), Err(WaitError::Condition(Boom)));
    assert_eq!(calls.get(), 1);
}

/// 1 s timeout, 200 ms period, a condition taking 200 ms that succeeds on its
/// 4th attempt: non-sliding gets there, sliding runs out of time after 3.
fn slow_condition_attempts(sliding: bool) -> (usize, Outcome) {
    let clock = FakeClock::new();
    let inner = clock.clone();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::with_delays(move || 200 * MS)
            .sliding(sliding)
            .immediate(true)
            .timeout(SEC)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                inner.advance(200 * MS);
                let done = calls.get() == 4;
                async move { Ok(done) }
            }),
    );
    loop {
        if let Poll::Ready(out) = driver.step() {
            return (calls.get(), out);
        }
        let next = clock
            .next_deadline()
            .expect("a pending poll waits on the clock");
        clock.set(next);
    }
}

#[test]
fn non_sliding_loop_keeps_cadence_with_a_slow_condition() {
    assert_eq!(slow_condition_attempts(false), (4, Ok(())));
}

#[test]
fn sliding_loop_counts_the_period_after_a_slow_condition() {
    assert_eq!(slow_condition_attempts(true), (3, Err(WaitError::TimedOut)));
}

#[test]
fn loop_waits_exactly_the_delays_it_is_given_and_none_after_immediate_success() {
    let clock = FakeClock::new();
    let given = Arc::new(AtomicU32::new(0));
    let counter = given.clone();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::with_delays(move || SEC * (counter.fetch_add(1, Ordering::SeqCst) + 1))
            .sliding(true)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                let done = calls.get() == 4;
                async move { Ok::<_, Boom>(done) }
            }),
    );
    for secs in 1..=4u32 {
        assert!(driver.step().is_pending());
        assert_eq!(clock.next_deadline(), Some(clock.now() + SEC * secs));
        clock.advance(SEC * secs);
    }
    assert_eq!(driver.finish(), Ok(()));
    assert_eq!(given.load(Ordering::SeqCst), 4);

    let requested = Arc::new(AtomicU32::new(0));
    let counter = requested.clone();
    let out = Poller::with_delays(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        SEC
    })
    .sliding(true)
    .immediate(true)
    .clock(FakeClock::new())
    .run(&NEVER, || Ok::<_, Boom>(true));
    assert_eq!(
        (out, requested.load(Ordering::SeqCst)),
        (Ok(()), 0),
        "immediate success asks for no delay"
    );
}

#[test]
fn backoff_chooses_growing_delays_a_ticker_or_no_timer_like_upstream() {
    let delays = format!("{:?}", Poller::with_backoff(Backoff::new(MS).jitter(1.0)));
    let ticker = format!("{:?}", Poller::with_backoff(Backoff::new(MS)));
    let none = format!("{:?}", Poller::with_backoff(Backoff::default()));
    assert!(delays.contains("\"delays\""), "{delays}");
    assert!(ticker.contains("every 1ms"), "{ticker}");
    assert!(none.contains("every 0ns"), "{none}");
}

#[test]
fn ticker_delivers_one_missed_tick_at_once_and_drops_the_rest() {
    let clock = FakeClock::new();
    let start = clock.now();
    let inner = clock.clone();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::every(SEC)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                if calls.get() == 1 {
                    inner.advance(2500 * MS); // the first check overruns 2.5 ticks
                }
                async { Ok::<_, Boom>(false) }
            }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert!(driver.step().is_pending());
    assert_eq!(
        calls.get(),
        2,
        "the tick missed during the slow check comes at once"
    );
    assert_eq!(
        clock.next_deadline(),
        Some(start + 4 * SEC),
        "then back on the grid"
    );
}

#[test]
fn a_contained_panic_counts_as_not_done() {
    let calls = Cell::new(0);
    let out = Poller::every(Duration::ZERO)
        .panics(PanicPolicy::contain())
        .run(&NEVER, || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                panic!("flaky condition");
            }
            Ok::<_, Boom>(true)
        });
    assert_eq!((out, calls.get()), (Ok(()), 3));
}

// --- the legacy functions (Poll, PollImmediate, PollUntil, WaitFor ...) -----

fn legacy_on(clock: &FakeClock, interval: Duration, timeout: Duration, immediate: bool) -> Poller {
    Poller::every(interval)
        .legacy(true)
        .sliding(true)
        .immediate(immediate)
        .timeout(timeout)
        .clock(clock.clone())
}

#[test]
fn poller_of_1ms_with_2ms_timeout_checks_at_most_three_times() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(legacy_on(&clock, MS, 2 * MS, false).run_async(&NEVER, || {
        calls.set(calls.get() + 1);
        async { Ok::<_, Boom>(false) }
    }));
    let mut out = driver.step();
    while out.is_pending() {
        clock.advance(MS);
        out = driver.step();
    }
    assert_eq!(out, Poll::Ready(Err(WaitError::TimedOut)));
    assert!(
        calls.get() <= 3 && calls.get() >= 2,
        "{} checks",
        calls.get()
    );
}

#[test]
fn poll_checks_one_interval_in_and_stops_on_success() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        legacy_on(&clock, SEC, 10 * SEC, false).run_async(&NEVER, || {
            calls.set(calls.get() + 1);
            async { Ok::<_, Boom>(true) }
        }),
    );
    assert!(driver.step().is_pending());
    assert_eq!(calls.get(), 0);
    clock.advance(SEC);
    assert_eq!(driver.finish(), Ok(()));
    assert_eq!(calls.get(), 1);
}

#[test]
fn poll_returns_the_condition_error_after_one_tick() {
    let clock = FakeClock::new();
    let mut driver = Driver::new(
        legacy_on(&clock, SEC, 10 * SEC, false)
            .run_async(&NEVER, || async { Err::<bool, _>(Boom) }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert_eq!(driver.finish(), Err(WaitError::Condition(Boom)));
}

#[test]
fn poll_immediate_succeeds_or_fails_without_waiting() {
    assert_eq!(
        wait::poll_immediate(SEC * 3600, SEC, || Ok::<_, Boom>(true)),
        Ok(())
    );
    assert_eq!(
        wait::poll_immediate(SEC * 3600, SEC, || Err::<bool, _>(Boom)),
        Err(WaitError::Condition(Boom))
    );
}

#[test]
fn poll_runs_the_condition_once_more_when_the_timeout_passes() {
    let clock = FakeClock::new();
    let start = clock.now();
    let at = Cell::new(Vec::new());
    let mut driver = Driver::new(legacy_on(&clock, 2 * SEC, 5 * SEC, false).run_async(
        &NEVER,
        || {
            let mut seen = at.take();
            seen.push(clock.now() - start);
            at.set(seen);
            async { Ok::<_, Boom>(false) }
        },
    ));
    let mut out = driver.step();
    while out.is_pending() {
        clock.advance(SEC);
        out = driver.step();
    }
    assert_eq!(out, Poll::Ready(Err(WaitError::TimedOut)));
    assert_eq!(at.take(), [2 * SEC, 4 * SEC, 5 * SEC]);
}

#[test]
fn poll_with_an_interval_longer_than_the_timeout_checks_only_at_the_timeout() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        legacy_on(&clock, 10 * SEC, SEC, false).run_async(&NEVER, || {
            calls.set(calls.get() + 1);
            async { Ok::<_, Boom>(false) }
        }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert_eq!(driver.finish(), Err(WaitError::TimedOut));
    assert_eq!(calls.get(), 1);
}

#[test]
fn legacy_poll_drops_ticks_that_pass_while_the_condition_runs() {
    let clock = FakeClock::new();
    let start = clock.now();
    let inner = clock.clone();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::every(SEC)
            .legacy(true)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                inner.advance(2500 * MS);
                async { Ok::<_, Boom>(false) }
            }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC);
    assert!(driver.step().is_pending());
    assert_eq!(calls.get(), 1, "no catch-up run");
    assert_eq!(clock.next_deadline(), Some(start + 4 * SEC));
}

#[test]
fn poll_infinite_keeps_checking_until_the_condition_holds() {
    let calls = Cell::new(0);
    let out = wait::poll_infinite(Duration::ZERO, scripted(&calls, |i| Ok(i == 50)));
    assert_eq!((out, calls.get()), (Ok(()), 50));
    let out = wait::poll_immediate_infinite(Duration::ZERO, scripted(&calls, |i| Ok(i == 60)));
    assert_eq!((out, calls.get()), (Ok(()), 60));
}

#[test]
fn poll_until_returns_stopped_once_its_stop_fires() {
    let stop = Stop::new();
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || wait::poll_until(SEC * 3600, &stop, || Ok::<_, Boom>(false)))
    };
    stop.stop();
    assert_eq!(handle.join().expect("returns"), Err(WaitError::Stopped));
}

#[test]
fn poll_immediate_until_follows_the_upstream_table() {
    let cases: Vec<(&str, bool, usize, Outcome)> = vec![
        (
            "first-call error",
            false,
            1,
            Err(WaitError::Condition(Boom)),
        ),
        ("first-call success", false, 1, Ok(())),
        ("stopped and not done", true, 1, Err(WaitError::Stopped)),
        ("success on the 4th", false, 4, Ok(())),
        ("stopped after the 4th", false, 4, Err(WaitError::Stopped)),
    ];
    for (name, pre_stopped, expected_calls, expected) in cases {
        let stop = if pre_stopped {
            Stop::stopped_already()
        } else {
            Stop::new()
        };
        let calls = Cell::new(0);
        let out = wait::poll_immediate_until(Duration::ZERO, &stop, || {
            calls.set(calls.get() + 1);
            match (name, calls.get()) {
                ("first-call error", _) => Err(Boom),
                ("first-call success", _) => Ok(true),
                ("success on the 4th", n) => Ok(n == 4),
                ("stopped after the 4th", 4) => {
                    stop.stop();
                    Ok(false)
                }
                _ => Ok(false),
            }
        });
        assert_eq!((calls.get(), out), (expected_calls, expected), "{name}");
    }
}

#[test]
fn poll_until_timeout_times_out_without_a_final_check() {
    let clock = FakeClock::new();
    let calls = Cell::new(0);
    let mut driver = Driver::new(
        Poller::every(SEC)
            .timeout(3 * SEC)
            .clock(clock.clone())
            .run_async(&NEVER, || {
                calls.set(calls.get() + 1);
                async { Ok::<_, Boom>(false) }
            }),
    );
    let mut out = driver.step();
    while out.is_pending() {
        clock.advance(SEC);
        out = driver.step();
    }
    assert_eq!(out, Poll::Ready(Err(WaitError::TimedOut)));
    assert_eq!(
        calls.get(),
        2,
        "ticks at 1 s and 2 s; the 3 s tick loses to the timeout"
    );
}

#[test]
fn poll_until_cancel_and_timeout_wrappers_use_the_real_clock() {
    assert_eq!(
        wait::poll_until_cancel(Duration::ZERO, true, &NEVER, || Ok::<_, Boom>(true)),
        Ok(())
    );
    assert_eq!(
        wait::poll_until_timeout(MS, Duration::ZERO, false, &NEVER, || Ok::<_, Boom>(true)),
        Err(WaitError::TimedOut)
    );
    assert_eq!(wait::poll(MS, SEC, || Ok::<_, Boom>(true)), Ok(()));
}

#[test]
fn wait_for_checks_once_per_tick_and_once_more_when_the_ticks_end() {
    let calls = Cell::new(0);
    assert_eq!(
        wait::wait_for(Ticks::new(2), &NEVER, scripted(&calls, |_| Ok(true))),
        Ok(())
    );
    assert_eq!(calls.replace(0), 1);
    assert_eq!(
        wait::wait_for(Ticks::new(2), &NEVER, scripted(&calls, |_| Ok(false))),
        Err(WaitError::TimedOut)
    );
    assert_eq!(calls.replace(0), 3);
    assert_eq!(
        wait::wait_for(Ticks::new(2), &NEVER, scripted(&calls, |_| Err(Boom))),
        Err(WaitError::Condition(Boom))
    );
    assert_eq!(calls.replace(0), 1);
}

#[test]
fn wait_for_on_already_ended_ticks_checks_exactly_once() {
    let calls = Cell::new(0);
    assert_eq!(
        wait::wait_for(Ticks::new(0), &NEVER, scripted(&calls, |_| Ok(true))),
        Ok(())
    );
    assert_eq!(
        wait::wait_for(Ticks::new(0), &NEVER, scripted(&calls, |_| Err(Boom))),
        Err(WaitError::Condition(Boom))
    );
    assert_eq!(
        wait::wait_for(Ticks::new(0), &NEVER, scripted(&calls, |_| Ok(false))),
        Err(WaitError::TimedOut)
    );
    assert_eq!(calls.get(), 3);
}

#[test]
fn wait_for_with_a_fired_stop_and_silent_ticks_returns_stopped_without_checking() {
    let calls = Cell::new(0);
    let out = wait::wait_for(
        Silent,
        &Stop::stopped_already(),
        scripted(&calls, |_| Ok(true)),
    );
    assert_eq!((out, calls.get()), (Err(WaitError::Stopped), 0));
}

#[test]
fn wait_for_drops_the_tick_source_when_it_returns() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut ticks = Ticks::new(5);
    ticks.dropped = Some(dropped.clone());
    assert_eq!(
        wait::wait_for(ticks, &NEVER, || Ok::<_, Boom>(true)),
        Ok(())
    );
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn wait_for_stopped_after_two_ticks_makes_two_checks() {
    let stop = Stop::new();
    let calls = Cell::new(0);
    let out = wait::wait_for(Ticks::new(10), &stop, || {
        calls.set(calls.get() + 1);
        if calls.get() == 2 {
            stop.stop();
        }
        Ok::<_, Boom>(false)
    });
    assert_eq!((out, calls.get()), (Err(WaitError::Stopped), 2));
}

#[test]
fn legacy_poll_with_a_fired_stop_reports_stopped_not_timeout() {
    let calls = Cell::new(0);
    let out = wait::poll_immediate_until(
        SEC,
        &Stop::stopped_already(),
        scripted(&calls, |_| Ok(false)),
    );
    assert_eq!((out, calls.get()), (Err(WaitError::Stopped), 1));
    let out = wait::poll_until(
        SEC,
        &Stop::stopped_already(),
        scripted(&calls, |_| Ok(true)),
    );
    assert_eq!((out, calls.get()), (Err(WaitError::Stopped), 1));
}

#[test]
fn a_blocking_poll_on_a_fake_clock_advances_with_the_clock() {
    let clock = FakeClock::new();
    let handle = {
        let clock = clock.clone();
        std::thread::spawn(move || {
            let mut calls = 0;
            let out = Poller::every(SEC).clock(clock).run(&NEVER, || {
                calls += 1;
                Ok::<_, Boom>(calls == 3)
            });
            (out, calls)
        })
    };
    for _ in 0..3 {
        assert!(clock.wait_for_waiters(1, BOUND));
        clock.advance(SEC);
    }
    assert_eq!(handle.join().expect("done"), (Ok(()), 3));
}

#[test]
fn interrupted_errors_are_recognised() {
    let out: Outcome = Err(WaitError::TimedOut);
    assert!(out.as_ref().is_err_and(WaitError::is_interrupted));
    assert!(!WaitError::Condition(Boom).is_interrupted());
    let clock = FakeClock::new();
    assert!(clock.now() <= clock.now());
}
