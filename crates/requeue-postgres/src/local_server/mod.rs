//! [`LocalServer`]: a throwaway PostgreSQL cluster on loopback, **for tests
//! and benchmarks only**.
//!
//! It runs `initdb` into a fresh temporary directory, then the `postgres`
//! server on a free port of 127.0.0.1 (no other address), with its unix
//! socket inside that directory and trust authentication (initdb's
//! `pg_hba.conf`: the local socket and loopback only). `fsync` is on by
//! default, so a `kill -9` of the server loses no committed transaction.
//! The executables are found as [`BIN_DIR_ENV`] describes (Debian keeps
//! them in `/usr/lib/postgresql/<major>/bin`, off `PATH`); PostgreSQL
//! refuses to run as root, so as root the cluster belongs to, and runs as,
//! the `postgres` user.
//!
//! Dropping it stops the server and removes the directory. A small `sh`
//! supervisor also shuts the server down and removes the directory if the
//! owning process exits without dropping it: a `static` server shared by a
//! test binary does not outlive the tests.

mod binaries;
mod process;
mod ready;

pub use binaries::BIN_DIR_ENV;

use process::Running;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often startup is polled.
const POLL: Duration = Duration::from_millis(10);

/// How many times a start is retried when the port turned out to be taken
/// (or, on a restart, the killed server's shared memory was still held).
const START_ATTEMPTS: usize = 8;

/// The superuser `initdb` creates; the URL connects as it.
pub const USER: &str = "postgres";

/// How a [`LocalServer`] runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalServerOptions {
    /// `fsync` (default `true`): with it, a crash of the server or the
    /// machine loses no committed transaction. `false` (faster, for
    /// benchmarks that do not crash the server) also skips initdb's syncs.
    pub fsync: bool,
    /// How long initdb plus a start may take before it fails (default 60 s;
    /// crash recovery after a `kill -9` counts).
    pub startup_timeout: Duration,
    /// The directory holding `initdb` and `postgres`; `None` (default):
    /// see [`BIN_DIR_ENV`].
    pub bin_dir: Option<PathBuf>,
    /// The OS user the server runs as; `None` (default): `postgres` when
    /// this process is root, else this process's user.
    pub os_user: Option<String>,
    /// More server settings (`-c name=value`), applied last.
    pub settings: Vec<(String, String)>,
}

impl Default for LocalServerOptions {
    fn default() -> Self {
        LocalServerOptions {
            fsync: true,
            startup_timeout: Duration::from_secs(60),
            bin_dir: None,
            os_user: None,
            settings: Vec::new(),
        }
    }
}

/// A PostgreSQL server on 127.0.0.1 in a temporary directory, for tests
/// and benchmarks.
///
/// ```no_run
/// use requeue_postgres::local_server::LocalServer;
///
/// let mut server = LocalServer::start()?;
/// let url = server.url(); // postgres://postgres@127.0.0.1:<port>/postgres
/// // … use it; simulate a crash (fsync is on, so nothing committed is lost):
/// server.restart(true)?;
/// # drop(url);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct LocalServer {
    options: LocalServerOptions,
    bin: PathBuf,
    /// The `setpriv …` prefix that runs a command as the server's user.
    run_as: Vec<OsString>,
    port: u16,
    /// `None` while stopped (after [`kill9`](Self::kill9) or [`stop`](Self::stop)).
    running: Option<Running>,
    // Declared last: dropped after the server has stopped.
    dir: tempfile::TempDir,
}

impl LocalServer {
    /// Creates and starts a cluster with the default options.
    pub fn start() -> io::Result<Self> {
        Self::start_with(LocalServerOptions::default())
    }

    /// Creates a cluster (`initdb`) and starts its server; fails if the
    /// executables are missing, initdb fails, or the server does not accept
    /// connections within the startup timeout.
    pub fn start_with(options: LocalServerOptions) -> io::Result<Self> {
        let bin = binaries::bin_dir(options.bin_dir.as_deref())?;
        let user = binaries::server_user(options.os_user.as_deref())?;
        let dir = tempfile::Builder::new().prefix("requeue-pg-").tempdir()?;
        let mut server = LocalServer {
            run_as: binaries::run_as_prefix(user.as_deref()),
            options,
            bin,
            port: 0,
            running: None,
            dir,
        };
        fs::create_dir(server.socket_dir())?;
        if let Some(user) = &user {
            binaries::chown(server.dir(), user)?;
        }
        server.initdb()?;
        server.launch(false)?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust
    /// authentication: no password).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `database` on this server (create it first).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temporary directory (kept across restarts; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of its unix socket (`host=` for a socket connection).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The server's log (initdb's and the server's output).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The postmaster's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(Running::pid)
    }

