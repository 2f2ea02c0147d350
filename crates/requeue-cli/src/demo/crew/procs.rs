//! The worker processes of `--workers-procs N`: this binary started again
//! as `requeue demo-worker …`, each in its own process group (so a ctrl-c
//! at the terminal reaches only the parent, which stops them in order).
//! A thread per worker reads its lines (see [`wire`](super::wire)), marks
//! the keys it reconciled in the parent's fleet and records its Warning
//! events into the parent's pipeline; another keeps the tail of its stderr
//! for the report should it fail. Stopping is SIGTERM, then a bounded
//! wait, then SIGKILL: a worker that hangs or dies is reported, not waited on.

use super::super::fleet::{self, Fleet};
use super::super::health::Health;
use super::super::sample::Workers;
use super::wire::Line;
use super::worker;
use super::{Engine, Spec};
use anyhow::Context;
use requeue::controller::Counts;
use requeue::events::{EventType, Recorder};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of a worker's stderr kept for the report.
const STDERR_TAIL: usize = 5;
/// How often exits are polled.
const POLL: Duration = Duration::from_millis(10);

/// What the parent knows of one worker.
#[derive(Debug, Default)]
struct State {
    /// Its latest line (cumulative counts; the per-key parts were applied).
    last: Line,
    /// It printed its first line: connected.
    ready: bool,
    /// Its stdout ended (it exited or closed it).
    closed: bool,
    /// A line that was not a report (a bug), kept for the report.
    garbage: Option<String>,
    /// The tail of its stderr (the last [`STDERR_TAIL`] lines).
    stderr: VecDeque<String>,
}

/// One worker process. The process handles sit behind a mutex so that
/// the view can read the workers' numbers while the parent stops them.
struct Proc {
    pid: u32,
    handles: Mutex<Handles>,
    state: Arc<Mutex<State>>,
}

/// What stopping a worker needs.
struct Handles {
    child: Child,
    /// The worker stops when this closes (see `worker::watch_stdin`).
    lifeline: Option<ChildStdin>,
    readers: Vec<JoinHandle<()>>,
}

/// How a worker ended.
#[derive(Debug)]
pub struct Exit {
    /// 1-based, as the view numbers them.
    pub n: usize,
    pub pid: u32,
    pub status: Option<ExitStatus>,
    /// It printed its last line: it drained and its counts are complete.
    pub finished: bool,
    /// It did not stop within the grace period and was killed.
    pub killed: bool,
    pub stderr: Vec<String>,
    pub garbage: Option<String>,
    /// The queue's lease (how long its keys in hand stay leased).
    pub lease: Duration,
}

impl Exit {
    /// Whether it drained, reported and exited with success.
    pub fn clean(&self) -> bool {
        self.finished && !self.killed && self.status.is_some_and(|s| s.success())
    }

    /// One line about a worker that did not end cleanly.
    pub fn describe(&self) -> String {
        let how = match (self.killed, self.status) {
            (true, _) => "did not stop in time and was killed".to_string(),
            (false, Some(status)) if !self.finished => format!("died ({status})"),
            (false, Some(status)) => format!("exited with {status}"),
            (false, None) => "could not be waited for".to_string(),
        };
        let mut text = format!("worker process {} (pid {}) {how}", self.n, self.pid);
        if !self.finished {
            text.push_str(&format!(
                "; its last report is counted; its keys in hand return when their lease ({:?}) runs out",
                self.lease
            ));
        }
        if let Some(line) = self.stderr.last() {
            text.push_str(&format!("; stderr: {line}"));
        }
        if let Some(garbage) = &self.garbage {
            text.push_str(&format!("; unreadable report: {garbage}"));
        }
        text
    }
}

/// The running worker processes.
pub struct Procs {
    procs: Vec<Proc>,
    /// The queue's lease, for the report on a worker that died.
    lease: Duration,
    /// The latest simulated panic any worker reported.
    last_panic: Arc<Mutex<Option<String>>>,
}

