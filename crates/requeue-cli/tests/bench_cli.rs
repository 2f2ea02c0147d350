//! `requeue bench --quick --json` runs and every figure it prints is positive.

use std::process::Command;

fn requeue() -> Command {
    Command::new(env!("CARGO_BIN_EXE_requeue"))
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
