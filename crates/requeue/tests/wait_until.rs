//! The `until` family (docs/behaviour.md §2.3, §8.1): run at once, stop checked before
//! each run and after each wait, sliding vs non-sliding periods, jitter,
//! panics. Deterministic on `FakeClock`.

mod support;

use requeue::clock::{Clock, FakeClock};
use requeue::crash::PanicPolicy;
use requeue::wait::{self, Periodic, Stop};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use support::{BOUND, Driver};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// Runs `start` on a thread that reports each run of `f` on a channel.
fn runs_until_stopped(start: impl FnOnce(Stop, Box<dyn FnMut() + Send>) + Send + 'static) {
    let stop = Stop::new();
    let (tx, rx) = mpsc::channel();
    let loop_stop = stop.clone();
    let handle = std::thread::spawn(move || {
        start(
            loop_stop,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
    });
    for _ in 0..3 {
        rx.recv_timeout(BOUND).expect("f keeps running");
    }
    stop.stop();
    handle.join().expect("the loop returns once stopped");
}

#[test]
fn until_never_runs_f_when_already_stopped() {
    let runs = Cell::new(0);
    wait::until(Duration::ZERO, &Stop::stopped_already(), || {
        runs.set(runs.get() + 1)
    });
    wait::non_sliding_until(Duration::ZERO, &Stop::stopped_already(), || {
        runs.set(runs.get() + 1)
    });
    wait::jitter_until(Duration::ZERO, 1.0, true, &Stop::stopped_already(), || {
        runs.set(runs.get() + 1)
    });
    assert_eq!(runs.get(), 0);
}

#[test]
fn until_runs_f_repeatedly_until_the_stop_fires() {
    runs_until_stopped(|stop, f| wait::until(Duration::ZERO, &stop, f));
}

#[test]
fn non_sliding_until_runs_f_repeatedly_until_the_stop_fires() {
    runs_until_stopped(|stop, f| wait::non_sliding_until(Duration::ZERO, &stop, f));
}

#[test]
fn jitter_until_runs_f_repeatedly_until_the_stop_fires() {
    runs_until_stopped(|stop, f| wait::jitter_until(Duration::ZERO, 1.0, true, &stop, f));
}

#[test]
fn until_with_a_child_stop_ends_when_the_parent_fires() {
    let parent = Stop::new();
    let (tx, rx) = mpsc::channel();
    let child = parent.child();
    let handle = std::thread::spawn(move || {
        wait::until(Duration::ZERO, &child, || {
            let _ = tx.send(());
        })
    });
    rx.recv_timeout(BOUND).expect("runs");
    parent.stop();
    handle.join().expect("ends with the parent");
}

/// `f` fires the stop during its first run; the loop must return at once
/// instead of waiting out a 30 s period (nobody advances the fake clock).
fn returns_at_once_when_f_stops(build: impl FnOnce(FakeClock) -> Periodic + Send + 'static) {
    let clock = FakeClock::new();
    let (done_tx, done_rx) = mpsc::channel();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let periodic = build(clock.clone());
    std::thread::spawn(move || {
        let stop = Stop::new();
        periodic.run(&stop, || {
            counted.fetch_add(1, Ordering::SeqCst);
            stop.stop();
        });
        {
            let _ = done_tx.send(());
        };
    });
    done_rx
        .recv_timeout(BOUND)
        .expect("returned without the period passing");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!clock.has_waiters());
}

#[test]
fn until_returns_immediately_when_f_fires_the_stop() {
    returns_at_once_when_f_stops(|c| Periodic::new(30 * SEC).clock(c));
}

#[test]
fn jitter_until_returns_immediately_when_f_fires_the_stop() {
    returns_at_once_when_f_stops(|c| Periodic::new(30 * SEC).jitter(1.0).clock(c));
}

#[test]
fn non_sliding_until_returns_immediately_when_f_fires_the_stop() {
    returns_at_once_when_f_stops(|c| Periodic::new(30 * SEC).sliding(false).clock(c));
}

#[test]
fn jitter_until_recovers_panics_when_really_crash_is_off() {
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let policy = PanicPolicy::inherit()
        .really_crash(false)
        .on_panic(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        });
    let stop = Stop::new();
    let mut runs = 0;
    Periodic::new(Duration::ZERO)
        .jitter(1.0)
        .panics(policy)
        .run(&stop, || {
            runs += 1;
            if runs < 3 {
                panic!("run {runs}");
            }
            stop.stop();
        });
    assert_eq!(runs, 3);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}

#[test]
fn until_re_raises_a_panic_by_default() {
    let caught = std::panic::catch_unwind(|| {
        Periodic::new(Duration::ZERO)
            .panics(PanicPolicy::inherit().really_crash(true))
            .run(&Stop::never(), || panic!("reconcile failed"))
    });
    let payload = caught.expect_err("the panic propagates");
    assert_eq!(requeue::crash::panic_message(&*payload), "reconcile failed");
}

#[test]
fn f_runs_at_once_and_then_after_each_period() {
    let clock = FakeClock::new();
    let stop = Stop::new();
    let runs = Cell::new(0);
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .clock(clock.clone())
            .run_async(&stop, || {
                runs.set(runs.get() + 1);
                async {}
            }),
    );
    assert!(driver.step().is_pending());
    assert_eq!(runs.get(), 1, "f runs at once");
    clock.advance(SEC - MS);
    assert!(!driver.woken());
    clock.advance(MS);
    assert!(driver.woken());
    assert!(driver.step().is_pending());
    assert_eq!(runs.get(), 2);
    stop.stop();
    assert!(driver.step().is_ready());
    assert_eq!(runs.get(), 2);
}