impl Procs {
    /// Starts `--workers-procs` workers; their reports feed `fleet` and `recorder`.
    /// Errors they report go to `health`.
    pub fn spawn(
        spec: &Spec<'_>,
        fleet: &Arc<Fleet>,
        recorder: &Recorder,
        health: &Arc<Health>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program to start workers")?;
        let mut procs = Procs {
            procs: Vec::new(),
            lease: spec.lease,
            last_panic: Arc::default(),
        };
        for n in 1..=spec.args.workers_procs {
            let a = spec.args;
            let mut child = Command::new(&exe)
                .arg("demo-worker")
                // In the environment, not the arguments: `ps` shows
                // arguments, and the URL may hold a password.
                .env(worker::URL_ENV, spec.url.expose())
                .args(["--engine", &engine_flag(spec.engine)])
                .args(["--queue", spec.queue])
                .args(["--objects", &a.objects.to_string()])
                .args(["--workers", &a.workers.to_string()])
                .args(["--seed", &a.seed.to_string()])
                .args(["--fail-rate", &a.fail_rate.to_string()])
                .args(["--panic-rate", &a.panic_rate.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .with_context(|| format!("cannot start a worker process ({})", exe.display()))?;
            let state = Arc::new(Mutex::new(State::default()));
            let mut readers = Vec::new();
            if let Some(stdout) = child.stdout.take() {
                let (state, fleet, recorder) = (state.clone(), fleet.clone(), recorder.clone());
                let (last_panic, health) = (procs.last_panic.clone(), health.clone());
                let who = format!("worker process {n}");
                readers.push(std::thread::spawn(move || {
                    let to = Destinations {
                        state: &state,
                        fleet: &fleet,
                        recorder: &recorder,
                        last_panic: &last_panic,
                        health: &health,
                        who: &who,
                    };
                    read_lines(stdout, &to);
                }));
            }
            if let Some(stderr) = child.stderr.take() {
                let state = state.clone();
                readers.push(std::thread::spawn(move || read_stderr(stderr, &state)));
            }
            procs.procs.push(Proc {
                pid: child.id(),
                handles: Mutex::new(Handles {
                    lifeline: child.stdin.take(),
                    child,
                    readers,
                }),
                state,
            });
        }
        Ok(procs)
    }

    /// Waits until every worker is connected; fails (naming the worker and
    /// its last words) if one exits first or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for (n, proc) in self.procs.iter().enumerate() {
            loop {
                if lock(&proc.state).ready {
                    break;
                }
                let exited = lock(&proc.handles).child.try_wait()?;
                if let Some(status) = exited {
                    // Let the stderr reader catch the last words.
                    std::thread::sleep(POLL * 5);
                    let state = lock(&proc.state);
                    let words = state.stderr.back().cloned().unwrap_or_default();
                    anyhow::bail!(
                        "worker process {} exited at start ({status}): {words}",
                        n + 1
                    );
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "worker process {} did not connect within {timeout:?}",
                        n + 1
                    );
                }
                std::thread::sleep(POLL);
            }
        }
        Ok(())
    }

    /// Stops every worker (SIGTERM; SIGKILL after `grace`) and waits for
    /// it and its readers; reports how each ended.
    pub fn stop(&self, grace: Duration) -> Vec<Exit> {
        for proc in &self.procs {
            terminate(proc.pid);
        }
        let deadline = Instant::now() + grace;
        let mut exits = Vec::new();
        for (n, proc) in self.procs.iter().enumerate() {
            let mut handles = lock(&proc.handles);
            let mut killed = false;
            let status = loop {
                match handles.child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                    Ok(None) => {
                        killed = true;
                        let _ = handles.child.kill();
                        break handles.child.wait().ok();
                    }
                    Err(_) => break None,
                }
            };
            handles.lifeline = None;
            for reader in handles.readers.drain(..) {
                let _ = reader.join();
            }
            let state = lock(&proc.state);
            exits.push(Exit {
                n: n + 1,
                pid: proc.pid,
                status,
                finished: state.last.done,
                killed,
                stderr: state.stderr.iter().cloned().collect(),
                garbage: state.garbage.clone(),
                lease: self.lease,
            });
        }
        exits
    }

    /// Handler calls over every worker, counted by their reconcilers.
    pub fn attempted(&self) -> u64 {
        self.procs
            .iter()
            .map(|p| lock(&p.state).last.attempted)
            .sum()
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.procs.len()
    }
}

