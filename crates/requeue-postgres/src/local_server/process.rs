//! One running `postgres` postmaster, started under a small `sh` supervisor.
//!
//! Why a supervisor (as in requeue-redis): a `static` server shared by a
//! test binary is never dropped, and unsafe code (`prctl`, `atexit`) is
//! forbidden here. The supervisor holds the read end of a pipe whose only
//! writer is this process; when this process exits, the kernel closes it,
//! and the supervisor shuts the server down (SIGQUIT: PostgreSQL's
//! immediate shutdown, which also ends every backend; SIGKILL after a
//! grace period), reaps it and removes its directory. A deliberate stop
//! first writes `keep` into the pipe, which retires that watch.
//!
//! The postmaster is `exec`ed (through `setpriv` when it must change user,
//! which also `exec`s), so the pid the supervisor prints is the
//! postmaster's own: the one in `postmaster.pid` and the one signalled.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often exits are polled while stopping.
const POLL: Duration = Duration::from_millis(5);

/// How long a fast shutdown (SIGINT) gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long the backends of a killed postmaster get to exit on their own
/// (they notice the postmaster's death) before they are killed too.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

/// `$1` log file, `$2` directory to remove when abandoned ('' = none),
/// `$3…` the command (never interpolated into the script). Prints the
/// server's pid, then exits with the server's status.
const SUPERVISOR: &str = r#"
log=$1; dir=$2; shift 2
exec 3<&0 </dev/null
"$@" 3<&- >>"$log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null
(
  read -r word <&3
  if [ "$word" != keep ]; then
    kill -QUIT "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 500 ]; do sleep 0.01; n=$((n+1)); done
    kill -9 "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    [ -n "$dir" ] && rm -rf -- "$dir"
  fi
) &
exec 3<&-
wait "$pid"
"#;

/// A running postmaster and its supervisor.
#[derive(Debug)]
pub(super) struct Running {
    supervisor: Child,
    /// Our end of the lifeline pipe; `None` once the watch is retired.
    lifeline: Option<ChildStdin>,
    pid: u32,
}

impl Running {
    /// Starts `command…` with output appended to `log`. Should this process
    /// exit without stopping it, the server is shut down and `cleanup_dir`
    /// (if any) removed.
    pub(super) fn spawn(
        command: &[String],
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> io::Result<Running> {
        let errors = File::options().create(true).append(true).open(log)?;
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("requeue-postgres-supervisor")
            .arg(log)
            .arg(cleanup_dir.map(|d| d.as_os_str()).unwrap_or_default())
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(errors)
            .spawn()?;
        let lifeline = supervisor.stdin.take();
        let pid = supervisor
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("supervisor has no stdout"))
            .and_then(|out| {
                let mut line = String::new();
                BufReader::new(out).read_line(&mut line)?;
                line.trim().parse::<u32>().map_err(|_| {
                    io::Error::other(format!("supervisor printed {line:?}, not a pid"))
                })
            });
        let pid = match pid {
            Ok(pid) => pid,
            Err(error) => {
                // Closing the lifeline makes it stop whatever it started.
                drop(lifeline);
                let _ = supervisor.wait();
                return Err(error);
            }
        };
        Ok(Running {
            supervisor,
            lifeline,
            pid,
        })
    }

    /// The postmaster's process id.
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// The postmaster's exit status, once it has exited (the supervisor
    /// exits with it).
    pub(super) fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.supervisor.try_wait()
    }

    /// Stops the server and returns once it and its backends are gone.
    ///
    /// `kill9`: a crash, SIGKILL to the postmaster and to every backend
    /// (as when the whole machine or container dies; only what was fsynced
    /// survives, which is what a crash test must check). Otherwise a fast
    /// shutdown (SIGINT: active transactions roll back, a checkpoint is
    /// written), SIGKILL after a grace period.
    pub(super) fn stop(&mut self, kill9: bool) -> io::Result<()> {
        if let Some(mut lifeline) = self.lifeline.take() {
            // Retire the watch: we stop the server ourselves, keeping its dir.
            let _ = lifeline.write_all(b"keep\n");
        }
        if self.supervisor.try_wait()?.is_some() {
            return Ok(());
        }
        if kill9 {
            // Frozen first, so that it forks no backend between the read of
            // its children and the kills (a missed backend would keep the
            // shared memory attached, and a restart would refuse to start).
            let _ = signal("STOP", self.pid);
        }
        let backends = children(self.pid);
        if !kill9 && signal("INT", self.pid).is_ok() {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if self.supervisor.try_wait()?.is_some() {
                    return Ok(());
                }
                thread::sleep(POLL);
            }
        }
        for pid in &backends {
            let _ = signal("KILL", *pid);
        }
        // The server may already be gone: the wait below is what matters.
        let _ = signal("KILL", self.pid);
        self.supervisor.wait()?;
        wait_gone(&backends, ORPHAN_GRACE);
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

/// The direct children of `pid` (the postmaster's backends and auxiliary
/// processes), from `/proc`; empty where that is unavailable.
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits (at most `grace`) until none of `pids` exists any more. A killed
/// postmaster's orphans are reaped by init, not by us, so their exit is
/// seen through `/proc`. A pid reused meanwhile only costs the wait.
fn wait_gone(pids: &[u32], grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && pids.iter().any(|pid| {
            // A zombie has exited; it only waits to be reaped.
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
        })
    {
        thread::sleep(POLL);
    }
}

/// Sends `SIG<name>` to `pid` with the `kill` command (no `libc`: unsafe
/// code is forbidden in this workspace).
pub(super) fn signal(name: &str, pid: u32) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{name} {pid}: {status}")))
    }
}
