//! `requeue demo`: the wait loops on the real clock, narrated.
//!
//! Until the work queue lands this shows what the library offers today: a
//! jittered heartbeat, a non-sliding ticker, a poll that waits for another
//! thread, an exponential retry, and a panic that is contained.

use requeue::crash::PanicPolicy;
use requeue::wait::{self, Backoff, Group, Periodic, Poller, Retry, Stop, WaitError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn run(duration: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let say = move |what: &str| println!("[{:>7.3}s] {what}", start.elapsed().as_secs_f64());
    say(&format!("requeue demo: wait loops for {duration:?}"));

    let stop = Stop::new();
    let group = Group::new();
    let beats = Arc::new(AtomicUsize::new(0));
    let ticks = Arc::new(AtomicUsize::new(0));
    let period = (duration / 6).max(Duration::from_millis(10));

    {
        let beats = beats.clone();
        group.start_with_stop(&stop, move |stop| {
            wait::jitter_until(period, 0.2, true, &stop, || {
                let n = beats.fetch_add(1, Ordering::SeqCst) + 1;
                say(&format!(
                    "heartbeat #{n} (jitter_until, period {period:?} + up to 20 %)"
                ));
            })
        })?;
    }
    {
        let ticks = ticks.clone();
        group.start_with_stop(&stop, move |stop| {
            wait::non_sliding_until(period / 2, &stop, || {
                ticks.fetch_add(1, Ordering::SeqCst);
            })
        })?;
    }

    let ready = Arc::new(AtomicBool::new(false));
    {
        let ready = ready.clone();
        let delay = duration / 3;
        group.start(move || {
            std::thread::sleep(delay);
            ready.store(true, Ordering::SeqCst);
        })?;
    }
    let polled = Poller::every(Duration::from_millis(20))
        .immediate(true)
        .timeout(duration)
        .run(&stop, || {
            Ok::<_, std::convert::Infallible>(ready.load(Ordering::SeqCst))
        });
    match polled {
        Ok(()) => say("poll_until_timeout: the other thread became ready"),
        Err(e) => say(&format!("poll_until_timeout ended early: {e:?}")),
    }

    let mut attempts = 0;
    let retried = Retry::new(
        Backoff::new(Duration::from_millis(10))
            .factor(2.0)
            .jitter(0.1)
            .steps(5),
    )
    .run(&stop, || {
        attempts += 1;
        say(&format!("exponential_backoff: attempt {attempts}"));
        Ok::<bool, std::convert::Infallible>(attempts >= 4)
    });
    say(&format!(
        "exponential_backoff finished after {attempts} attempts: {retried:?}"
    ));

    let panics = Arc::new(AtomicUsize::new(0));
    let contain = {
        let panics = panics.clone();
        PanicPolicy::contain().on_panic(move |report| {
            panics.fetch_add(1, Ordering::SeqCst);
            say(&format!("contained a panic: {}", report.message()));
        })
    };
    let local = Stop::new();
    let mut runs = 0;
    Periodic::new(Duration::from_millis(5))
        .panics(contain)
        .run(&local, || {
            runs += 1;
            if runs == 3 {
                local.stop();
            }
            if runs < 3 {
                panic!("reconcile #{runs} blew up");
            }
        });

    let remaining = duration.saturating_sub(start.elapsed());
    let timed_out = !stop.wait_timeout(remaining);
    stop.stop();
    group.wait();

    let stopped_poll = wait::poll_until(Duration::from_millis(1), &stop, || {
        Ok::<_, WaitError<()>>(false)
    });
    println!();
    println!("summary");
    println!(
        "  heartbeats (jitter_until)      {}",
        beats.load(Ordering::SeqCst)
    );
    println!(
        "  ticks (non_sliding_until)      {}",
        ticks.load(Ordering::SeqCst)
    );
    println!("  retry attempts                 {attempts}");
    println!(
        "  panics contained               {}",
        panics.load(Ordering::SeqCst)
    );
    println!("  poll after stop                {stopped_poll:?}");
    println!(
        "  ran for                        {:.2?} (timer {})",
        start.elapsed(),
        if timed_out { "expired" } else { "stopped" }
    );
    Ok(())
}
