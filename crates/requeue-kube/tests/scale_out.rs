//! Scale-out without a leader, as processes: three replicas of the
//! `document_controller_replicas` example's controller, each with its own
//! mock API server serving the same documents (and the same changes), share
//! one Redis queue with a 1.5 s lease. One replica is killed with `kill -9`
//! in the middle of a reconcile.
//!
//! Checked from the replicas' logs (ordered by a Redis `INCR` sequence;
//! see `scale_out/replica.rs`):
//!
//! * no document is reconciled by two replicas at once, except where a
//!   replica was told it lost its lease (none is expected here);
//! * every document's last version is reconciled after it was sent,
//!   including the changes made after the kill;
//! * the keys the killed replica held are reconciled by another replica
//!   after the kill, within about one lease;
//! * the replicas' adds collapsed (fewer reconciles than adds), every
//!   replica did some of the work, and the survivors stop cleanly.
//!
//! Needs `redis-server` on the PATH (as `requeue-redis`'s tests do).
//! Nothing sleeps to wait for a condition: the logs are polled against
//! deadlines; the only fixed pauses space the changes out over time.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[allow(dead_code)]
#[path = "../examples/document_controller_replicas.rs"]
mod example;
#[path = "scale_out/history.rs"]
mod history;
#[path = "scale_out/replica.rs"]
mod replica;

use history::History;
use replica::{Config, Line, Proc, Seq, doc_name};
use requeue_redis::local_server::LocalServer;
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const DOCS: usize = 12;
const LEASE_MS: u64 = 1500;
/// The replica killed mid-run.
const VICTIM: usize = 0;

/// The replica processes' entry point: a no-op unless `RQ_KUBE_REPLICA` is set.
#[test]
fn replica_process() {
    replica::run_if_replica();
}

/// The checker itself, on made-up logs: it must flag a double hold,
/// excuse a lost lease, and end a killed replica's reconciles at the kill.
#[test]
fn history_flags_overlaps() {
    let start = |id, key: &str, seq| Line::Start {
        id,
        key: key.into(),
        rv: 1,
        seq,
    };
    let end = |id, key: &str, seq, lost| Line::End {
        id,
        key: key.into(),
        rv: 1,
        seq,
        lost,
    };
    let r0 = vec![
        start(0, "a", 1),
        end(0, "a", 4, false),
        start(1, "b", 5),
        end(1, "b", 8, true),
        start(2, "c", 9),
    ];
    let r1 = vec![
        start(0, "a", 2), // inside r0's: a double hold
        end(0, "a", 3, false),
        start(1, "b", 6), // inside r0's, which lost its lease
        end(1, "b", 7, false),
        start(2, "c", 11), // after the kill at 10
        end(2, "c", 12, false),
    ];
    let mut history = History::from_logs(&[r0, r1]);
    assert_eq!(history.unfinished().len(), 1);
    assert_eq!(history.killed(0, 10), ["c"]);
    let (bad, excused) = history.overlaps();
    assert_eq!((bad.len(), excused.len()), (1, 1), "{bad:?} {excused:?}");
    assert!(bad[0].contains("key: \"a\""), "{bad:?}");
    assert!(history.unfinished().is_empty());
    assert!(history.served("c", 1, 10).is_some_and(|i| i.replica == 1));
    assert!(history.served("b", 1, 5).is_some_and(|i| i.replica == 1));
    assert_eq!(history.started_after(2, 8), [1, 1]);
}

