//! The async forms on a real runtime, mixed with blocking threads on one
//! `FakeClock`, and `Group`.

mod support;

use requeue::clock::FakeClock;
use requeue::wait::{self, Group, Periodic, Poller, Stop, WaitError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::BOUND;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_task_and_a_thread_wait_on_the_same_fake_clock() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let clock = FakeClock::new();
    let stop = Stop::new();
    let task_runs = Arc::new(AtomicUsize::new(0));
    let thread_runs = Arc::new(AtomicUsize::new(0));
    let task = {
        let (clock, stop, runs) = (clock.clone(), stop.clone(), task_runs.clone());
        runtime.spawn(async move {
            Periodic::new(SEC)
                .clock(clock)
                .run_async(&stop, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
        })
    };
    let thread = {
        let (clock, stop, runs) = (clock.clone(), stop.clone(), thread_runs.clone());
        std::thread::spawn(move || {
            Periodic::new(SEC).clock(clock).run(&stop, || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        })
    };
    for round in 1..=3 {
        assert!(clock.wait_for_waiters(2, BOUND));
        assert_eq!(task_runs.load(Ordering::SeqCst), round);
        assert_eq!(thread_runs.load(Ordering::SeqCst), round);
        clock.advance(SEC);
    }
    assert!(clock.wait_for_waiters(2, BOUND));
    stop.stop();
    thread.join().expect("thread stops");
    runtime.block_on(task).expect("task stops");
}

#[tokio::test]
async fn until_async_runs_until_stopped_from_another_task() {
    let stop = Stop::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let inner = stop.clone();
    wait::until_async(Duration::ZERO, &stop, move || {
        if counted.fetch_add(1, Ordering::SeqCst) == 4 {
            inner.stop();
        }
        async {}
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_zero_period_async_loop_lets_other_tasks_run() {
    let stop = Stop::new();
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.stop();
        })
    };
    // On a current-thread runtime this only ends if the loop yields.
    wait::non_sliding_until_async(Duration::ZERO, &stop, || async {}).await;
    stopper.await.expect("stopper ran");
}

#[tokio::test]
async fn async_wrappers_return_typed_results() {
    let stop = Stop::new();
    let mut n = 0;
    let out = wait::poll_immediate_until_async(Duration::from_millis(1), &stop, || {
        n += 1;
        let done = n == 3;
        async move { Ok::<_, std::io::Error>(done) }
    })
    .await;
    assert!(out.is_ok());
    let timed_out = wait::poll_until_timeout_async(
        Duration::from_millis(1),
        Duration::from_millis(5),
        false,
        &stop,
        || async { Ok::<_, std::io::Error>(false) },
    )
    .await;
    assert!(matches!(timed_out, Err(WaitError::TimedOut)));
    let already = Stop::stopped_already();
    wait::jitter_until_async(Duration::from_secs(3600), 0.5, false, &already, || async {
        unreachable!("never runs when already stopped")
    })
    .await;
    let from_stream = wait::wait_for_async(support::Ticks::new(1), &stop, || async {
        Ok::<_, ()>(false)
    })
    .await;
    assert_eq!(from_stream, Err(WaitError::TimedOut));
}

#[tokio::test]
async fn dropping_an_async_poll_mid_wait_leaves_no_timer_behind() {
    let clock = FakeClock::new();
    let stop = Stop::new();
    {
        let poll = Poller::every(SEC)
            .clock(clock.clone())
            .run_async(&stop, || async { Ok::<_, ()>(false) });
        let mut poll = std::pin::pin!(poll);
        let pending = futures_poll_once(poll.as_mut()).await;
        assert!(pending);
        assert!(clock.has_waiters());
    }
    assert!(!clock.has_waiters());
}

async fn futures_poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut fut = Some(fut);
    std::future::poll_fn(|cx| {
        let pending = fut
            .as_mut()
            .expect("polled once")
            .as_mut()
            .poll(cx)
            .is_pending();
        std::task::Poll::Ready(pending)
    })
    .await
}

#[test]
fn group_waits_for_every_thread() {
    let group = Group::new();
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Stop::new();
    for _ in 0..4 {
        let done = done.clone();
        group
            .start_with_stop(&stop, move |stop| {
                stop.wait();
                done.fetch_add(1, Ordering::SeqCst);
            })
            .expect("thread");
    }
    assert_eq!(group.running(), 4);
    stop.stop();
    group.wait();
    assert_eq!(done.load(Ordering::SeqCst), 4);
    assert_eq!(group.running(), 0);
}

#[test]
fn group_re_raises_a_member_panic_after_all_finish() {
    let group = Group::new();
    let finished = Arc::new(AtomicUsize::new(0));
    group.start(|| panic!("member failed")).expect("thread");
    let counter = finished.clone();
    group
        .start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .expect("thread");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.wait()));
    let payload = caught.expect_err("the member panic is re-raised");
    assert_eq!(requeue::crash::panic_message(&*payload), "member failed");
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    group.wait(); // the panic was handed out once
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn group_waits_for_tasks_and_threads_together() {
    let group = Group::new();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let done = done.clone();
        group.spawn(async move {
            tokio::task::yield_now().await;
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    let counter = done.clone();
    group
        .start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .expect("thread");
    group.wait_async().await;
    assert_eq!(done.load(Ordering::SeqCst), 4);
}
