//! One running `redis-server`, started under a small `sh` supervisor.
//!
//! Why a supervisor: a `static` server shared by a test binary is never
//! dropped, and unsafe code (`prctl`, `atexit`) is forbidden here. The
//! supervisor holds the read end of a pipe whose only writer is this
//! process; when this process exits, the kernel closes it, and the
//! supervisor kills the server, reaps it (no zombie is left for init) and
//! removes its directory. A clean stop first writes `keep` into the pipe,
//! which retires that watch.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often exits are polled while stopping.
const POLL: Duration = Duration::from_millis(5);

/// How long a SIGTERM gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// `$1` log file, `$2` directory to remove when abandoned ('' = none),
/// `$3…` the server and its arguments (never interpolated into the
/// script). Prints the server's pid, then exits with the server's status.
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
    kill -9 "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    [ -n "$dir" ] && rm -rf -- "$dir"
  fi
) &
exec 3<&-
wait "$pid"
"#;

/// A running server and its supervisor.
#[derive(Debug)]
pub(super) struct Running {
    supervisor: Child,
    /// Our end of the lifeline pipe; `None` once the watch is retired.
    lifeline: Option<ChildStdin>,
    pid: u32,
}

impl Running {
    /// Starts `program args…` with output appended to `log`. Should this
    /// process exit without stopping it, the server is killed and
    /// `cleanup_dir` (if any) removed.
    pub(super) fn spawn(
        program: &Path,
        args: &[String],
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> io::Result<Running> {
        let errors = File::options().create(true).append(true).open(log)?;
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("requeue-redis-supervisor")
            .arg(log)
            .arg(cleanup_dir.map(|d| d.as_os_str()).unwrap_or_default())
            .arg(program)
            .args(args)
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
                // Closing the lifeline makes it kill whatever it started.
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

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's exit status, once it has exited (the supervisor exits
    /// with it).
    pub(super) fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.supervisor.try_wait()
    }

    /// Stops the server: SIGKILL at once (`kill9`), or SIGTERM and SIGKILL
    /// after a grace period. Returns once it is gone and reaped.
    pub(super) fn stop(&mut self, kill9: bool) -> io::Result<()> {
        if let Some(mut lifeline) = self.lifeline.take() {
            // Retire the watch: we stop the server ourselves, keeping its dir.
            let _ = lifeline.write_all(b"keep\n");
        }
        if self.supervisor.try_wait()?.is_some() {
            return Ok(());
        }
        if !kill9 && signal("TERM", self.pid).is_ok() {
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if self.supervisor.try_wait()?.is_some() {
                    return Ok(());
                }
                thread::sleep(POLL);
            }
        }
        // The server may already be gone: the wait below is what matters.
        let _ = signal("KILL", self.pid);
        self.supervisor.wait().map(|_| ())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

/// Sends `SIG<name>` to `pid` with the `kill` command (no `libc`: unsafe
/// code is forbidden in this workspace).
fn signal(name: &str, pid: u32) -> io::Result<()> {
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
