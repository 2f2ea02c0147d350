//! Runs a workload's threads together: all start at one signal, the clock
//! stops when the last one finishes, and the threads stay alive until the
//! process's CPU time has been read. A watchdog turns a hang into an error
//! (shared with the task flavour's [`TaskCrew`](crate::tasks::TaskCrew)).

use crate::{BenchError, WATCHDOG, cpu_time};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long to wait for the threads after the watchdog shut the queue down.
const GRACE: Duration = Duration::from_secs(10);

/// The threads of one workload run.
pub(crate) struct Crew {
    workload: &'static str,
    go: Option<Sender<()>>,
    go_rx: Receiver<()>,
    finished: Sender<Result<(), String>>,
    finished_rx: Receiver<Result<(), String>>,
    release: Option<Sender<()>>,
    release_rx: Receiver<()>,
    handles: Vec<JoinHandle<()>>,
    spawn_error: Option<String>,
}

/// When the crew started and what it used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// From the start signal (or the prelude) to the last thread's finish.
    pub(crate) wall: Duration,
    /// Process CPU time over the same span.
    pub(crate) cpu: Option<Duration>,
}

/// Reports a thread's (or task's) end, panic or not: dropped without
/// `ok` set, it reports a panic.
pub(crate) struct Finish {
    pub(crate) tx: Sender<Result<(), String>>,
    pub(crate) ok: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let result = if self.ok {
            Ok(())
        } else {
            Err("panicked".to_string())
        };
        let _ = self.tx.send(result);
    }
}

impl Crew {
    pub(crate) fn new(workload: &'static str) -> Self {
        let (go, go_rx) = bounded(0);
        let (finished, finished_rx) = unbounded();
        let (release, release_rx) = bounded(0);
        Crew {
            workload,
            go: Some(go),
            go_rx,
            finished,
            finished_rx,
            release: Some(release),
            release_rx,
            handles: Vec::new(),
            spawn_error: None,
        }
    }

    /// Starts a thread that runs `job` once the crew is started.
    pub(crate) fn spawn(&mut self, name: &str, job: impl FnOnce() + Send + 'static) {
        let go = self.go_rx.clone();
        let release = self.release_rx.clone();
        let tx = self.finished.clone();
        let spawned = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = go.recv(); // the sender is dropped to start everyone at once
                let mut finish = Finish { tx, ok: false };
                job();
                finish.ok = true;
                drop(finish);
                let _ = release.recv(); // stay alive until the CPU time is read
            });
        match spawned {
            Ok(handle) => self.handles.push(handle),
            Err(e) => self.spawn_error = Some(format!("cannot start {name}: {e}")),
        }
    }

    /// Starts every thread, then waits for all of them. `prelude` runs in
    /// the calling thread inside the timed span, before the threads start;
    /// `abort` is called if they have not finished after [`WATCHDOG`] (it
    /// should shut the queue down so they can).
    pub(crate) fn run(
        mut self,
        prelude: impl FnOnce(),
        abort: impl FnOnce(),
    ) -> Result<Timing, BenchError> {
        let workload = self.workload;
        if let Some(detail) = self.spawn_error.take() {
            abort();
            return Err(BenchError::Thread { workload, detail });
        }
        let expected = self.handles.len();
        let cpu0 = cpu_time();
        let start = Instant::now();
        prelude();
        drop(self.go.take());
        // On a hang that ignores the shutdown, the threads are left
        // behind: nothing can end them.
        let (mut failures, hang) = wait_all(
            workload,
            "threads",
            expected,
            &self.finished_rx,
            start,
            abort,
        )?;
        let wall = start.elapsed();
        let cpu1 = cpu_time();
        drop(self.release.take());
        for handle in self.handles.drain(..) {
            if handle.join().is_err() && failures.is_empty() {
                failures.push("panicked".into());
            }
        }
        if let Some(detail) = hang {
            return Err(BenchError::Hang { workload, detail });
        }
        if let Some(detail) = failures.into_iter().next() {
            return Err(BenchError::Thread { workload, detail });
        }
        let cpu = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
        Ok(Timing { wall, cpu })
    }
}

/// Waits for `expected` finish reports on `finished` (what: `"threads"` or
/// `"tasks"`). After [`WATCHDOG`] from `start` it calls `abort` (which
/// should shut the queue down) and waits [`GRACE`] more. Returns the
/// failures reported and, if the watchdog fired, what it saw; a
/// [`BenchError::Hang`] if the workers ignore the shutdown too.
pub(crate) fn wait_all(
    workload: &'static str,
    what: &str,
    expected: usize,
    finished: &Receiver<Result<(), String>>,
    start: Instant,
    abort: impl FnOnce(),
) -> Result<(Vec<String>, Option<String>), BenchError> {
    let mut failures = Vec::new();
    let mut done = 0;
    let mut abort = Some(abort);
    let mut deadline = start + WATCHDOG;
    let mut hang = None;
    while done < expected {
        match finished.recv_deadline(deadline) {
            Ok(result) => {
                done += 1;
                if let Err(e) = result {
                    failures.push(e);
                }
            }
            Err(RecvTimeoutError::Timeout) => match abort.take() {
                Some(abort) => {
                    hang = Some(format!(
                        "{done} of {expected} {what} finished after {WATCHDOG:?}"
                    ));
                    abort();
                    deadline = Instant::now() + GRACE;
                }
                None => {
                    let detail =
                        format!("{done} of {expected} {what} finished; they ignore the shutdown");
                    return Err(BenchError::Hang { workload, detail });
                }
            },
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok((failures, hang))
}

/// Times `f` in the calling thread, with the process's CPU time.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Timing) {
    let cpu0 = cpu_time();
    let start = Instant::now();
    let result = f();
    let wall = start.elapsed();
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (result, Timing { wall, cpu })
}
