//! One running `redis-server` process and its watchdog.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often exits are polled while stopping a process.
const POLL: Duration = Duration::from_millis(5);

/// How long a SIGTERM gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running server plus the watchdog that kills it should this process
/// exit without dropping the [`LocalServer`](super::LocalServer) (a
/// `static` in a test binary is never dropped).
#[derive(Debug)]
pub(super) struct Running {
    pub(super) server: Child,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Running {
    /// Spawns `program args…`, logging to `log`, plus a watchdog that
    /// SIGKILLs it (and removes `cleanup_dir`, if given) once our end of
    /// its stdin pipe closes — which the kernel does when we exit.
    pub(super) fn spawn(
        program: &Path,
        args: &[String],
        log: &Path,
        cleanup_dir: Option<&Path>,
    ) -> io::Result<Running> {
        let out = File::options().create(true).append(true).open(log)?;
        let server = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut running = Running {
            server,
            watchdog: None,
        };
        // On failure the server is stopped by `Drop` of `running`.
        running.watchdog = Some(watchdog(running.server.id(), cleanup_dir)?);
        Ok(running)
    }

    /// The exit status if the server has exited.
    pub(super) fn exited(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        self.server.try_wait()
    }

    /// Stops the server: SIGKILL at once (`kill9`), or SIGTERM, then
    /// SIGKILL after a grace period. Waits for (reaps) it either way.
    pub(super) fn stop(&mut self, kill9: bool) -> io::Result<()> {
        // The watchdog first, so it cannot act on a recycled pid later.
        if let Some((mut dog, stdin)) = self.watchdog.take() {
            let _ = dog.kill();
            let _ = dog.wait();
            drop(stdin);
        }
        if self.server.try_wait()?.is_some() {
            return Ok(());
        }
        if !kill9 && signal("TERM", self.server.id()).is_ok() {
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if self.server.try_wait()?.is_some() {
                    return Ok(());
                }
                thread::sleep(POLL);
            }
        }
        // `Child::kill` is SIGKILL; an already exited child is not an error.
        let _ = self.server.kill();
        self.server.wait().map(|_| ())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

/// Sends `SIG<name>` to `pid` through the shell's `kill` (no `libc`:
/// unsafe code is forbidden in this workspace).
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

/// `sh` blocked reading a pipe whose only writer is this process; EOF
/// (we exited or dropped the pipe) makes it kill `pid`.
fn watchdog(pid: u32, cleanup_dir: Option<&Path>) -> io::Result<(Child, ChildStdin)> {
    let mut command = Command::new("sh");
    // `$0` = pid, `$1` = dir to remove ("" = none); arguments, never
    // interpolated into the script.
    command
        .arg("-c")
        .arg(r#"read _; kill -9 "$0" 2>/dev/null; [ -n "$1" ] && rm -rf -- "$1"; exit 0"#)
        .arg(pid.to_string())
        .arg(
            cleanup_dir
                .map(|d| d.as_os_str().to_owned())
                .unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn()?;
    match child.stdin.take() {
        Some(stdin) => Ok((child, stdin)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other("watchdog has no stdin pipe"))
        }
    }
}
