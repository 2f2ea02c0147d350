//! `requeue demo --redis` when Redis misbehaves (issue 14): the main
//! process reconnects after a kill -9 and restart of redis-server or a
//! `CLIENT KILL`, and its summary keeps to Redis' own counters; a corrupt
//! key is reported by name and fails the run; a frozen server (SIGSTOP)
//! neither stretches the run nor goes unmentioned; the queue's keys carry
//! a TTL while the run goes on. Every test runs its own redis-server.
#![cfg(target_os = "linux")]

use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit code of a run that ended unhealthy (see `requeue demo --help`).
const UNHEALTHY: i32 = 3;

/// A throwaway redis-server; `durable` keeps an fsync'd AOF, so that a
/// kill -9 loses nothing the queue wrote.
fn server(durable: bool) -> LocalServer {
    let options = if durable {
        LocalServerOptions::default()
    } else {
        LocalServerOptions {
            appendonly: false,
            appendfsync: Fsync::No,
            ..LocalServerOptions::default()
        }
    };
    LocalServer::start_with(options).expect("start redis-server (is it on PATH?)")
}

fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("url");
    // Short timeouts: a frozen server must not hang the test.
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    conn
}

/// A running `requeue demo`, its stdout lines on a channel and its stderr
/// collected whole.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    started: Instant,
}

/// How a run ended.
struct Ended {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// From the start to the exit.
    took: Duration,
}

impl Demo {
    fn start(url: &str, extra: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_requeue"))
            .args(["demo", "--redis", url, "--plain"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start requeue");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            started: Instant::now(),
        }
    }

    /// The queue's name: `demo-<pid>`.
    fn queue(&self) -> String {
        format!("demo-{}", self.child.id())
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

    /// Waits for progress line `t=<second>s`.
    fn at_second(&mut self, second: u64) {
        let prefix = format!("t={second}s ");
        self.until(&prefix, |l| l.starts_with(&prefix));
    }

    /// Reads the rest (within `limit`) and waits for the exit.
    fn finish(mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("still running after {limit:?}; got {:?}", self.seen);
                }
            }
        }
        let status = self.child.wait().expect("wait");
        let took = self.started.elapsed();
        let stderr = self.stderr.join().expect("stderr reader");
        Ended {
            status,
            stdout: self.seen.join("\n"),
            stderr,
            took,
        }
    }
}

impl Ended {
    /// The `key=value` fields of the final `summary:` line.
    fn fields(&self) -> HashMap<String, String> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("summary: attempted="))
            .unwrap_or_else(|| panic!("no summary line in:\n{}", self.stdout));
        line["summary: ".len()..]
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn number(&self, name: &str) -> u64 {
        let fields = self.fields();
        fields
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number `{name}` in {fields:?}"))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.took, self.stdout, self.stderr
        )
    }
}

/// Sends `signal` to `pid` with the `kill` command.
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Continues a stopped redis-server when dropped, even if the test fails.
struct Thaw(u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

fn keys_of(url: &str, queue: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("rq:{{{queue}}}:*"))
        .query(&mut connect(url))
        .expect("KEYS")
}

#[test]
fn after_kill_9_and_restart_the_summary_keeps_to_redis_counters() {
    let mut server = server(true);
    let url = server.url();
    let mut demo = Demo::start(
        &url,
        &[
            "--workers-procs",
            "2",
            "--duration",
            "5s",
            "--objects",
            "300",
            "--keep-queue",
        ],
    );
    let queue = demo.queue();
    demo.at_second(1);
    server
        .restart(true)
        .expect("kill -9 and restart redis-server");
    let ended = demo.finish(Duration::from_secs(20));
    let text = ended.describe();
    assert_eq!(ended.status.code(), Some(0), "{text}");
    assert!(!ended.stderr.contains("broken pipe"), "{text}");
    assert!(!ended.stdout.contains("VIOLATED"), "{text}");
    assert!(
        ended.stdout.contains("workers drained their keys in hand"),
        "{text}"
    );

    // --keep-queue left the keys: the summary's figures are Redis' own.
    let mut conn = connect(&url);
    let meta = format!("rq:{{{queue}}}:meta");
    let (reaped, retries): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(&meta)
        .arg("lease_expired_total")
        .arg("retries_total")
        .query(&mut conn)
        .expect("HMGET");
    assert_eq!(ended.number("leases_reaped"), reaped.unwrap_or(0), "{text}");
    assert_eq!(
        ended.number("retries_total"),
        retries.unwrap_or(0),
        "{text}"
    );
    assert!(retries.unwrap_or(0) > 0, "the run retried keys: {text}");
    // And they expire on their own.
    let ttl: i64 = redis::cmd("TTL").arg(&meta).query(&mut conn).expect("TTL");
    assert!(ttl > 0, "{meta} has no TTL ({ttl})");
}

#[test]
fn after_kill_9_restart_and_client_kill_the_queue_is_still_deleted() {
    let mut server = server(true);
    let url = server.url();
    let mut demo = Demo::start(&url, &["--duration", "5s", "--objects", "300"]);
    let queue = demo.queue();
    demo.at_second(1);
    server
        .restart(true)
        .expect("kill -9 and restart redis-server");
    demo.at_second(2);
    // Every client connection of the demo, at once.
    let _: redis::RedisResult<()> = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut connect(&url));
    let ended = demo.finish(Duration::from_secs(20));
    let text = ended.describe();
    assert_eq!(ended.status.code(), Some(0), "{text}");
    // The library's log lines may tell of the broken connection (they
    // carry a level); the demo's own lines must not: it reconnected.
    let own_lines = ended
        .stderr
        .lines()
        .filter(|line| !line.contains(" WARN ") && !line.contains(" ERROR "));
    for line in own_lines {
        assert!(!line.contains("broken pipe"), "{line}\n{text}");
    }
    assert!(!ended.stderr.contains("cannot delete"), "{text}");
    assert!(!ended.stdout.contains("VIOLATED"), "{text}");
    let keys = keys_of(&url, &queue);
    assert!(keys.is_empty(), "left behind: {keys:?}\n{text}");
}

