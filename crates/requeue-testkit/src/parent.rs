//! The parent's handle on a worker process, and signals.

use crate::log::{Line, read_log};
use crate::worker::{Config, ENTRY, ENV, Mode};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running worker process. Dropping it kills the process (SIGCONT first,
/// in case it is stopped) and reaps it, so a failing test leaves nothing.
pub struct Worker {
    /// Its name (its files are `{name}.log` and `{name}.out`).
    pub name: String,
    /// Its log (see the crate docs).
    pub log: PathBuf,
    out: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Worker {
    /// Starts a worker named `name` whose files go to `dir`, running a
    /// queue named `queue` at `url` with leases of `lease_ms`, fetching up
    /// to `prefetch` items ahead (0: off; for an engine that can).
    pub fn spawn(
        dir: &Path,
        name: &str,
        url: &str,
        queue: &str,
        lease_ms: u64,
        mode: Mode,
        prefetch: usize,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        File::create(&log).unwrap();
        let config = Config {
            url: url.to_string(),
            queue: queue.to_string(),
            lease_ms,
            log: log.clone(),
            mode,
            prefetch,
        };
        let output = File::create(&out).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", ENTRY, "--nocapture", "--test-threads=1"])
            .env(ENV, serde_json::to_string(&config).unwrap())
            .stdin(Stdio::piped())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Worker {
            name: name.to_string(),
            log,
            out,
            child,
            stdin,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one line on the worker's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: the worker shuts its queue down and exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `SIG<name>` (no `libc`: unsafe code is forbidden here).
    pub fn signal(&self, name: &str) {
        signal(name, self.pid());
    }

    /// Waits until the kernel reports the process stopped (after SIGSTOP).
    pub async fn wait_stopped(&self) {
        let stat = format!("/proc/{}/stat", self.pid());
        poll_until(Duration::from_secs(5), "the worker to stop", || {
            std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .map(|(_, rest)| rest.starts_with(['T', 't']))
                })
                .unwrap_or(false)
        })
        .await;
    }

    /// Waits (polling) for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {timeout:?}; its output:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes stdin and checks the worker exits cleanly.
    pub async fn finish(&mut self) {
        self.close_stdin();
        let status = self.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "worker {} failed ({status}); its output:\n{}",
            self.name,
            self.output()
        );
    }

    /// What the worker printed (the test harness's lines, panics).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The complete lines of its log so far.
    pub fn lines(&self) -> Vec<Line> {
        read_log(&self.log)
    }

    /// Waits until its log has a line `pick` accepts, and returns it.
    pub async fn wait_line<R>(&self, what: &str, mut pick: impl FnMut(&Line) -> Option<R>) -> R {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(found) = self.lines().iter().find_map(&mut pick) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} never logged {what}; log:\n{}\noutput:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = try_signal("CONT", self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn try_signal(name: &str, pid: u32) -> std::io::Result<ExitStatus> {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// `kill -<name> <pid>`, which must succeed.
pub fn signal(name: &str, pid: u32) {
    let status = try_signal(name, pid).unwrap();
    assert!(status.success(), "kill -{name} {pid}: {status}");
}

/// Polls `done` every 10 ms until it holds; fails after `timeout`.
pub async fn poll_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
