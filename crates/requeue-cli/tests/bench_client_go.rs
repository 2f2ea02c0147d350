//! `requeue bench`'s task flavours and `--client-go PATH`, run as a user
//! runs them; client-go is played by a small shell script that prints a
//! wqbench line for each `-w ID` (and logs the ids it was asked for).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn requeue(args: &[&str]) -> Output {
    loop {
        let output = Command::new(env!("CARGO_BIN_EXE_requeue"))
            .env_remove("REDIS_URL")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .expect("run requeue");
        // A script written a moment ago can still be open for writing in a
        // process another test thread forked: try again.
        if !String::from_utf8_lossy(&output.stderr).contains("Text file busy") {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn json_rows(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect()
}

fn id(row: &Value) -> String {
    format!(
        "{}/{}",
        row["workload"].as_str().unwrap_or("?"),
        row["engine"].as_str().unwrap_or("?")
    )
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

    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake wqbench: client-go's stored reference figures (docs/benchmarks.md
/// §6), one line per `-w ID`.
fn fake_wqbench(dir: &Scratch) -> (PathBuf, PathBuf) {
    let log = dir.0.join("calls.log");
    let body = format!(
        r#"#!/bin/sh
echo "$2" >> '{log}'
case "$2" in
W1) echo "W1 fifo-single ops_per_s=3580000 wall_s=0.8380 items_per_s=1193333 ops=3000000 rss_peak_kb=207872 gc_cycles=5 gomaxprocs=2" ;;
W1chan) echo "W1chan chan-fifo-single ops_per_s=49800000 wall_s=0.0402 items_per_s=24900000 ops=2000000 rss_peak_kb=90000 gc_cycles=0 gomaxprocs=2" ;;
W2) echo "W2 dedup ops_per_s=37700000 wall_s=0.0266 gets=1000 ops=1002000 rss_peak_kb=3000 gc_cycles=0 gomaxprocs=2" ;;
W3) echo "W3 mpmc items_per_s=1550000 wall_s=0.6452 ops_per_s=4650000 items=1000000 producers=2 consumers=2 rss_peak_kb=148480 gc_cycles=3 gomaxprocs=2" ;;
W3chan) echo "W3chan chan-mpmc items_per_s=12200000 wall_s=0.0820 items=1000000 producers=2 consumers=2 rss_peak_kb=77000 gc_cycles=0 gomaxprocs=2" ;;
W4) echo "W4 mpmc-oversub items_per_s=1480000 wall_s=0.6757 ops_per_s=4440000 items=1000000 producers=8 consumers=8 rss_peak_kb=150000 gc_cycles=3 gomaxprocs=2" ;;
W4chan) echo "W4chan chan-mpmc-oversub items_per_s=12400000 wall_s=0.0806 items=1000000 producers=8 consumers=8 rss_peak_kb=77000 gc_cycles=0 gomaxprocs=2" ;;
W5) echo "W5 hot-requeue processed_per_s=176000 processed=352000 wall_s=2.0000 adds_per_s=900000 adds=1800000 producer_s=2.0000 rss_peak_kb=9000 gc_cycles=1 gomaxprocs=2" ;;
W6) echo "W6 delayed adds_per_s=444000 producer_s=2.2523 wall_s=3.1000 late_p50_ms=95.500 late_p99_ms=290.250 late_max_ms=301.000 late_min_ms=0.001 seed=0x5EED rss_peak_kb=224256 gc_cycles=9 gomaxprocs=2" ;;
W7) echo "W7 limiter-when ops_per_s=3070000 wall_s=0.9772 ops=3000000 rss_with_n_tracked_kb=181248 rss_peak_kb=181300 gc_cycles=4 gomaxprocs=2" ;;
W8) echo "W8 ratelimited-queue wall_s=0.0420 cpu_s=0.0510 gets_per_s=952380 gets=40000 keys=10000 rss_peak_kb=9748 gc_cycles=3 gomaxprocs=2" ;;
*) echo "unknown workload $2" >&2; exit 2 ;;
esac
"#,
        log = log.display()
    );
    (dir.script("wqbench", &body), log)
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs().max(1e-12)
}

#[test]
fn task_flavours_run_on_their_own_and_print_positive_figures() {
    let rows = json_rows(&requeue(&[
        "bench", "--quick", "--json", "--runs", "1", "W3/tasks", "W5/tasks",
    ]));
    let ids: Vec<String> = rows.iter().map(id).collect();
    assert_eq!(
        ids,
        [
            "W3/crossbeam-channel",
            "W3/requeue-tasks",
            "W5/requeue-tasks"
        ],
        "the floor of W3 is added so that its ratio is known"
    );
    for row in &rows[1..] {
        for field in [
            "ops",
            "items",
            "wall_seconds",
            "ops_per_sec",
            "items_per_sec",
            "cpu_seconds",
            "peak_rss_bytes",
        ] {
            assert!(figure(row, field) > 0.0, "{field} of {row} is not positive");
        }
        assert!(row.get("x_client_go").is_none(), "{row}");
    }
    assert!(figure(&rows[1], "ratio_to_floor") > 0.0, "{}", rows[1]);
    // Two consumers spinning 10 µs each cannot pass 200k items/s (timer slack allowed).
    assert!(figure(&rows[2], "ops_per_sec") < 250_000.0, "{}", rows[2]);
}

