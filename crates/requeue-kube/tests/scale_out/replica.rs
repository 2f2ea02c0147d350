//! Replica processes for `scale_out.rs`, and the parent's handle on them.
//!
//! A replica is this test binary run again (`current_exe() --exact
//! replica_process …`) with its [`Config`] as JSON in [`ENV`]. It runs the
//! `document_controller_replicas` example's controller on its own tokio
//! runtime, against its own mock API server serving `DOCS` documents at
//! resourceVersion 1, on the shared Redis queue. Its stdin takes:
//!
//! | line | effect |
//! |---|---|
//! | `change NAME RV` | the mock's document watch reports `NAME` modified to `RV` |
//! | `slow` | from now on every reconcile takes 30 s (so one is surely in flight when the parent kills the process) |
//!
//! and EOF stops the controller gracefully. It appends one line per event
//! to its log (one `write` per line, so lines never tear):
//!
//! | line | meaning |
//! |---|---|
//! | `S id key rv seq` | reconcile `id` of document `key` at resourceVersion `rv` started |
//! | `E id key rv seq lost` | it ended; `lost` = 1 if this process lost any lease meanwhile |
//! | `M seq` | `slow` took effect |
//!
//! Every `seq` is an `INCR` of one Redis key: Redis runs commands one at
//! a time, so the numbers order events across processes consistently with
//! real time (`Instant`s cannot be compared across processes). `S` is
//! taken after the queue handed the key out and `E` before the controller
//! ends it, so `[S, E]` lies inside the replica's lease.

use crate::example::document_controller::{self, Context, Document};
use crate::example::{DOCUMENTS, document, mock, replica_controller, replica_queue};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use requeue::wait::Stop;
use requeue_kube::Action;
use requeue_redis::RedisQueue;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that turns the test binary into a replica.
pub const ENV: &str = "RQ_KUBE_REPLICA";
/// The `#[test]` fn that runs a replica.
pub const ENTRY: &str = "replica_process";

/// What one replica process does.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Config {
    pub url: String,
    pub queue: String,
    pub lease_ms: u64,
    pub log: PathBuf,
    pub docs: usize,
}

/// The name of document `i`.
pub fn doc_name(i: usize) -> String {
    format!("doc-{i:02}")
}

/// The cross-process clock: `INCR` of one Redis key per queue.
#[derive(Clone)]
pub struct Seq {
    conn: redis::aio::MultiplexedConnection,
    key: String,
}

impl Seq {
    pub async fn connect(url: &str, queue: &str) -> Seq {
        let client = redis::Client::open(url).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        Seq {
            conn,
            key: format!("rqtest:{{{queue}}}:seq"),
        }
    }

    pub async fn next(&self) -> u64 {
        let mut conn = self.conn.clone();
        redis::cmd("INCR")
            .arg(&self.key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------- replica side

struct Replica {
    inner: Arc<Context>,
    queue: RedisQueue<ObjectRef<Document>>,
    seq: Seq,
    log: Mutex<File>,
    next_id: AtomicU64,
    slow: AtomicBool,
}

impl Replica {
    fn line(&self, line: String) {
        self.log.lock().unwrap().write_all(line.as_bytes()).unwrap();
    }
}

/// The replica's entry: returns at once unless [`ENV`] is set.
pub fn run_if_replica() {
    let Ok(json) = std::env::var(ENV) else {
        return;
    };
    let config: Config = serde_json::from_str(&json).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(config));
}

async fn run(config: Config) {
    // stdin is read on a plain thread (tokio's io-std feature is off);
    // EOF drops the sender, which stops the replica.
    let (tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let docs: Vec<Document> = (0..config.docs)
        .map(|i| document(&doc_name(i), "v1", 1))
        .collect();
    let no_configmaps: &[k8s_openapi::api::core::v1::ConfigMap] = &[];
    let mock = mock::Mock::start(vec![
        mock::collection(DOCUMENTS, &docs),
        mock::collection(crate::example::CONFIGMAPS, no_configmaps),
    ]);
    let queue = replica_queue(
        &config.url,
        &config.queue,
        Duration::from_millis(config.lease_ms),
    )
    .await
    .unwrap();
    let replica = Arc::new(Replica {
        inner: Arc::new(Context {
            client: mock.client.clone(),
        }),
        queue: queue.clone(),
        seq: Seq::connect(&config.url, &config.queue).await,
        log: Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(&config.log)
                .unwrap(),
        ),
        next_id: AtomicU64::new(0),
        slow: AtomicBool::new(false),
    });
    let stop = Stop::new();
    let run = tokio::spawn(
        replica_controller(mock.client.clone(), queue, stop.clone()).run(
            reconcile,
            |doc, error, replica: Arc<Replica>| {
                document_controller::error_policy(doc, error, replica.inner.clone())
            },
            replica.clone(),
        ),
    );
    while let Some(line) = stdin.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["change", name, rv] => {
                let rv: u64 = rv.parse().unwrap();
                let event = mock::event("MODIFIED", &document(name, &format!("v{rv}"), rv));
                mock.send(DOCUMENTS, vec![event]);
            }
            ["slow"] => {
                replica.slow.store(true, Ordering::SeqCst);
                let seq = replica.seq.next().await;
                replica.line(format!("M {seq}\n"));
            }
            other => panic!("unknown command {other:?}"),
        }
    }
    stop.stop();
    let summary = run.await.unwrap().unwrap();
    eprintln!("replica summary: {summary:?}");
}