/// Polls `check` (every 20 ms) until it returns `Some`, for at most `timeout`.
async fn poll<R>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<R>) -> R {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn history(replicas: &[Proc]) -> History {
    let logs: Vec<Vec<Line>> = replicas.iter().map(Proc::lines).collect();
    History::from_logs(&logs)
}

/// The test's view of each document: its current version and the seq
/// taken just before that version was sent to the replicas.
struct Docs {
    versions: Vec<(u64, u64)>,
    /// How many change events the replicas' watches were sent in all.
    sent: usize,
}

impl Docs {
    /// Changes document `i` on every live replica (as one API server's
    /// watch would tell them all).
    async fn change(&mut self, i: usize, seq: &Seq, replicas: &mut [Proc], live: &[bool]) {
        let rv = self.versions[i].0 + 1;
        self.versions[i] = (rv, seq.next().await);
        for (r, replica) in replicas.iter_mut().enumerate() {
            if live[r] {
                replica.send(&format!("change {} {rv}", doc_name(i)));
                self.sent += 1;
            }
        }
    }

    /// The documents whose last version has not been reconciled since it
    /// was sent.
    fn unserved(&self, history: &History) -> Vec<String> {
        (0..DOCS)
            .filter(|&i| {
                let (rv, sent) = self.versions[i];
                history.served(&doc_name(i), rv, sent).is_none()
            })
            .map(|i| format!("{}@{}", doc_name(i), self.versions[i].0))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_queue_and_take_over_a_killed_replicas_keys() {
    let began = Instant::now();
    let server = tokio::task::spawn_blocking(LocalServer::start)
        .await
        .unwrap()
        .unwrap();
    let url = server.url();
    let queue = format!("scale-out-{}", std::process::id());
    let dir = tempfile::Builder::new()
        .prefix("rq-kube-scale-")
        .tempdir()
        .unwrap();
    let mut replicas: Vec<Proc> = (0..REPLICAS)
        .map(|r| {
            let name = format!("replica-{r}");
            let config = Config {
                url: url.clone(),
                queue: queue.clone(),
                lease_ms: LEASE_MS,
                log: dir.path().join(format!("{name}.log")),
                docs: DOCS,
            };
            Proc::spawn(dir.path(), &name, config)
        })
        .collect();
    let mut live = vec![true; REPLICAS];
    let seq = Seq::connect(&url, &queue).await;
    let mut docs = Docs {
        versions: vec![(1, 0); DOCS],
        sent: 0,
    };

    // Every replica lists every document; each is reconciled.
    poll(Duration::from_secs(30), "the initial list", || {
        docs.unserved(&history(&replicas)).is_empty().then_some(())
    })
    .await;

    // Changes over time, while the replicas work.
    for round in 0..4 {
        for j in 0..3 {
            docs.change((round * 5 + j) % DOCS, &seq, &mut replicas, &live)
                .await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Make the victim's next reconciles hang, keep changing documents until
    // both its workers are inside one, and kill it there.
    replicas[VICTIM].send("slow");
    let slow_from = poll(Duration::from_secs(10), "`slow` to take effect", || {
        replicas[VICTIM].lines().iter().find_map(|line| match line {
            Line::Slow { seq } => Some(*seq),
            _ => None,
        })
    })
    .await;
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let in_flight = replicas[VICTIM]
            .lines()
            .iter()
            .filter(|line| matches!(line, Line::Start { seq, .. } if *seq > slow_from))
            .count();
        // Both its workers (the example runs two) stuck in a reconcile.
        if in_flight == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the victim took {in_flight} keys, not 2"
        );
        docs.change(next % DOCS, &seq, &mut replicas, &live).await;
        next += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replicas[VICTIM].kill9();
    live[VICTIM] = false;
    let killed_at = Instant::now();
    let kill_seq = seq.next().await;
    let held = history(&replicas).killed(VICTIM, kill_seq);
    assert_eq!(held.len(), 2, "{held:?}");

    // More changes, to the survivors only, and never to a held key: those
    // must come back by the lease alone.
    for round in 0..3 {
        for j in 0..3 {
            let i = (round * 7 + j * 3 + 1) % DOCS;
            if !held.contains(&doc_name(i)) {
                docs.change(i, &seq, &mut replicas, &live).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // The held keys come back, to a survivor, after the kill.
    let mut came_back = Vec::new();
    for key in &held {
        let after = poll(Duration::from_secs(15), "a held key to come back", || {
            let mut h = history(&replicas);
            h.killed(VICTIM, kill_seq);
            h.intervals
                .iter()
                .any(|i| &i.key == key && i.replica != VICTIM && i.start > kill_seq)
                .then(|| killed_at.elapsed())
        })
        .await;
        came_back.push((key.clone(), after));
    }

    // Every document's last version is reconciled.
    poll(Duration::from_secs(20), "every last version", || {
        let mut h = history(&replicas);
        h.killed(VICTIM, kill_seq);
        docs.unserved(&h).is_empty().then_some(())
    })
    .await;
    for (r, replica) in replicas.iter_mut().enumerate() {
        if live[r] {
            replica.finish(Duration::from_secs(15)).await;
        }
    }

    let mut history = history(&replicas);
    history.killed(VICTIM, kill_seq);
    let (bad, excused) = history.overlaps();
    assert!(
        bad.is_empty(),
        "a document was reconciled by two replicas at once:\n{}",
        bad.join("\n")
    );
    let unfinished = history.unfinished();
    assert!(unfinished.is_empty(), "never ended: {unfinished:?}");
    assert!(docs.unserved(&history).is_empty());
    let per_replica = history.started_after(REPLICAS, 0);
    assert!(
        per_replica.iter().all(|&n| n > 0),
        "a replica never worked: {per_replica:?}"
    );
    let after_kill = history.started_after(REPLICAS, kill_seq);
    // A held key was not handed out while its lease could still be live
    // (the victim renewed it every lease/3), nor long after it ran out.
    let lease = Duration::from_millis(LEASE_MS);
    for (key, after) in &came_back {
        assert!(
            *after >= lease / 2 && *after <= lease + Duration::from_secs(5),
            "{key} came back {after:?} after the kill (lease {lease:?})"
        );
    }
    let changes: u64 = docs.versions.iter().map(|(rv, _)| rv - 1).sum();
    // Every replica adds every listed document and every change it sees:
    // without dedup each add would be a reconcile (plus the held keys).
    let adds = REPLICAS * DOCS + docs.sent;
    assert!(
        history.intervals.len() < adds,
        "{} reconciles for {adds} adds: the adds did not collapse",
        history.intervals.len()
    );
    eprintln!(
        "{} reconciles for {adds} adds of {DOCS} documents ({changes} changes) by {per_replica:?}; \
         replica-{VICTIM} killed holding {held:?}, back after {came_back:?}; \
         after the kill {after_kill:?}; {} overlaps excused by a lost lease; took {:?}",
        history.intervals.len(),
        excused.len(),
        began.elapsed()
    );
    drop(server);
}