#[test]
fn a_missing_client_go_binary_is_one_line_naming_it_and_exit_1() {
    let output = requeue(&["bench", "--client-go", "/nonexistent"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_failing_client_go_binary_is_one_line_naming_it_and_exit_1() {
    let dir = Scratch::new("failing-wqbench");
    let path = dir.script(
        "wqbench",
        "#!/bin/sh\necho 'panic: W2: 999 gets, want 1000' >&2\necho 'goroutine 1 [running]:' >&2\nexit 2\n",
    );
    let path_text = path.display().to_string();
    let output = requeue(&["bench", "--quick", "--client-go", &path_text, "W2"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(
        last.contains(&path_text) && last.contains("999 gets"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("goroutine"),
        "one line, no trace: {stderr}"
    );
}

#[test]
fn bad_client_go_combinations_are_usage_errors() {
    for args in [
        &["bench", "--client-go", "/bin/true", "--engine", "redis"][..],
        &[
            "bench",
            "--client-go",
            "/bin/true",
            "--redis",
            "redis://127.0.0.1:1/",
        ],
        &["bench", "--client-go"],
    ] {
        let output = requeue(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn client_go_runs_alternate_with_requeue_and_give_ratios_from_the_same_rounds() {
    let dir = Scratch::new("fake-wqbench");
    let (wqbench, log) = fake_wqbench(&dir);
    let wqbench = wqbench.display().to_string();
    let rows = json_rows(&requeue(&[
        "bench",
        "--quick",
        "--json",
        "--runs",
        "2",
        "--client-go",
        &wqbench,
        "W3",
        "W3/tasks",
        "W8",
    ]));
    let ids: Vec<String> = rows.iter().map(id).collect();
    assert_eq!(
        ids,
        [
            "W3/go-channel",
            "W3/crossbeam-channel",
            "W3/client-go",
            "W3/requeue",
            "W3/requeue-tasks",
            "W8/client-go",
            "W8/requeue"
        ]
    );
    // One Go run per workload and kind in each round, the same Go figure
    // serving the thread and the task rows.
    let calls = std::fs::read_to_string(&log).expect("the fake logged its calls");
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls, ["W3chan", "W3", "W8", "W3chan", "W3", "W8"]);

    let (go_floor, go_w3, go_w8) = (&rows[0], &rows[2], &rows[5]);
    assert!(
        close(figure(go_floor, "items_per_sec"), 12.2e6),
        "{go_floor}"
    );
    assert!(close(figure(go_w3, "items_per_sec"), 1.55e6), "{go_w3}");
    assert!(
        close(figure(go_w3, "ratio_to_floor"), 1.55 / 12.2),
        "{go_w3}"
    );
    assert_eq!(
        go_w3["quick"],
        Value::Bool(false),
        "wqbench always runs full sizes"
    );
    assert!(close(figure(go_w8, "cpu_seconds"), 0.051), "{go_w8}");
    for requeue in [&rows[3], &rows[4]] {
        let x = &requeue["x_client_go"];
        assert!(
            close(
                figure(x, "items_per_sec"),
                figure(requeue, "items_per_sec") / 1.55e6
            ),
            "{requeue}"
        );
        assert!(
            close(
                figure(x, "peak_rss_bytes"),
                148_480.0 * 1024.0 / figure(requeue, "peak_rss_bytes")
            ),
            "{requeue}"
        );
        assert!(figure(requeue, "ratio_to_floor") > 0.0, "{requeue}");
    }
    let w8 = &rows[6];
    assert!(
        close(
            figure(&w8["x_client_go"], "cpu_seconds"),
            0.051 / figure(w8, "cpu_seconds")
        ),
        "{w8}"
    );
    assert!(
        close(
            figure(&w8["x_client_go"], "wall_seconds"),
            0.042 / figure(w8, "wall_seconds")
        ),
        "{w8}"
    );
    for row in [&rows[1], go_floor, go_w3, go_w8] {
        assert!(row.get("x_client_go").is_none(), "only requeue rows: {row}");
    }
}

#[test]
fn the_client_go_table_sets_each_figure_beside_client_go_s() {
    let dir = Scratch::new("fake-wqbench-table");
    let (wqbench, _) = fake_wqbench(&dir);
    let output = requeue(&[
        "bench",
        "--quick",
        "--runs",
        "1",
        "--client-go",
        &wqbench.display().to_string(),
        "W1",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("x client-go |"), "{stdout}");
    assert!(
        stdout.contains("| W1 fifo-single | client-go | 3.58 M ops/s |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| W1 fifo-single | go-channel | 24.90 M items/s |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| W1 fifo-single | requeue | peak RSS |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 203 MiB |"),
        "client-go's peak RSS: {stdout}"
    );
    assert!(
        stdout.contains("compare different sizes"),
        "--quick is flagged: {stdout}"
    );
}