#[test]
fn jitter_until_with_a_negative_factor_waits_exactly_the_period() {
    let clock = FakeClock::new();
    let start = clock.now();
    let stop = Stop::new();
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .jitter(-1.0)
            .clock(clock.clone())
            .run_async(&stop, || async {}),
    );
    for round in 1..=3u32 {
        assert!(driver.step().is_pending());
        assert_eq!(clock.next_deadline(), Some(start + SEC * round));
        clock.advance(SEC);
    }
}

#[test]
fn jitter_until_with_factor_one_waits_between_one_and_two_periods() {
    let clock = FakeClock::new();
    let stop = Stop::new();
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .jitter(1.0)
            .clock(clock.clone())
            .run_async(&stop, || async {}),
    );
    for _ in 0..20 {
        assert!(driver.step().is_pending());
        let wait = clock.next_deadline().expect("waiting") - clock.now();
        assert!(wait >= SEC && wait <= 2 * SEC, "{wait:?}");
        clock.advance(wait);
    }
}

/// `f` takes 300 ms (it moves the fake clock itself).
fn next_deadline_after_slow_f(sliding: bool) -> Duration {
    let clock = FakeClock::new();
    let start = clock.now();
    let stop = Stop::new();
    let inner = clock.clone();
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .sliding(sliding)
            .clock(clock.clone())
            .run_async(&stop, move || {
                inner.advance(300 * MS);
                async {}
            }),
    );
    assert!(driver.step().is_pending());
    clock.next_deadline().expect("waiting") - start
}

#[test]
fn sliding_until_starts_the_period_after_f_returns() {
    assert_eq!(next_deadline_after_slow_f(true), 1300 * MS);
}

#[test]
fn non_sliding_until_starts_the_period_before_f_runs() {
    assert_eq!(next_deadline_after_slow_f(false), SEC);
}

#[test]
fn non_sliding_until_does_not_make_up_missed_periods() {
    let clock = FakeClock::new();
    let start = clock.now();
    let stop = Stop::new();
    let inner = clock.clone();
    let runs = Cell::new(0);
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .sliding(false)
            .clock(clock.clone())
            .run_async(&stop, || {
                runs.set(runs.get() + 1);
                if runs.get() == 1 {
                    inner.advance(2500 * MS); // overruns two and a half periods
                }
                async {}
            }),
    );
    assert!(driver.step().is_pending());
    assert_eq!(runs.get(), 2, "the overrun is followed at once by one run");
    assert_eq!(
        clock.next_deadline(),
        Some(start + 3500 * MS),
        "then one period from that run's start, not a burst of catch-up runs"
    );
}

#[test]
fn a_stop_that_races_a_due_timer_wins() {
    let clock = FakeClock::new();
    let stop = Stop::new();
    let runs = Cell::new(0);
    let mut driver = Driver::new(
        Periodic::new(SEC)
            .clock(clock.clone())
            .run_async(&stop, || {
                runs.set(runs.get() + 1);
                async {}
            }),
    );
    assert!(driver.step().is_pending());
    clock.advance(SEC); // the timer is due ...
    stop.stop(); // ... and the stop fires before the loop wakes
    assert!(driver.step().is_ready());
    assert_eq!(runs.get(), 1, "no extra run after the stop");
    assert!(!clock.has_waiters());
}

#[test]
fn backoff_until_waits_the_managers_delays() {
    let clock = FakeClock::new();
    let start = clock.now();
    let stop = Stop::new();
    let manager =
        wait::ExponentialBackoffManager::new(SEC, 4 * SEC, 60 * SEC, 2.0, 0.0, clock.clone());
    let mut driver = Driver::new(
        Periodic::with_backoff(manager)
            .clock(clock.clone())
            .run_async(&stop, || async {}),
    );
    let mut elapsed = Duration::ZERO;
    for expected in [1, 2, 4, 4] {
        assert!(driver.step().is_pending());
        let wait = clock.next_deadline().expect("waiting") - clock.now();
        assert_eq!(wait, SEC * expected);
        clock.advance(wait);
        elapsed += wait;
    }
    assert_eq!(clock.now() - start, elapsed);
}

#[test]
fn a_blocking_until_on_a_fake_clock_steps_one_round_per_advance() {
    let clock = FakeClock::new();
    let stop = Stop::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let handle = {
        let (clock, stop, runs) = (clock.clone(), stop.clone(), runs.clone());
        std::thread::spawn(move || {
            Periodic::new(SEC).clock(clock).run(&stop, || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        })
    };
    for round in 1..=3 {
        assert!(clock.wait_for_waiters(1, BOUND));
        assert_eq!(runs.load(Ordering::SeqCst), round);
        clock.advance(SEC);
    }
    assert!(clock.wait_for_waiters(1, BOUND));
    stop.stop();
    handle.join().expect("stops");
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[test]
fn forever_runs_until_its_thread_is_abandoned() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        wait::forever(Duration::ZERO, move || {
            let _ = tx.send(());
        })
    });
    for _ in 0..3 {
        rx.recv_timeout(BOUND).expect("forever keeps running");
    }
}