    /// Stops the server — a crash (`kill -9` of the postmaster and every
    /// backend) if `kill9`, else a fast shutdown — and starts it again on
    /// the same port and data directory; after a crash it runs recovery
    /// before it accepts connections. Also starts a stopped server.
    pub fn restart(&mut self, kill9: bool) -> io::Result<()> {
        if let Some(mut running) = self.running.take() {
            running.stop(kill9)?;
        }
        self.launch(true)
    }

    /// Crashes the server (SIGKILL to the postmaster and its backends) and
    /// leaves it down (until [`restart`](Self::restart)).
    pub fn kill9(&mut self) -> io::Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(true),
            None => Ok(()),
        }
    }

    /// Stops the server cleanly (a fast shutdown, SIGKILL after 10 s) and
    /// leaves it down (until [`restart`](Self::restart)).
    pub fn stop(&mut self) -> io::Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(false),
            None => Ok(()),
        }
    }

    /// `initdb` as the server's user, output into the log.
    fn initdb(&self) -> io::Result<()> {
        let mut command = self.command("initdb");
        command.arg("-D").arg(self.data_dir()).args([
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        if !self.options.fsync {
            command.arg("--no-sync");
        }
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let status = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "initdb failed ({status}); its output:\n{}",
                self.log_since(0)
            )))
        }
    }

    /// `program` of the bin directory, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as.split_first() {
            None => Command::new(path),
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(path);
                command
            }
        }
    }

    /// The postmaster's command line, with the run-as prefix.
    fn server_command(&self, port: u16) -> Vec<String> {
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut settings: Vec<(String, String)> = [
            // Loopback only: the cluster trusts every connection.
            ("listen_addresses", "127.0.0.1".to_owned()),
            (
                "unix_socket_directories",
                self.socket_dir().to_string_lossy().into_owned(),
            ),
            ("fsync", on_off(self.options.fsync).to_owned()),
            // Its log goes to the supervisor's file, not to a collector.
            ("logging_collector", "off".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        settings.extend(self.options.settings.iter().cloned());
        let mut command: Vec<String> = self
            .run_as
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        command.push(self.bin.join("postgres").to_string_lossy().into_owned());
        command.push("-D".into());
        command.push(self.data_dir().to_string_lossy().into_owned());
        command.push("-p".into());
        command.push(port.to_string());
        for (name, value) in settings {
            command.push("-c".into());
            command.push(format!("{name}={value}"));
        }
        command
    }

    /// Starts the postmaster; on a taken port retries (a new port unless
    /// `same_port`).
    fn launch(&mut self, same_port: bool) -> io::Result<()> {
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            let port = if same_port {
                self.port
            } else {
                ready::free_port()?
            };
            let log = self.log_path();
            let log_from = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let mut running =
                Running::spawn(&self.server_command(port), &log, Some(self.dir.path()))?;
            match self.wait_ready(&mut running, port, log_from)? {
                None => {
                    self.port = port;
                    self.running = Some(running);
                    return Ok(());
                }
                Some(retry) => {
                    drop(running);
                    last = Some(retry);
                    // Growing pauses (3.6 s in all): a killed server's
                    // last backends may take a moment to let go of the
                    // shared memory.
                    thread::sleep(POLL * 10 * u32::try_from(attempt).unwrap_or(1));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("postgres did not start")))
    }

    /// Polls until the server accepts connections. `Ok(Some(_))`: it
    /// exited for a reason worth a retry (port taken, the shared memory of
    /// a killed predecessor still held); `Err`: any other failure.
    fn wait_ready(
        &self,
        running: &mut Running,
        port: u16,
        log_from: u64,
    ) -> io::Result<Option<io::Error>> {
        let deadline = Instant::now() + self.options.startup_timeout;
        let pid = running.pid();
        loop {
            if let Some(status) = running.exited()? {
                let log = self.log_since(log_from);
                let error = io::Error::other(format!(
                    "postgres exited during startup ({status}) on port {port}; its log:\n{log}"
                ));
                if log.contains("Address already in use") {
                    return Ok(Some(io::Error::new(io::ErrorKind::AddrInUse, error)));
                }
                if log.contains("pre-existing shared memory block") {
                    return Ok(Some(error));
                }
                return Err(error);
            }
            if ready::is_ready(&self.data_dir(), pid) {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                let log = self.log_since(log_from);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "postgres did not accept connections on port {port} within {:?}; \
                         its log:\n{log}",
                        self.options.startup_timeout
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// What was logged since byte `from` (lossy; for error messages).
    fn log_since(&self, from: u64) -> String {
        let all = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(all.len());
        String::from_utf8_lossy(all.get(start..).unwrap_or_default()).into_owned()
    }
}
