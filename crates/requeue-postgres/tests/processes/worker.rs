//! Worker processes for `processes.rs`, and the parent's view of them
//! (the Redis engine's `tests/processes/worker.rs`, on PostgreSQL).
//!
//! A worker is this test binary run again (`current_exe() --exact
//! rq_worker_process …`) with its configuration in `RQ_PG_WORKER_*`
//! environment variables. It runs a `PostgresQueue<String>` on its own
//! tokio runtime and appends one line per event to its log file:
//!
//! | line | meaning |
//! |---|---|
//! | `S key token seq` | processing of `key` (lease `token`) started |
//! | `D key token seq` | its processing is over; its end is sent next |
//! | `E key token seq rc req` | it ended (`seq` as its `D`'s); `rc` = `ok` \| `lost` \| `err` \| `unreleased`; `req` = the seq of its re-add (`Then::Requeue`, `Retry`, `RetryAfter`), or `-` |
//! | `A key seq` | the worker added `key` (while processing) |
//! | `V key token valid` | hold mode: `item.is_valid()` just before ending |
//! | `C lost reaped` | the worker's counters, at exit |
//!
//! # Ordering across processes
//!
//! `Instant` cannot be compared across processes. Every `seq` above is
//! instead a `nextval` of one PostgreSQL sequence per queue
//! (`public.rqtest_seq_<n>`, `CACHE 1`). `nextval` takes the sequence's
//! lock, so the numbers are a total order consistent with real time
//! across all processes: a `nextval` that returned before another was
//! sent has the smaller number. A worker takes `S` after its `get`
//! returned and `D` before it calls `end_async`, so `[S, D]` lies inside
//! its lease; the parent (and a worker) takes `A` before it sends the
//! add. So two intervals of a key overlap in seq order exactly when those
//! spans really overlapped in time, and a processing whose `get` ran after
//! an add has `S > A` (see the Redis file for the exact strength).
//!
//! Fencing tokens come from the engine's own sequence: a later lease of a
//! key always has a larger token. So of two processings of a key, the one
//! that started later (in seq order) must carry the larger token unless
//! the earlier one lost its lease.
//!
//! A worker stops when its stdin closes: the parent closes it, or dies.

use requeue::engine::{QueueError, Then};
use requeue::queue::Item;
use requeue_postgres::PostgresQueue;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that turns the test binary into a worker
/// (the others are `{ENV}_URL`, `_QUEUE`, `_LEASE_MS`, `_LOG`, `_MODE`).
pub const ENV: &str = "RQ_PG_WORKER";

/// The name of the `#[test]` fn that runs a worker (see `processes.rs`).
pub const ENTRY: &str = "rq_worker_process";