async fn reconcile(
    doc: Arc<Document>,
    replica: Arc<Replica>,
) -> Result<Action, document_controller::Error> {
    let id = replica.next_id.fetch_add(1, Ordering::SeqCst);
    let key = doc.name_any();
    let rv = doc.resource_version().unwrap_or_default();
    let lost_before = replica.queue.leases_lost();
    let start = replica.seq.next().await;
    replica.line(format!("S {id} {key} {rv} {start}\n"));
    // Work long enough for the replicas' workers to overlap in time (so
    // a double hand-out would show), varied per key and version.
    let work = if replica.slow.load(Ordering::SeqCst) {
        Duration::from_secs(30)
    } else {
        let spread = key.bytes().chain(rv.bytes()).map(u64::from).sum::<u64>() % 100;
        Duration::from_millis(40 + spread)
    };
    tokio::time::sleep(work).await;
    let result = document_controller::reconcile(doc, replica.inner.clone()).await;
    let end = replica.seq.next().await;
    let lost = u8::from(replica.queue.leases_lost() > lost_before);
    replica.line(format!("E {id} {key} {rv} {end} {lost}\n"));
    result
}

// ---------------------------------------------------------------- parent side

/// A running replica process; dropping it kills and reaps it, so a
/// failing test leaves nothing behind.
pub struct Proc {
    pub name: String,
    log: PathBuf,
    out: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, config: Config) -> Proc {
        let out = dir.join(format!("{name}.out"));
        File::create(&config.log).unwrap();
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
        Proc {
            name: name.to_string(),
            log: config.log,
            out,
            child,
            stdin,
        }
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
        self.stdin = None;
    }

    /// Closes stdin and checks the replica stops cleanly within `timeout`.
    pub async fn finish(&mut self, timeout: Duration) {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop; output:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            status.success(),
            "{} failed ({status}); output:\n{}",
            self.name,
            self.output()
        );
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The complete lines of its log so far.
    pub fn lines(&self) -> Vec<Line> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        complete.lines().map(Line::parse).collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One parsed log line (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Start {
        id: u64,
        key: String,
        rv: u64,
        seq: u64,
    },
    End {
        id: u64,
        key: String,
        rv: u64,
        seq: u64,
        lost: bool,
    },
    Slow {
        seq: u64,
    },
}

impl Line {
    fn parse(text: &str) -> Line {
        let w: Vec<&str> = text.split(' ').collect();
        let n = |i: usize| -> u64 { w[i].parse().unwrap() };
        match w[0] {
            "S" => Line::Start {
                id: n(1),
                key: w[2].into(),
                rv: n(3),
                seq: n(4),
            },
            "E" => Line::End {
                id: n(1),
                key: w[2].into(),
                rv: n(3),
                seq: n(4),
                lost: w[5] == "1",
            },
            "M" => Line::Slow { seq: n(1) },
            _ => panic!("bad log line {text:?}"),
        }
    }
}
