//! `requeue bench --quick --json` runs and every figure it prints is positive.

use std::process::Command;

/// The binary, with no `REDIS_URL` or `RUST_LOG` from the caller's
/// environment (they would change what it runs and logs).
fn requeue() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_requeue"));
    command.env_remove("REDIS_URL").env_remove("RUST_LOG");
    command
}

#[test]
fn bench_quick_json_prints_positive_figures_for_each_workload() {
    let output = requeue()
        .args([
            "bench", "--quick", "--json", "--runs", "1", "W1", "W3", "W8",
        ])
        .output()
        .expect("run requeue");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    let ids: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{}/{}",
                l["workload"].as_str().unwrap_or("?"),
                l["engine"].as_str().unwrap_or("?")
            )
        })
        .collect();
    // The floors of W1 and W3 are added (and run first) so their ratios are known.
    assert_eq!(
        ids,
        [
            "W1/crossbeam-channel",
            "W1/requeue",
            "W3/crossbeam-channel",
            "W3/requeue",
            "W8/requeue"
        ],
        "{stdout}"
    );
    for requeue in [&lines[1], &lines[3]] {
        let ratio = requeue["ratio_to_floor"].as_f64().unwrap_or(0.0);
        assert!(ratio > 0.0, "ratio_to_floor of {requeue} is not positive");
    }
    for figure in &lines {
        for field in [
            "ops",
            "items",
            "wall_seconds",
            "ops_per_sec",
            "items_per_sec",
        ] {
            let value = figure[field].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "{field} of {figure} is not positive");
        }
    }
}

#[test]
fn bad_flags_and_unknown_workloads_are_refused() {
    let bad_flag = requeue()
        .args(["bench", "--no-such-flag"])
        .output()
        .expect("run requeue");
    assert_eq!(bad_flag.status.code(), Some(2), "usage errors exit with 2");
    let unknown = requeue()
        .args(["bench", "--quick", "W99"])
        .output()
        .expect("run requeue");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown workload"));
}

#[test]
fn bench_redis_quick_json_runs_w1_and_w3_at_three_concurrencies_beside_the_floor() {
    let output = requeue()
        .args([
            "bench", "--engine", "redis", "--quick", "--json", "--runs", "1",
        ])
        .output()
        .expect("run requeue");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(
        lines.len(),
        13,
        "W1 and W3 x 1/8/32 workers x (engine, floor), then the idle latency: {stdout}"
    );
    let (idle, lines) = lines.split_last().expect("rows");
    assert_eq!(idle["workload"], "idle", "{idle}");
    let (p50, p99) = (
        idle["p50_seconds"].as_f64().unwrap_or(0.0),
        idle["p99_seconds"].as_f64().unwrap_or(0.0),
    );
    assert!(0.0 < p50 && p50 <= p99, "{idle}");
    for figure in lines {
        let items = figure["items_per_sec"].as_f64().unwrap_or(0.0);
        assert!(items > 0.0, "{figure}");
    }
    let engines = lines.iter().filter(|l| {
        l["engine"]
            .as_str()
            .is_some_and(|e| e.starts_with("requeue-redis"))
    });
    for engine in engines {
        assert!(
            engine["ratio_to_floor"].as_f64().unwrap_or(0.0) > 0.0,
            "{engine}"
        );
    }
}

#[test]
fn bench_redis_unreachable_is_one_clear_line_and_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("redis://127.0.0.1:{port}/");
    let output = requeue()
        .args(["bench", "--engine", "redis", "--quick", "--redis", &url])
        .output()
        .expect("run requeue");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn bench_arguments_are_checked_for_every_engine() {
    for args in [
        &["bench", "--engine", "redis", "W99"][..],
        &["bench", "--engine", "redis", "W5"],
        &["bench", "W99"],
        // --redis with the memory engine would be ignored: refused.
        &["bench", "--redis", "redis://x", "W1"],
    ] {
        let output = requeue().args(args).output().expect("run requeue");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "nothing ran: {args:?}");
    }
    // REDIS_URL in the environment is not a flag: the memory engine
    // ignores it (here the unknown workload is the only complaint).
    let output = requeue()
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .args(["bench", "W99"])
        .output()
        .expect("run requeue");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown workload `W99`"), "{stderr}");
    // A long unknown name is shown once, cut short.
    let long = "Z".repeat(10_000);
    let output = requeue()
        .args(["bench", "--engine", "redis", &long])
        .output()
        .expect("run requeue");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.matches('Z').count() <= 100, "{stderr}");
}

#[test]
fn bench_redis_never_prints_the_password_and_names_a_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("redis://admin:s3cretpass@127.0.0.1:{closed}/");
    let by_flag = requeue()
        .args(["bench", "--engine", "redis", "--quick", "--redis", &url])
        .output()
        .expect("run requeue");
    let by_env = requeue()
        .env("REDIS_URL", &url)
        .args(["bench", "--engine", "redis", "--quick"])
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
        assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    }
    // A server that accepts connections and never answers.
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = frozen.local_addr().expect("port").port();
    let url = format!("redis://127.0.0.1:{port}/");
    let output = requeue()
        .args(["bench", "--engine", "redis", "--quick", "--redis", &url])
        .output()
        .expect("run requeue");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Redis at {url} did not answer within 2 s")),
        "{stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
}
