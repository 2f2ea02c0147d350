//! Runs a workload's threads together: all start at one signal, the clock
//! stops when the last one finishes, and the threads stay alive until the
//! process's CPU time has been read. A watchdog turns a hang into an error.

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

/// Reports a thread's end, panic or not.
struct Finish {
    tx: Sender<Result<(), String>>,
    ok: bool,
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
        let mut failures = Vec::new();
        let mut done = 0;
        let mut abort = Some(abort);
        let mut deadline = start + WATCHDOG;
        let mut hang = None;
        while done < expected {
            match self.finished_rx.recv_deadline(deadline) {
                Ok(result) => {
                    done += 1;
                    if let Err(e) = result {
                        failures.push(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => match abort.take() {
                    Some(abort) => {
                        hang = Some(format!(
                            "{done} of {expected} threads finished after {WATCHDOG:?}"
                        ));
                        abort();
                        deadline = Instant::now() + GRACE;
                    }
                    None => {
                        let detail = format!(
                            "{done} of {expected} threads finished; they ignore the shutdown"
                        );
                        // The threads are left behind: nothing can end them.
                        return Err(BenchError::Hang { workload, detail });
                    }
                },
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
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

/// Times `f` in the calling thread, with the process's CPU time.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Timing) {
    let cpu0 = cpu_time();
    let start = Instant::now();
    let result = f();
    let wall = start.elapsed();
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    (result, Timing { wall, cpu })
}
