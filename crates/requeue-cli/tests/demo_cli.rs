//! `requeue demo` end to end: a short plain run whose numbers add up, flag
//! validation, `--help`, and a graceful drain on SIGINT.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary, with no `REDIS_URL` or `RUST_LOG` from the caller's
/// environment (they would change what it runs and logs).
fn requeue() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command.env_remove("REDIS_URL").env_remove("RUST_LOG");
    command
}

/// The `key=value` fields of the final `summary:` line.
fn summary_fields(stdout: &str) -> HashMap<String, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("summary: attempted="))
        .unwrap_or_else(|| panic!("no machine-readable summary line in:\n{stdout}"));
    line["summary: ".len()..]
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number(fields: &HashMap<String, String>, name: &str) -> u64 {
    fields
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number `{name}` in {fields:?}"))
}

#[test]
fn a_short_plain_run_reports_numbers_that_add_up() {
    let output = requeue()
        .args(["demo", "--duration", "3s", "--objects", "500", "--plain"])
        .output()
        .expect("run requeue");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let progress = stdout.lines().filter(|l| l.starts_with("t=")).count();
    assert!(progress >= 2, "want progress lines, got:\n{stdout}");

    let fields = summary_fields(&stdout);
    let attempted = number(&fields, "attempted");
    let succeeded = number(&fields, "succeeded");
    let failed = number(&fields, "failed");
    assert!(attempted > 500, "every key at least once: {fields:?}");
    assert_eq!(succeeded + failed, attempted, "{fields:?}");
    assert_eq!(number(&fields, "processed"), attempted, "{fields:?}");
    assert!(failed > 0, "the default fail rate fails some: {fields:?}");
    assert!(number(&fields, "panicked") <= failed, "{fields:?}");
    assert_eq!(fields["keys_reconciled"], "500/500", "no key lost");
    assert_eq!(
        number(&fields, "events_recorded"),
        failed,
        "one Warning per failure"
    );
    assert!(number(&fields, "events_stored") <= failed, "{fields:?}");

    assert!(stdout.contains("aggregated events:"), "{stdout}");
    assert!(stdout.contains("ReconcileError"), "{stdout}");
    assert!(!stdout.contains("VIOLATED"), "{stdout}");
}

#[test]
fn out_of_range_flags_are_usage_errors() {
    for args in [
        ["demo", "--fail-rate", "2"],
        ["demo", "--panic-rate", "-0.5"],
        ["demo", "--objects", "0"],
        ["demo", "--workers", "0"],
        ["demo", "--duration", "0s"],
        ["demo", "--metrics-addr", "nowhere"],
    ] {
        let output = requeue().args(args).output().expect("run requeue");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing ran");
    }
}

#[test]
fn help_describes_the_flags() {
    let output = requeue()
        .args(["demo", "--help"])
        .output()
        .expect("run requeue");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--duration",
        "--objects",
        "--workers",
        "--fail-rate",
        "--panic-rate",
        "--resync",
        "--seed",
        "--plain",
        "--metrics-addr",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
    }
}

#[cfg(unix)]
#[test]
fn sigint_drains_and_prints_the_summary() {
    let mut child = requeue()
        .args(["demo", "--duration", "60s", "--objects", "200", "--plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start requeue");
    let stdout = child.stdout.take().expect("piped");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("t=")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("no progress line ({e}); got {seen:?}");
            }
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());

    // The rest of the output; the channel closes when the process exits.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("still running 20 s after SIGINT; got {seen:?}");
            }
        }
    }
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    let stdout = seen.join("\n");
    assert!(status.success(), "{status:?}\n{stdout}");
    assert!(stdout.contains("stopped by ctrl-c/SIGTERM"), "{stdout}");
    let fields = summary_fields(&stdout);
    assert_eq!(
        number(&fields, "succeeded") + number(&fields, "failed"),
        number(&fields, "attempted"),
        "{fields:?}"
    );
    assert!(!stdout.contains("VIOLATED"), "{stdout}");
}

/// A throwaway redis-server for one test (no AOF: nothing here needs it).
fn local_redis() -> requeue_redis::local_server::LocalServer {
    use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
    LocalServer::start_with(LocalServerOptions {
        appendonly: false,
        appendfsync: Fsync::No,
        ..LocalServerOptions::default()
    })
    .expect("start redis-server (is it on PATH?)")
}

