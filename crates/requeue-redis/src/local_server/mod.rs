//! [`LocalServer`]: a throwaway `redis-server` on loopback, **for tests and
//! benchmarks only**.
//!
//! It runs the `redis-server` found on `PATH` (Debian/Ubuntu:
//! `apt-get install -y redis-server`; the system service need not run) on
//! a free port of 127.0.0.1, with its data in a fresh temporary directory,
//! durable by default (`appendonly yes`, `appendfsync always`) so that a
//! `kill -9` loses no acknowledged write. Dropping it stops the server
//! (SIGTERM, then SIGKILL) and removes the directory. A small `sh`
//! supervisor also kills and reaps the server, and removes the directory,
//! if the owning process exits without dropping it: a `static` server
//! shared by a test binary does not outlive the tests.

mod ping;
mod process;

use process::Running;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How often startup is polled.
const POLL: Duration = Duration::from_millis(10);

/// How many times a start is retried when the port turned out to be taken.
const PORT_ATTEMPTS: usize = 8;

/// `appendfsync`: when Redis fsyncs its append-only file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fsync {
    /// After every write command: nothing acknowledged is lost on a crash.
    #[default]
    Always,
    /// Once per second: up to a second of writes lost on a crash.
    EverySec,
    /// When the OS decides.
    No,
}

impl Fsync {
    fn as_arg(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }
}

/// The environment variable naming another server executable to run
/// instead of `redis-server` from `PATH`, e.g. a `valkey-server`: how the
/// test suite runs the engine's tests on Valkey too.
pub const SERVER_ENV: &str = "REQUEUE_REDIS_SERVER";

/// How a [`LocalServer`] runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalServerOptions {
    /// `appendonly`: keep an append-only file (default `true`).
    pub appendonly: bool,
    /// `appendfsync` (default [`Fsync::Always`]).
    pub appendfsync: Fsync,
    /// How long a start may take before it fails (default 10 s).
    pub startup_timeout: Duration,
    /// The executable; `None` (default): the one [`SERVER_ENV`] names if
    /// it is set, else `redis-server` on `PATH`.
    pub program: Option<PathBuf>,
    /// More `--option value` arguments, appended last.
    pub extra_args: Vec<String>,
    /// Run as a Redis Sentinel (`redis-server sentinel.conf --sentinel`)
    /// whose configuration file, in the server's directory, starts with
    /// these lines (`sentinel monitor …`); Sentinel rewrites the file as
    /// it learns, so a restart keeps what it knew. `None` (default): a
    /// Redis server.
    pub sentinel: Option<String>,
}

impl Default for LocalServerOptions {
    fn default() -> Self {
        LocalServerOptions {
            appendonly: true,
            appendfsync: Fsync::Always,
            startup_timeout: Duration::from_secs(10),
            program: None,
            extra_args: Vec::new(),
            sentinel: None,
        }
    }
}

/// A `redis-server` child process on 127.0.0.1, for tests and benchmarks.
///
/// ```no_run
/// use requeue_redis::local_server::LocalServer;
///
/// let mut server = LocalServer::start()?;
/// let client = redis::Client::open(server.url()).map_err(std::io::Error::other)?;
/// // … use it; simulate a crash keeping the data (AOF, fsync always):
/// server.restart(true)?;
/// # drop(client);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct LocalServer {
    options: LocalServerOptions,
    program: PathBuf,
    port: u16,
    /// `None` while stopped (after [`kill9`](Self::kill9) or [`stop`](Self::stop)).
    running: Option<Running>,
    // Declared last: dropped after the server has stopped.
    dir: tempfile::TempDir,
}

impl LocalServer {
    /// Starts a server with the default options.
    pub fn start() -> io::Result<Self> {
        Self::start_with(LocalServerOptions::default())
    }