impl Workers for Procs {
    fn counts(&self) -> Counts {
        let mut sum = Counts::default();
        for proc in &self.procs {
            lock(&proc.state).last.counts.add_to(&mut sum);
        }
        sum
    }

    fn requeued_after(&self) -> u64 {
        self.procs
            .iter()
            .map(|p| lock(&p.state).last.requeued_after)
            .sum()
    }

    fn last_panic(&self) -> Option<String> {
        lock(&self.last_panic).clone()
    }

    fn processes(&self) -> Vec<(u64, bool)> {
        self.procs
            .iter()
            .map(|p| {
                let state = lock(&p.state);
                (
                    state.last.counts.succeeded + state.last.counts.failed,
                    !state.closed || state.last.done,
                )
            })
            .collect()
    }
}

impl Drop for Procs {
    /// A parent that bails out early leaves no worker running.
    fn drop(&mut self) {
        for proc in &self.procs {
            let mut handles = lock(&proc.handles);
            if matches!(handles.child.try_wait(), Ok(None)) {
                let _ = handles.child.kill();
                let _ = handles.child.wait();
            }
        }
    }
}

/// Where a worker's lines go.
struct Destinations<'a> {
    state: &'a Mutex<State>,
    fleet: &'a Fleet,
    recorder: &'a Recorder,
    last_panic: &'a Mutex<Option<String>>,
    health: &'a Health,
    /// "worker process N", for the errors it reports.
    who: &'a str,
}

/// Applies a worker's lines as they come.
fn read_lines(stdout: impl Read, to: &Destinations<'_>) {
    let (state, fleet, recorder, last_panic) = (to.state, to.fleet, to.recorder, to.last_panic);
    for text in BufReader::new(stdout).lines().map_while(Result::ok) {
        let line = match Line::decode(&text) {
            Ok(line) => line,
            Err(error) => {
                let mut state = lock(state);
                state
                    .garbage
                    .get_or_insert_with(|| format!("{error}: {text}"));
                continue;
            }
        };
        // Positions come from our own worker; still, never index past the fleet.
        for &i in line.reconciled.iter().filter(|&&i| i < fleet.len()) {
            fleet.mark_reconciled(i);
        }
        for (i, reason, message) in line.events.iter().filter(|e| e.0 < fleet.len()) {
            fleet.failed(*i);
            let object = fleet::object_of(fleet.key(*i));
            recorder.event(&object, EventType::Warning, reason, message);
        }
        for error in &line.errors {
            if error.corrupt {
                to.health.corrupt(&error.text, Some(to.who));
            } else {
                to.health
                    .warn_once(format!("warning: {}: {}", to.who, error.text));
            }
        }
        if line.last_panic.is_some() {
            let mut latest = lock(last_panic);
            if *latest != line.last_panic {
                latest.clone_from(&line.last_panic);
            }
        }
        let mut state = lock(state);
        state.ready = true;
        // Only the cumulative counts are kept: the per-line parts were applied.
        state.last = Line {
            reconciled: Vec::new(),
            events: Vec::new(),
            errors: Vec::new(),
            ..line
        };
    }
    lock(state).closed = true;
}

/// Keeps the last lines of a worker's stderr.
fn read_stderr(stderr: impl Read, state: &Mutex<State>) {
    for text in BufReader::new(stderr).lines().map_while(Result::ok) {
        let mut state = lock(state);
        if state.stderr.len() == STDERR_TAIL {
            state.stderr.pop_front();
        }
        state.stderr.push_back(text);
    }
}

/// Sends SIGTERM with the `kill` command (no `libc`: unsafe code is
/// forbidden in this workspace). A worker already gone is not an error.
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `--engine` of `requeue demo-worker`, as clap spells it.
pub fn engine_flag(engine: Engine) -> String {
    clap::ValueEnum::to_possible_value(&engine)
        .map(|value| value.get_name().to_string())
        .unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