/// What one worker process does.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub queue: String,
    pub lease_ms: u64,
    pub log: PathBuf,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tasks` concurrent get → work → end loops until stdin closes. Each
    /// processing takes 0..=`max_work_ms`; one in `readd_one_in` adds a
    /// key (its own or one of `k0..k{keys}`) while processing; one in
    /// `requeue_one_in` ends with a re-add (0 = never): `Then::Requeue`,
    /// `Then::Retry` (the shared rate limiter's delay) or
    /// `Then::RetryAfter` (1..20 ms), as likely.
    Loop {
        tasks: usize,
        max_work_ms: u64,
        readd_one_in: u32,
        requeue_one_in: u32,
        keys: u32,
    },
    /// Takes one item, logs `S`, and holds it (without ending it) until a
    /// line `end` arrives on stdin; then logs `V`, ends it with
    /// `Then::Done` and logs `E`.
    Hold,
}

impl Mode {
    fn encode(self) -> String {
        match self {
            Mode::Loop {
                tasks,
                max_work_ms,
                readd_one_in,
                requeue_one_in,
                keys,
            } => format!("loop {tasks} {max_work_ms} {readd_one_in} {requeue_one_in} {keys}"),
            Mode::Hold => "hold".into(),
        }
    }

    fn decode(text: &str) -> Mode {
        let f: Vec<&str> = text.split(' ').collect();
        match f.as_slice() {
            ["hold"] => Mode::Hold,
            ["loop", tasks, work, readd, requeue, keys] => Mode::Loop {
                tasks: tasks.parse().unwrap(),
                max_work_ms: work.parse().unwrap(),
                readd_one_in: readd.parse().unwrap(),
                requeue_one_in: requeue.parse().unwrap(),
                keys: keys.parse().unwrap(),
            },
            _ => panic!("bad mode {text:?}"),
        }
    }
}

/// The name of a queue's test sequence.
pub fn seq_name(queue: &str) -> String {
    let plain: String = queue
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("public.rqtest_seq_{plain}")
}

/// The cross-process clock: `nextval` of [`seq_name`], retried across
/// connection losses (a lost reply only skips a number).
#[derive(Clone)]
pub struct Seq {
    pool: PgPool,
    sql: String,
}

impl Seq {
    /// Connects (creating the sequence if needed).
    pub async fn connect(url: &str, queue: &str) -> Seq {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .unwrap();
        let name = seq_name(queue);
        // Two sessions creating it at once can both miss it and one then
        // fails (42P07 or a unique violation): the second try finds it.
        let create = format!("CREATE SEQUENCE IF NOT EXISTS {name} AS bigint CACHE 1");
        let mut tries = 0;
        while let Err(e) = sqlx::query(&create).execute(&pool).await {
            tries += 1;
            assert!(tries < 5, "{create} kept failing: {e}");
        }
        Seq {
            pool,
            sql: format!("SELECT nextval('{name}')"),
        }
    }

    pub async fn next(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::query_scalar::<_, i64>(&self.sql)
                .fetch_one(&self.pool)
                .await
            {
                Ok(n) => return u64::try_from(n).unwrap(),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{} kept failing: {e}", self.sql),
            }
        }
    }
}

/// An append-only log, one `write` per line (no torn lines between tasks).
struct Log(Mutex<File>);

impl Log {
    fn line(&self, line: String) {
        let mut file = self.0.lock().unwrap();
        file.write_all(line.as_bytes()).unwrap();
    }
}

// ---------------------------------------------------------------- worker side

fn env(suffix: &str) -> String {
    std::env::var(format!("{ENV}{suffix}")).unwrap()
}

/// The worker's entry: returns at once unless [`ENV`] is set.
pub fn run_if_worker() {
    if std::env::var(ENV).is_err() {
        return;
    }
    let config = Config {
        url: env("_URL"),
        queue: env("_QUEUE"),
        lease_ms: env("_LEASE_MS").parse().unwrap(),
        log: env("_LOG").into(),
        mode: Mode::decode(&env("_MODE")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(config));
}

async fn run(config: Config) {
    // stdin is read on a plain thread (tokio's io-std feature is not
    // enabled); EOF drops the sender, which tells the worker to stop.
    let (tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let log = Arc::new(Log(Mutex::new(
        File::options()
            .create(true)
            .append(true)
            .open(&config.log)
            .unwrap(),
    )));
    let queue: PostgresQueue<String> = PostgresQueue::builder(&config.url, &config.queue)
        .lease(Duration::from_millis(config.lease_ms))
        .build()
        .await
        .unwrap();
    let seq = Seq::connect(&config.url, &config.queue).await;
    match config.mode {
        Mode::Loop {
            tasks,
            max_work_ms,
            readd_one_in,
            requeue_one_in,
            keys,
        } => {
            let loops: Vec<_> = (0..tasks)
                .map(|_| {
                    let (queue, seq, log) = (queue.clone(), seq.clone(), log.clone());
                    tokio::spawn(async move {
                        let plan = Plan {
                            max_work_ms,
                            readd_one_in,
                            requeue_one_in,
                            keys,
                        };
                        process_until_shut_down(&queue, &seq, &log, plan).await;
                    })
                })
                .collect();
            while stdin.recv().await.is_some() {}
            queue.shut_down();
            for task in loops {
                task.await.unwrap();
            }
            queue.shut_down_with_drain().await;
        }
        Mode::Hold => {
            let item = queue.get().await.unwrap();
            let (key, token) = started(&item, &seq, &log).await;
            loop {
                match stdin.recv().await.as_deref() {
                    Some("end") => break,
                    Some(_) => {}
                    // Told nothing: the guard's drop ends it in the background.
                    None => return,
                }
            }
            log.line(format!("V {key} {token} {}\n", item.is_valid()));
            let e = seq.next().await;
            log.line(format!("D {key} {token} {e}\n"));
            let rc = rc_of(item.end_async(Then::Done).await);
            log.line(format!("E {key} {token} {e} {rc} -\n"));
            while stdin.recv().await.is_some() {}
        }
    }
    log.line(format!(
        "C {} {}\n",
        queue.leases_lost(),
        queue.leases_reaped()
    ));
}

#[derive(Clone, Copy)]
struct Plan {
    max_work_ms: u64,
    readd_one_in: u32,
    requeue_one_in: u32,
    keys: u32,
}

fn one_in(n: u32) -> bool {
    n > 0 && fastrand::u32(..n) == 0
}

/// Logs `S` for a fresh hand-out; returns its key and token.
async fn started(item: &Item<String>, seq: &Seq, log: &Log) -> (String, String) {
    let key = (**item).clone();
    let token = item.token().unwrap();
    let s = seq.next().await;
    log.line(format!("S {key} {token} {s}\n"));
    (key, token)
}

fn rc_of(ended: Result<requeue::engine::Ended, QueueError>) -> &'static str {
    match ended {
        Ok(ended) if ended.released => "ok",
        Ok(_) => "unreleased",
        Err(QueueError::LeaseLost) => "lost",
        Err(_) => "err",
    }
}

async fn process_until_shut_down(queue: &PostgresQueue<String>, seq: &Seq, log: &Log, plan: Plan) {
    loop {
        let item = match queue.get().await {
            Ok(item) => item,
            Err(QueueError::ShutDown) => return,
            Err(e) => panic!("get failed: {e}"),
        };
        let (key, token) = started(&item, seq, log).await;
        let work = fastrand::u64(0..=plan.max_work_ms);
        if work > 0 {
            tokio::time::sleep(Duration::from_millis(work)).await;
        }
        if one_in(plan.readd_one_in) {
            let other = if fastrand::bool() {
                key.clone()
            } else {
                format!("k{}", fastrand::u32(..plan.keys.max(1)))
            };
            add_logged(queue, seq, log, other).await;
        }
        let (then, req) = if one_in(plan.requeue_one_in) {
            // Any re-add, delayed or not, must be served by a processing
            // that starts after it.
            let then = match fastrand::u8(..3) {
                0 => Then::Requeue,
                1 => Then::Retry,
                _ => Then::RetryAfter(Duration::from_millis(fastrand::u64(1..20))),
            };
            (then, seq.next().await.to_string())
        } else {
            (Then::Done, "-".to_string())
        };
        let e = seq.next().await;
        log.line(format!("D {key} {token} {e}\n"));
        let rc = rc_of(item.end_async(then).await);
        log.line(format!("E {key} {token} {e} {rc} {req}\n"));
    }
}

/// Adds `key`, retrying connection errors; logs `A` with the seq taken
/// just before the attempt that succeeded.
async fn add_logged(queue: &PostgresQueue<String>, seq: &Seq, log: &Log, key: String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = seq.next().await;
        match queue.add(key.clone()).await {
            Ok(_) => {
                log.line(format!("A {key} {a}\n"));
                return;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("add {key} kept failing: {e}"),
        }
    }
}

// ---------------------------------------------------------------- parent side

/// A running worker process. Dropping it kills the process (SIGCONT first,
/// in case it is stopped) and reaps it, so a failing test leaves nothing.
pub struct Worker {
    pub name: String,
    pub log: PathBuf,
    out: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Worker {
    /// Starts a worker named `name` whose files go to `dir`.
    pub fn spawn(
        dir: &Path,
        name: &str,
        url: &str,
        queue: &str,
        lease_ms: u64,
        mode: Mode,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        File::create(&log).unwrap();
        let output = File::create(&out).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", ENTRY, "--nocapture", "--test-threads=1"])
            .env(ENV, "1")
            .env(format!("{ENV}_URL"), url)
            .env(format!("{ENV}_QUEUE"), queue)
            .env(format!("{ENV}_LEASE_MS"), lease_ms.to_string())
            .env(format!("{ENV}_LOG"), &log)
            .env(format!("{ENV}_MODE"), mode.encode())
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

/// One parsed log line (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Start {
        key: String,
        token: String,
        seq: u64,
    },
    Ending {
        key: String,
        token: String,
        seq: u64,
    },
    End {
        key: String,
        token: String,
        seq: u64,
        rc: String,
        requeue: Option<u64>,
    },
    Add {
        key: String,
        seq: u64,
    },
    Valid {
        key: String,
        token: String,
        valid: bool,
    },
    Counters {
        lost: u64,
        reaped: u64,
    },
}

/// The complete (newline-terminated) lines of a log; a torn last line of a
/// worker that is still writing (or was killed) is skipped.
pub fn read_log(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| parse(line).unwrap_or_else(|| panic!("bad log line {line:?} in {path:?}")))
        .collect()
}

fn parse(line: &str) -> Option<Line> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |s: &str| s.parse::<u64>().ok();
    Some(match f.as_slice() {
        ["S", key, token, seq] => Line::Start {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
        },
        ["D", key, token, seq] => Line::Ending {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
        },
        ["E", key, token, seq, rc, req] => Line::End {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
            rc: rc.to_string(),
            requeue: if *req == "-" { None } else { Some(num(req)?) },
        },
        ["A", key, seq] => Line::Add {
            key: key.to_string(),
            seq: num(seq)?,
        },
        ["V", key, token, valid] => Line::Valid {
            key: key.to_string(),
            token: token.to_string(),
            valid: valid.parse().ok()?,
        },
        ["C", lost, reaped] => Line::Counters {
            lost: num(lost)?,
            reaped: num(reaped)?,
        },
        _ => return None,
    })
}

// ---------------------------------------------------------------- analysis

/// One processing, from its `S` and `E` lines.
#[derive(Debug, Clone)]
pub struct Interval {
    pub worker: usize,
    pub key: String,
    pub token: String,
    pub start: u64,
    /// The seq of its `D` line. `None`: the worker never got there
    /// (killed, or still running).
    pub end: Option<u64>,
    pub rc: Option<String>,
}

impl Interval {
    fn lost(&self) -> bool {
        self.rc.as_deref() == Some("lost")
    }

    fn token(&self) -> i64 {
        self.token
            .parse()
            .unwrap_or_else(|_| panic!("token {:?} is not a number", self.token))
    }
}

/// Every worker's processings and every add, in seq order.
#[derive(Debug, Default)]
pub struct History {
    pub intervals: Vec<Interval>,
    /// key → seq of its last add (parent's and workers').
    pub last_add: HashMap<String, u64>,
    pub adds: usize,
    /// How many of `adds` are the parent's (one per key: its last).
    pub parent_keys: usize,
    /// Per worker: (leases lost, leases reaped) from its `C` line.
    pub counters: Vec<Option<(u64, u64)>>,
    /// Workers killed with `kill -9`: their open processings ended with
    /// the process (their leases were left to be reaped).
    pub killed: HashSet<usize>,
}

impl History {
    /// Reads the workers' logs; `parent_adds` are the parent's own adds.
    pub fn read(workers: &[Worker], parent_adds: &HashMap<String, u64>) -> History {
        let logs: Vec<Vec<Line>> = workers.iter().map(Worker::lines).collect();
        History::from_lines(&logs, parent_adds)
    }

    /// As [`read`](History::read), from parsed logs (one per worker).
    pub fn from_lines(logs: &[Vec<Line>], parent_adds: &HashMap<String, u64>) -> History {
        let mut history = History::default();
        for (key, &seq) in parent_adds {
            history.add(key, seq);
        }
        history.parent_keys = parent_adds.len();
        for (w, lines) in logs.iter().enumerate() {
            let mut open: HashMap<String, usize> = HashMap::new();
            let mut counters = None;
            for line in lines.iter().cloned() {
                match line {
                    Line::Start { key, token, seq } => {
                        open.insert(token.clone(), history.intervals.len());
                        history.intervals.push(Interval {
                            worker: w,
                            key,
                            token,
                            start: seq,
                            end: None,
                            rc: None,
                        });
                    }
                    Line::Ending { key, token, seq } => {
                        let i = *open
                            .get(&token)
                            .unwrap_or_else(|| panic!("D without S: {key} {token}"));
                        history.intervals[i].end = Some(seq);
                    }
                    Line::End {
                        key,
                        token,
                        seq,
                        rc,
                        requeue,
                    } => {
                        let i = open
                            .remove(&token)
                            .unwrap_or_else(|| panic!("E without S: {key} {token}"));
                        // A requeue's re-add ran unless the end failed
                        // outright (`lost` comes from the done that
                        // follows the re-add in the same call).
                        if let Some(a) = requeue.filter(|_| rc == "ok" || rc == "lost") {
                            history.add(&key, a);
                        }
                        let interval = &mut history.intervals[i];
                        interval.end = Some(seq);
                        interval.rc = Some(rc);
                    }
                    Line::Add { key, seq } => history.add(&key, seq),
                    Line::Valid { .. } => {}
                    Line::Counters { lost, reaped } => counters = Some((lost, reaped)),
                }
            }
            history.counters.push(counters);
        }
        history.intervals.sort_by_key(|i| i.start);
        history
    }

    /// Whether `interval`'s holder gave up its lease without ending it:
    /// its done reported `LeaseLost`, or its process was killed while it
    /// processed (before its `D`: its end was never sent).
    fn gone(&self, interval: &Interval) -> bool {
        interval.lost() || (interval.end.is_none() && self.killed.contains(&interval.worker))
    }

    /// Whether `interval` is a killed worker's last, ended or not: its
    /// outcome was never logged.
    fn cut_short(&self, interval: &Interval) -> bool {
        interval.rc.is_none() && self.killed.contains(&interval.worker)
    }

    fn add(&mut self, key: &str, seq: u64) {
        self.adds += 1;
        let last = self.last_add.entry(key.to_string()).or_insert(0);
        *last = (*last).max(seq);
    }

    /// Pairs of processings of one key that break the lease rules:
    /// (violations, excused). Of two processings of a key, the one with
    /// the smaller token (the older lease) must have ended before the
    /// other started, unless it reported `LeaseLost`: two may overlap, or
    /// the older run after the newer, only when the older lost its lease
    /// (excused). Anything else is a key held by two holders at once, or a
    /// newer lease handed out while an older one was still honoured.
    pub fn overlaps(&self) -> (Vec<String>, Vec<String>) {
        let mut by_key: BTreeMap<&str, Vec<&Interval>> = BTreeMap::new();
        for interval in &self.intervals {
            by_key.entry(&interval.key).or_default().push(interval);
        }
        let (mut bad, mut excused) = (Vec::new(), Vec::new());
        for intervals in by_key.values() {
            // Sorted by start; each is compared with every earlier one.
            for (j, later) in intervals.iter().enumerate() {
                for earlier in &intervals[..j] {
                    let overlap = earlier.end.is_none_or(|end| end > later.start);
                    let older_ran_later = earlier.token() > later.token();
                    if !overlap && !older_ran_later {
                        continue;
                    }
                    let older = if older_ran_later { later } else { earlier };
                    let what = if overlap {
                        "overlaps"
                    } else {
                        "ended before the start of, with a larger token,"
                    };
                    let text = format!("{earlier:?} {what} {later:?}");
                    if self.gone(older) {
                        excused.push(text);
                    } else {
                        bad.push(text);
                    }
                }
            }
        }
        (bad, excused)
    }

    /// Keys whose last add was not followed by a processing that started
    /// after it.
    pub fn unserved_adds(&self) -> Vec<String> {
        let mut last_start: HashMap<&str, u64> = HashMap::new();
        for interval in &self.intervals {
            let s = last_start.entry(&interval.key).or_insert(0);
            *s = (*s).max(interval.start);
        }
        let mut unserved: Vec<String> = self
            .last_add
            .iter()
            .filter(|(key, add)| last_start.get(key.as_str()).is_none_or(|s| s < add))
            .map(|(key, add)| {
                format!(
                    "{key}: last add at {add}, last start {:?}",
                    last_start.get(key.as_str())
                )
            })
            .collect();
        unserved.sort();
        unserved
    }

    /// Processings without an end (but for a killed worker's), or whose
    /// end is neither `ok` nor `lost`.
    pub fn unfinished(&self) -> Vec<String> {
        self.intervals
            .iter()
            .filter(|i| !matches!(i.rc.as_deref(), Some("ok" | "lost")) && !self.cut_short(i))
            .map(|i| format!("{i:?}"))
            .collect()
    }

    /// Each processing that ended with `LeaseLost`, with the next hand-out
    /// of its key.
    pub fn lost_details(&self) -> Vec<String> {
        self.intervals
            .iter()
            .filter(|i| i.lost())
            .map(|lost| {
                let next = self
                    .intervals
                    .iter()
                    .find(|i| i.key == lost.key && i.start > lost.start);
                format!("{lost:?}; next hand-out of the key: {next:?}")
            })
            .collect()
    }

    /// The processings of `worker` whose lease it gave up without ending
    /// it (killed during it, or `LeaseLost`) that no later lease of the key
    /// (a larger token) followed: its keys must be reaped and processed
    /// again. (A later lease may have started first, in seq order: the
    /// holder can stall between its `get` and its `S`.)
    pub fn not_taken_over(&self, worker: usize) -> Vec<String> {
        self.intervals
            .iter()
            .filter(|i| i.worker == worker && self.gone(i))
            .filter(|gone| {
                !self
                    .intervals
                    .iter()
                    .any(|i| i.key == gone.key && i.token() > gone.token())
            })
            .map(|gone| {
                let key: Vec<String> = self
                    .intervals
                    .iter()
                    .filter(|i| i.key == gone.key)
                    .map(|i| format!("  {i:?}"))
                    .collect();
                format!(
                    "{gone:?}; last add of the key at {:?}; its processings:\n{}",
                    self.last_add.get(&gone.key),
                    key.join("\n")
                )
            })
            .collect()
    }

    /// The processings of `worker` its holder gave up (see
    /// [`not_taken_over`](History::not_taken_over)).
    pub fn given_up(&self, worker: usize) -> usize {
        self.intervals
            .iter()
            .filter(|i| i.worker == worker && self.gone(i))
            .count()
    }

    /// How many processings ended with `LeaseLost`.
    pub fn lost(&self) -> usize {
        self.intervals.iter().filter(|i| i.lost()).count()
    }

    /// Per worker: how many processings started after `seq`.
    pub fn started_after(&self, workers: usize, seq: u64) -> Vec<usize> {
        let mut counts = vec![0; workers];
        for interval in self.intervals.iter().filter(|i| i.start > seq) {
            counts[interval.worker] += 1;
        }
        counts
    }
}
