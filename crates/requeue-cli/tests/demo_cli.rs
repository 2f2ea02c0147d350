//! `requeue demo` end to end: a short plain run whose numbers add up, flag
//! validation, `--help`, and a graceful drain on SIGINT.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn requeue() -> Command {
    Command::new(env!("CARGO_BIN_EXE_requeue"))
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