#[test]
fn a_corrupt_key_is_named_and_fails_the_run() {
    let server = server(false);
    let url = server.url();
    let mut demo = Demo::start(&url, &["--duration", "4s", "--objects", "200"]);
    let queue = demo.queue();
    demo.at_second(1);
    let owners = format!("rq:{{{queue}}}:owners");
    let _: () = redis::cmd("SET")
        .arg(&owners)
        .arg("garbage")
        .query(&mut connect(&url))
        .expect("SET");
    let ended = demo.finish(Duration::from_secs(20));
    let text = ended.describe();
    assert_eq!(ended.status.code(), Some(UNHEALTHY), "{text}");
    assert!(
        ended.stderr.contains("corrupt") && ended.stderr.contains(&owners),
        "named on stderr: {text}"
    );
    assert!(ended.stdout.contains("VIOLATED"), "{text}");
    assert!(
        !ended.stdout.contains("workers drained their keys in hand"),
        "{text}"
    );
    // The corrupt queue is deleted all the same.
    let keys = keys_of(&url, &queue);
    assert!(keys.is_empty(), "left behind: {keys:?}\n{text}");
}

#[test]
fn a_frozen_redis_does_not_stretch_the_run_and_fails_it() {
    let server = server(false);
    let url = server.url();
    let pid = server.pid().expect("running");
    let duration = 4;
    let mut demo = Demo::start(
        &url,
        &[
            "--workers-procs",
            "2",
            "--duration",
            &format!("{duration}s"),
            "--objects",
            "200",
        ],
    );
    demo.at_second(1);
    let frozen = Instant::now();
    signal("STOP", pid);
    let _thaw = Thaw(pid);
    let ended = demo.finish(Duration::from_secs(30));
    let after = frozen.elapsed();
    let text = ended.describe();
    // The rest of the duration, plus at most 5 s to stop and clean up
    // (and a second for a slow machine).
    assert!(
        after < Duration::from_secs(duration - 1 + 5 + 1),
        "took {after:?} after t=1s: {text}"
    );
    assert!(ended.stdout.contains("s to stop)"), "{text}");
    assert_eq!(ended.status.code(), Some(UNHEALTHY), "{text}");
    assert!(ended.stderr.contains("Redis unreachable"), "{text}");
    assert!(ended.stdout.contains("VIOLATED"), "{text}");
    assert!(
        !ended.stdout.contains("workers drained their keys in hand"),
        "{text}"
    );
    // The summary's headline says what happened; no password-free URL
    // needed: the keys expire on their own (TTL), which it says.
    assert!(ended.stdout.contains("Redis"), "{text}");
    assert!(ended.stderr.contains("expire"), "{text}");
}

#[test]
fn a_short_freeze_is_reported_and_survived() {
    let server = server(false);
    let url = server.url();
    let pid = server.pid().expect("running");
    let mut demo = Demo::start(&url, &["--duration", "8s", "--objects", "200"]);
    demo.at_second(1);
    signal("STOP", pid);
    let thaw = Thaw(pid);
    // Redis is down for about 3 s: the outage is told while it lasts.
    std::thread::sleep(Duration::from_secs(3));
    drop(thaw);
    let ended = demo.finish(Duration::from_secs(20));
    let text = ended.describe();
    assert_eq!(ended.status.code(), Some(0), "{text}");
    assert!(ended.stderr.contains("Redis unreachable"), "{text}");
    assert!(ended.stderr.contains("Redis reachable again"), "{text}");
    assert!(!ended.stdout.contains("VIOLATED"), "{text}");
}

#[test]
fn the_queue_keys_carry_a_ttl_while_the_run_goes_on() {
    let server = server(false);
    let url = server.url();
    let mut demo = Demo::start(&url, &["--duration", "4s", "--objects", "200"]);
    let queue = demo.queue();
    demo.at_second(1);
    let mut conn = connect(&url);
    // Keys the scripts delete when empty come back without a TTL until the
    // next refresh: poll until every key listed so far was seen with one.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut seen: HashMap<String, bool> = HashMap::new();
    let all_expire = loop {
        for key in keys_of(&url, &queue) {
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).expect("TTL");
            *seen.entry(key).or_default() |= ttl > 0;
        }
        // Keys that empty as the work flows come back without a TTL until
        // the next refresh: the leases' two keys whenever nothing is in
        // flight, the marker whenever a waiter pops it, and the ready list
        // with its dirty set and add times whenever the workers catch up
        // (which, with calls coalesced, is most of the time). On a loaded
        // machine that can be most of the time, so only the others must be
        // seen with one (a leftover of these is at most one refresh old).
        let meta = seen.iter().any(|(k, ttl)| k.ends_with(":meta") && *ttl);
        let cycling = [
            ":processing",
            ":owners",
            ":marker",
            ":queue",
            ":dirty",
            ":added_at",
        ];
        let lasting = seen
            .iter()
            .filter(|(k, _)| !cycling.iter().any(|suffix| k.ends_with(suffix)));
        if meta && lasting.clone().all(|(_, &ttl)| ttl) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ended = demo.finish(Duration::from_secs(20));
    assert!(
        all_expire,
        "keys never seen with a TTL: {seen:?}\n{}",
        ended.describe()
    );
    assert_eq!(ended.status.code(), Some(0), "{}", ended.describe());
}
