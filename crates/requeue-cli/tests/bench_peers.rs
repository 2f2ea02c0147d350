//! `requeue bench --engine redis --peers`: BullMQ beside requeue-redis on
//! a throwaway redis-server, at quick sizes, and its failures (no Node.js,
//! a failed install, a missing `--engine redis`) as one clear line.
//!
//! The comparison needs Node.js; without `node` on PATH that test says
//! so and passes (CI installs Node.js, see scripts/test.sh). The packages
//! are installed by the bench itself if `npm ci` has not been run.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn requeue(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .env_remove("REQUEUE_BULLMQ_DIR")
        .args(args);
    command
}

fn node_version() -> Option<String> {
    let out = Command::new("node").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn figure(row: &Value, field: &str) -> f64 {
    row[field].as_f64().unwrap_or(f64::NAN)
}

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("requeue-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn peers_quick_json_has_both_systems_with_rates_commands_and_round_trips() {
    let Some(version) = node_version() else {
        eprintln!("skipped: `node` is not installed, and BullMQ runs on Node.js");
        return;
    };
    eprintln!("Node.js {version}");
    let output = requeue(&[
        "bench", "--engine", "redis", "--peers", "--quick", "--json", "--runs", "1",
    ])
    .output()
    .expect("run requeue");
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["workload"].as_str().unwrap_or("?"),
                r["engine"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let mut expected = Vec::new();
    for workers in [1, 8, 32] {
        for workload in ["W1", "W3"] {
            expected.push(format!("{workload}/requeue-redis x{workers}"));
            expected.push(format!("{workload}/bullmq x{workers}"));
        }
    }
    assert_eq!(ids, expected, "{stdout}");
    for row in &rows {
        for field in [
            "items_per_sec",
            "commands_per_item",
            "round_trips_per_item",
            "items",
            "wall_seconds",
        ] {
            assert!(figure(row, field) > 0.0, "{field} of {row}");
        }
        // Every client command is executed, so there are at least as many
        // commands as round trips.
        assert!(
            figure(row, "commands_per_item") >= figure(row, "round_trips_per_item"),
            "{row}"
        );
        let requeue_row = row["engine"]
            .as_str()
            .is_some_and(|e| e.starts_with("requeue-redis"));
        if !requeue_row {
            // BullMQ sends each job's add and completion on their own.
            assert!(figure(row, "round_trips_per_item") >= 1.0, "{row}");
        }
        if requeue_row {
            for field in ["items_per_sec", "commands_per_item", "round_trips_per_item"] {
                let ratio = row["x_bullmq"][field].as_f64().unwrap_or(0.0);
                assert!(ratio > 0.0, "x_bullmq.{field} of {row}");
            }
        } else {
            assert!(row.get("x_bullmq").is_none(), "{row}");
        }
    }
}

#[test]
fn peers_without_node_is_one_clear_line_and_exit_1() {
    // An empty PATH: no node (nor redis-server, which is not reached).
    let empty = Scratch::new("no-node");
    let output = requeue(&["bench", "--engine", "redis", "--peers", "--quick"])
        .env("PATH", &empty.0)
        .output()
        .expect("run requeue");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(output.stdout.is_empty(), "nothing ran");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains("--peers"), "{text}");
    assert!(text.contains("Node.js is needed to run BullMQ"), "{text}");
    assert!(text.contains("`node` is not on PATH"), "{text}");
}

#[test]
fn a_failed_install_stops_the_bench_with_npm_s_reason() {
    if node_version().is_none() {
        eprintln!("skipped: `node` is not installed (the install is tried after node is found)");
        return;
    }
    // package.json and package-lock.json out of step: `npm ci` refuses
    // without touching the network.
    let dir = Scratch::new("bad-peer");
    std::fs::write(dir.0.join("bench.js"), "process.exit(1);\n").expect("write");
    std::fs::write(
        dir.0.join("package.json"),
        r#"{"name":"bad-peer","version":"1.0.0","dependencies":{"bullmq":"6.7.6"}}"#,
    )
    .expect("write");
    std::fs::write(
        dir.0.join("package-lock.json"),
        r#"{"name":"bad-peer","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"bad-peer","version":"1.0.0"}}}"#,
    )
    .expect("write");
    let output = requeue(&["bench", "--engine", "redis", "--peers", "--quick"])
        .env("REQUEUE_BULLMQ_DIR", &dir.0)
        .output()
        .expect("run requeue");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(output.stdout.is_empty(), "nothing ran");
    assert!(text.contains("cannot install BullMQ's packages"), "{text}");
    assert!(text.contains("npm ci"), "{text}");
    assert!(
        !dir.0.join("node_modules").exists(),
        "no half-filled node_modules"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".install-"))
        .collect();
    assert!(leftovers.is_empty(), "the staging directory is removed");
}

#[test]
fn peers_needs_the_redis_engine() {
    let output = requeue(&["bench", "--peers", "W1"])
        .output()
        .expect("run requeue");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("--peers") && text.contains("--engine redis"),
        "{text}"
    );
    assert!(output.stdout.is_empty(), "nothing ran");
}