#[test]
fn two_worker_processes_on_redis_report_numbers_that_add_up() {
    let server = local_redis();
    let url = server.url();
    let stdout = two_worker_processes_report_numbers_that_add_up(&["--redis", &url]);
    // Redis serves FIFO: within 3 s every key came up at least once.
    assert_eq!(summary_fields(&stdout)["keys_reconciled"], "300/300");

    // The run removed its queue: nothing is left in the server.
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client.get_connection().expect("connect");
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS");
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn two_worker_processes_on_postgres_report_numbers_that_add_up() {
    let server = requeue_postgres::local_server::LocalServer::start().expect("start PostgreSQL");
    let url = server.url();
    let stdout = two_worker_processes_report_numbers_that_add_up(&["--postgres", &url]);
    assert!(stdout.contains("worker processes"), "{stdout}");

    // The run removed its queue's rows: nothing is left in the tables.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let left: i64 = runtime.block_on(async {
        let pool = sqlx::PgPool::connect(url.as_str()).await.expect("connect");
        sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM requeue.items) + (SELECT count(*) FROM requeue.queues)",
        )
        .fetch_one(&pool)
        .await
        .expect("count rows")
    });
    assert_eq!(left, 0, "rows left behind");
}

/// `demo <server> --workers-procs 2` on a short run: every key reconciled,
/// the counts of both processes add up, their Warnings reach the parent.
fn two_worker_processes_report_numbers_that_add_up(server: &[&str]) -> String {
    let output = requeue()
        .arg("demo")
        .args(server)
        .args(["--workers-procs", "2"])
        .args(["--duration", "3s", "--objects", "300", "--plain"])
        .output()
        .expect("run requeue");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let progress: Vec<&str> = stdout.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(progress.len() >= 2, "want progress lines, got:\n{stdout}");
    assert!(
        progress.iter().all(|l| l.contains(" leases_lost=")),
        "{stdout}"
    );

    let fields = summary_fields(&stdout);
    let attempted = number(&fields, "attempted");
    let succeeded = number(&fields, "succeeded");
    let failed = number(&fields, "failed");
    assert!(attempted > 300, "every key at least once: {fields:?}");
    assert_eq!(succeeded + failed, attempted, "{fields:?}");
    assert_eq!(number(&fields, "processed"), attempted, "{fields:?}");
    every_key_reconciled_or_queued(&stdout);
    assert_eq!(number(&fields, "procs"), 2, "{fields:?}");
    assert_eq!(
        number(&fields, "events_recorded"),
        failed,
        "every worker's Warnings reach the parent's pipeline"
    );
    assert!(stdout.contains("every worker process drained and reported:     2/2  ok"));
    assert!(!stdout.contains("VIOLATED"), "{stdout}");
    stdout.into_owned()
}

#[test]
fn an_unreachable_redis_is_one_line_naming_the_url() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let started = Instant::now();
    let output = requeue()
        .args(["demo", "--redis", &url, "--duration", "1s"])
        .output()
        .expect("run requeue");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing ran");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up promptly"
    );
}

#[test]
fn worker_processes_need_redis() {
    let output = requeue()
        .args(["demo", "--workers-procs", "2"])
        .output()
        .expect("run requeue");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--redis") && stderr.contains("Usage:"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing ran");
}

/// A running `requeue` whose stdout lines arrive on a channel.
#[cfg(target_os = "linux")]
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

#[cfg(target_os = "linux")]
impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = requeue()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start requeue");
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `want` (within 20 s).
    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.last().is_some_and(|l| want(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("no {what} ({e}); got {:?}", self.seen);
                }
            }
        }
    }

    /// Reads the rest (within 20 s) and waits for the exit.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("still running after 20 s; got {:?}", self.seen);
                }
            }
        }
        let status = self.child.wait().expect("wait");
        (status, self.seen.join("\n"))
    }
}