    /// Starts a server; fails if `redis-server` is missing or does not
    /// answer within the startup timeout.
    pub fn start_with(options: LocalServerOptions) -> io::Result<Self> {
        let program = match &options.program {
            Some(program) if program.is_file() => program.clone(),
            Some(program) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is not a file", program.display()),
                ));
            }
            None => match std::env::var_os(SERVER_ENV) {
                Some(program) if !program.is_empty() => {
                    let program = PathBuf::from(program);
                    if !program.is_file() {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{SERVER_ENV}={} is not a file", program.display()),
                        ));
                    }
                    program
                }
                _ => find_on_path("redis-server")?,
            },
        };
        let dir = tempfile::Builder::new()
            .prefix("requeue-redis-")
            .tempdir()?;
        let mut server = LocalServer {
            options,
            program,
            port: 0,
            running: None,
            dir,
        };
        if let Some(config) = &server.options.sentinel {
            fs::write(server.sentinel_config(), config)?;
        }
        server.launch(false)?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (kept across restarts; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(Running::pid)
    }

    /// Stops the server — `kill -9` (a crash) if `kill9`, else SIGTERM (a
    /// clean shutdown) — and starts it again on the same port and
    /// directory, so it reloads its data. Also starts a stopped server.
    pub fn restart(&mut self, kill9: bool) -> io::Result<()> {
        if let Some(mut running) = self.running.take() {
            running.stop(kill9)?;
        }
        self.launch(true)
    }

    /// Kills the server with SIGKILL and leaves it down (until
    /// [`restart`](Self::restart)).
    pub fn kill9(&mut self) -> io::Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(true),
            None => Ok(()),
        }
    }

    /// Stops the server cleanly (SIGTERM, SIGKILL after 5 s) and leaves
    /// it down (until [`restart`](Self::restart)).
    pub fn stop(&mut self) -> io::Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(false),
            None => Ok(()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis-server.log")
    }

    /// Where a Sentinel keeps its configuration.
    fn sentinel_config(&self) -> PathBuf {
        self.dir.path().join("sentinel.conf")
    }

    fn args(&self, port: u16) -> Vec<String> {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        // Sentinel reads its configuration file from the first argument.
        let mut args: Vec<String> = match self.options.sentinel {
            Some(_) => vec![
                self.sentinel_config().to_string_lossy().into_owned(),
                "--sentinel".into(),
            ],
            None => Vec::new(),
        };
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--dir",
                &self.dir.path().to_string_lossy(),
                "--save",
                "",
                "--appendonly",
                yes_no(self.options.appendonly),
                "--appendfsync",
                self.options.appendfsync.as_arg(),
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ]
            .map(String::from),
        );
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    /// Starts the process; on a taken port retries (a new port unless
    /// `same_port`).
    fn launch(&mut self, same_port: bool) -> io::Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = if same_port {
                self.port
            } else {
                ping::free_port()?
            };
            let log = self.log_path();
            let log_from = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let mut running =
                Running::spawn(&self.program, &self.args(port), &log, Some(self.dir.path()))?;
            match self.wait_ready(&mut running, port, log_from)? {
                None => {
                    self.port = port;
                    self.running = Some(running);
                    return Ok(());
                }
                Some(in_use) => {
                    drop(running);
                    last = Some(in_use);
                    if same_port {
                        thread::sleep(POLL * 5);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// Polls until the server answers. `Ok(Some(_))`: it exited because
    /// the port is taken (retry); `Err`: any other failure.
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
                    "redis-server exited during startup ({status}) on port {port}; its log:\n{log}"
                ));
                if log.contains("Address already in use") {
                    return Ok(Some(io::Error::new(io::ErrorKind::AddrInUse, error)));
                }
                return Err(error);
            }
            if ping::is_ready(port, pid) {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                let log = self.log_since(log_from);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server did not answer on port {port} within {:?}; its log:\n{log}",
                        self.options.startup_timeout
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// What the server logged since byte `from` (lossy; for error messages).
    fn log_since(&self, from: u64) -> String {
        let all = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(all.len());
        String::from_utf8_lossy(all.get(start..).unwrap_or_default()).into_owned()
    }
}

/// The first executable file `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} not found on PATH: install it (e.g. `apt-get install -y redis-server`; \
                     the system service need not run) or set LocalServerOptions::program",
                    name
                ),
            )
        })
}
