//! `requeue inspect --postgres` and `requeue demo --postgres local` against
//! throwaway PostgreSQL servers: the counts by state, one-line errors
//! without credentials, and a short demo whose checks hold.
#![allow(clippy::unwrap_used)]

use requeue_postgres::PostgresQueue;
use requeue_postgres::local_server::LocalServer;
use std::process::Command;
use std::time::Duration;

/// The binary, without the caller's server URLs or log settings.
fn requeue() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG");
    command
}

fn printed(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn inspect_shows_counts_by_state_stats_and_dead_rows() {
    let server = LocalServer::start().unwrap();
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = runtime.block_on(async {
        let queue = PostgresQueue::<String>::builder(url.as_str(), "shop")
            .build()
            .await
            .unwrap();
        for key in ["a", "b", "c"] {
            queue.add(key.to_string()).await.unwrap();
        }
        queue
            .add_after("later".to_string(), Duration::from_secs(600))
            .await
            .unwrap();
        queue
    });
    // One held (leased) while inspect runs.
    let held = runtime.block_on(queue.get()).unwrap();
    assert_eq!(*held, "a");

    let output = requeue()
        .args(["inspect", "--postgres", &url, "--queue", "shop"])
        .output()
        .unwrap();
    let (stdout, stderr) = printed(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    for part in [
        "queue shop at postgres://***@127.0.0.1:",
        "queued              2",
        "processing          1 (0 added again while held",
        "delayed             1 (next due in ",
        "idle with failures  0",
        "oldest lease deadline: in ",
        "stats: lease_expired_total 0, retries_total 0",
        "n_dead_tup",
    ] {
        assert!(stdout.contains(part), "{part:?} not in:\n{stdout}");
    }

    // An unknown queue: one line, exit 1.
    let output = requeue()
        .args(["inspect", "--postgres", &url, "--queue", "nope"])
        .output()
        .unwrap();
    let (stdout, stderr) = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("no queue named `nope`"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    runtime
        .block_on(held.end_async(requeue::engine::Then::Done))
        .unwrap();
}

#[test]
fn inspect_unreachable_postgres_is_one_line_without_the_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let url = format!("postgres://app:s3cretpass@127.0.0.1:{port}/db");
    let output = requeue()
        .args(["inspect", "--postgres", &url, "--queue", "q"])
        .output()
        .unwrap();
    let (stdout, stderr) = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("s3cretpass"));
    assert!(
        stderr.contains("cannot reach PostgreSQL at postgres://***@127.0.0.1:"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn inspect_wants_one_server() {
    let both = requeue()
        .args([
            "inspect",
            "--redis",
            "redis://127.0.0.1:1/",
            "--postgres",
            "postgres://h/db",
        ])
        .args(["--queue", "q"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    let neither = requeue()
        .args(["inspect", "--queue", "q"])
        .output()
        .unwrap();
    assert_eq!(neither.status.code(), Some(2));
}

#[test]
fn a_short_demo_on_a_local_postgres_holds_its_checks() {
    let output = requeue()
        .args([
            "demo",
            "--postgres",
            "local",
            "--duration",
            "2s",
            "--objects",
            "200",
        ])
        .args(["--plain", "--fail-rate", "0.1", "--panic-rate", "0.01"])
        .output()
        .unwrap();
    let (stdout, stderr) = printed(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("postgres: postgres://***@127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("(throwaway, fsync on)"), "{stdout}");
    for check in ["no key left leased at the end:", "queue deleted:"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check:?} in:\n{stdout}"));
        assert!(line.trim_end().ends_with("ok"), "{line}");
    }
    assert!(stdout.contains("retries (PostgreSQL)"), "{stdout}");
    assert!(stdout.contains("summary: attempted="), "{stdout}");
}

#[test]
fn demo_postgres_flags_are_checked() {
    let bad = requeue()
        .args(["demo", "--postgres", "mysql://u:s3cretpass@h/db"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("s3cretpass"));
    let bench = requeue()
        .args(["bench", "--postgres", "postgres://h/db"])
        .output()
        .unwrap();
    assert_eq!(bench.status.code(), Some(2));
    let unknown = requeue()
        .args(["bench", "--engine", "postgres", "--workloads", "W1,W5"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("W5 has no PostgreSQL version"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// `node --version` as (major, minor), if Node.js is on PATH.
fn node_version() -> Option<(u32, u32)> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `bench --engine postgres --peers`: requeue-postgres, graphile-worker and
/// pg-boss on one throwaway server, each with a rate and a statement count
/// for every worker count, and requeue's ratios to both. (Correctness of
/// the comparison's plumbing, not its figures.) Skipped, saying so, where
/// Node.js is missing or older than the peers need (20.19).
#[test]
fn peers_quick_json_has_three_systems_with_rates_statements_and_ratios() {
    match node_version() {
        Some(version) if version >= (20, 19) => {}
        other => {
            eprintln!(
                "skipped: the PostgreSQL peers need Node.js 20.19 or later (found {other:?})"
            );
            return;
        }
    }
    let output = requeue()
        .args([
            "bench",
            "--engine",
            "postgres",
            "--peers",
            "--workloads",
            "W3",
            "--quick",
            "--json",
            "--runs",
            "1",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = printed(&output);
    assert!(output.status.success(), "{stderr}");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for workers in [1, 8, 32] {
        for system in ["requeue-postgres", "graphile-worker", "pg-boss"] {
            let row = rows
                .iter()
                .find(|r| {
                    r["workers"] == workers
                        && r["engine"].as_str().is_some_and(|e| e.starts_with(system))
                })
                .unwrap_or_else(|| panic!("no row for {system} x{workers}:\n{stdout}"));
            assert!(row["items_per_sec"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["statements_per_item"].as_f64().unwrap() > 0.0, "{row}");
            if system == "requeue-postgres" {
                assert!(row["x_graphile_worker"].as_f64().unwrap() > 0.0, "{row}");
                assert!(row["x_pg_boss"].as_f64().unwrap() > 0.0, "{row}");
            }
        }
    }
}