#[cfg(target_os = "linux")]
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_process_that_dies_is_reported_not_waited_for() {
    let server = local_redis();
    let stdout = a_worker_process_that_dies(&["--redis", &server.url()]);
    // Redis serves FIFO: the survivor reconciled every key.
    assert_eq!(summary_fields(&stdout)["keys_reconciled"], "200/200");
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_process_that_dies_on_postgres_is_reported_not_waited_for() {
    let server = requeue_postgres::local_server::LocalServer::start().expect("start PostgreSQL");
    let stdout = a_worker_process_that_dies(&["--postgres", &server.url()]);
    // Its keys in hand stay leased until their lease runs out, told apart.
    assert!(
        stdout.contains("leased by the worker processes that did not drain")
            || stdout.contains("0 leased  ok"),
        "{stdout}"
    );
}

/// `demo <server> --workers-procs 2`, one worker killed with SIGKILL: the
/// death is shown at once and named in the report (exit code 1), and the
/// survivor drains and reports. Returns the demo's stdout.
#[cfg(target_os = "linux")]
fn a_worker_process_that_dies(server: &[&str]) -> String {
    let mut args = vec!["demo"];
    args.extend_from_slice(server);
    args.extend_from_slice(&["--workers-procs", "2", "--duration", "60s"]);
    args.extend_from_slice(&["--objects", "200", "--plain"]);
    let mut demo = Running::start(&args);
    demo.until("progress line", |l| l.starts_with("t="));
    // The demo's children are its worker processes (the server is ours).
    let pid = demo.child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("read the demo's children");
    let worker: u32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no worker process in {children:?}"));
    signal("KILL", worker);
    demo.until("line showing the death", |l| l.contains(" procs=1/2"));
    signal("INT", pid);
    let (status, stdout) = demo.finish();
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("(pid {worker}) died")),
        "named in the report: {stdout}"
    );
    assert!(
        stdout.contains("every worker process drained and reported:     1/2  VIOLATED"),
        "{stdout}"
    );
    // The survivor drained and reported: its keys are in the summary.
    every_key_reconciled_or_queued(&stdout);
    stdout
}

/// The report's check that no key was lost holds: every key was
/// reconciled, or is still queued (on PostgreSQL, the resync's adds wait
/// behind real changes: they have a lower priority, which it honours).
fn every_key_reconciled_or_queued(stdout: &str) {
    let every_key = stdout
        .lines()
        .find(|l| l.contains("every key reconciled"))
        .unwrap_or_else(|| panic!("no key check in:\n{stdout}"));
    assert!(every_key.trim_end().ends_with("ok"), "{every_key}");
}

#[test]
fn library_warnings_reach_stderr_and_stdout_stays_clean() {
    let run = |rust_log: Option<&str>| {
        let mut command = requeue();
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        command
            .args(["demo", "--duration", "1s", "--objects", "50", "--plain"])
            .args(["--fail-rate", "0.5", "--panic-rate", "0"])
            .output()
            .expect("run requeue")
    };
    // The controller's `tracing::warn!` for each failed reconcile.
    let output = run(Some("warn"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("reconcile failed"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "no colours into a pipe: {stderr}");
    assert!(
        !stdout.contains("WARN") && !stdout.contains("reconcile failed"),
        "{stdout}"
    );
    // By default the demo does not log the failures it simulates (its
    // view counts them); RUST_LOG is what turned them on above.
    let output = run(None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("reconcile failed"), "{stderr}");
}

#[test]
fn the_demo_never_prints_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://admin:s3cretpass@127.0.0.1:{closed}/");
    let by_flag = requeue()
        .args(["demo", "--redis", &url, "--duration", "1s"])
        .output()
        .expect("run requeue");
    // REDIS_URL alone puts the demo on Redis.
    let by_env = requeue()
        .env("REDIS_URL", &url)
        .args(["demo", "--duration", "1s"])
        .output()
        .expect("run requeue");
    for output in [by_flag, by_env] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("s3cretpass"), "{stderr}");
        assert!(
            stderr.contains(&format!("redis://***@127.0.0.1:{closed}/")),
            "{stderr}"
        );
        assert_eq!(stderr.matches("refused").count(), 1, "{stderr}");
    }
    // A URL the client cannot parse: a usage error that still hides it.
    let output = requeue()
        .args(["demo", "--redis", "redis://u:s3cretpass@host:notaport/"])
        .output()
        .expect("run requeue");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("s3cretpass") && stderr.contains("***"),
        "{stderr}"
    );
}

#[test]
fn worker_processes_get_the_url_with_credentials_and_nothing_prints_it() {
    let server = local_redis();
    // Redis 7's default user has no password: AUTH with any one succeeds.
    let url = format!("redis://default:s3cretpass@127.0.0.1:{}/", server.port());
    let output = requeue()
        .env("REDIS_URL", &url)
        .args(["demo", "--workers-procs", "2"])
        .args(["--duration", "2s", "--objects", "100", "--plain"])
        .output()
        .expect("run requeue");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("redis: redis://***@127.0.0.1:{}/", server.port())),
        "{stdout}"
    );
    assert_eq!(summary_fields(&stdout)["keys_reconciled"], "100/100");
    assert!(!format!("{stdout}{stderr}").contains("s3cretpass"));
}
