//! The loops on the real clock: they must wait at least what they are told.
//! Lower bounds only, so these never flake on a loaded machine.

use requeue::clock::RealClock;
use requeue::wait::{Backoff, ExponentialBackoffManager, JitteredBackoffManager, Periodic, Stop};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

fn elapsed_for_rounds(periodic: Periodic, rounds: usize) -> Duration {
    let stop = Stop::new();
    let mut runs = 0;
    let start = Instant::now();
    periodic.run(&stop, || {
        runs += 1;
        if runs == rounds {
            stop.stop();
        }
    });
    start.elapsed()
}

#[test]
fn jittered_manager_on_the_real_clock_waits_at_least_its_period() {
    let took = elapsed_for_rounds(
        Periodic::with_backoff(JitteredBackoffManager::new(MS, 1.0)),
        4,
    );
    assert!(took >= 3 * MS, "{took:?}");
}

#[test]
fn exponential_manager_on_the_real_clock_waits_its_growing_delays() {
    let manager =
        ExponentialBackoffManager::new(MS, 10 * MS, Duration::from_secs(60), 2.0, 0.0, RealClock);
    let took = elapsed_for_rounds(Periodic::with_backoff(manager), 5);
    assert!(took >= (1 + 2 + 4 + 8) * MS, "{took:?}");
}

#[test]
fn delay_with_reset_on_the_real_clock_honours_its_delays() {
    let delays = Backoff::new(MS)
        .factor(2.0)
        .steps(10)
        .jitter(1.0)
        .delay_with_reset(RealClock, Duration::from_secs(60));
    let took = elapsed_for_rounds(Periodic::with_backoff(delays), 4);
    assert!(took >= (1 + 2 + 4) * MS, "{took:?}");
}

#[tokio::test]
async fn async_loops_on_the_real_clock_wait_too() {
    let stop = Stop::new();
    let mut runs = 0;
    let start = Instant::now();
    Periodic::new(2 * MS)
        .run_async(&stop, || {
            runs += 1;
            if runs == 3 {
                stop.stop();
            }
            async {}
        })
        .await;
    assert!(start.elapsed() >= 4 * MS);
}
