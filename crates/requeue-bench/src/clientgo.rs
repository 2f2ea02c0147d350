//! The real client-go work queue, measured in the same run as requeue.
//!
//! The client-go reference harness builds a `wqbench` binary that runs
//! the workloads of docs/benchmarks.md on the unmodified client-go work queue
//! (v0.30.14), plus Go-channel floors for W1, W3 and W4, one workload per
//! process: `wqbench -w W3` prints one line of `key=value` figures.
//! [`ClientGo`] runs it and turns that line into a [`Measurement`] with the
//! same fields and units as requeue's, so both go through the same table,
//! medians and ratios ([`Figure::advantage`](crate::Figure::advantage)).
//!
//! wqbench has fixed sizes (N = 1,000,000, W2 1,000 × 1,000, W5 2 s, W8
//! 10,000 keys), whatever size requeue runs at.

use crate::{Case, Engine, HOT_KEYS, LatencySummary, Measurement, WATCHDOG, Workload};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The engine name of client-go's work queue in a [`Measurement`].
pub const CLIENT_GO: &str = "client-go";

/// The engine name of the Go channel floor (`wqbench -w W1chan` …).
pub const GO_CHANNEL: &str = "go-channel";

/// N of wqbench's W1, W3, W4, W6 and W7 (fixed: the full N of
/// docs/benchmarks.md §1).
pub const WQBENCH_N: u64 = 1_000_000;

/// One run of wqbench: a workload on client-go's queue or through a Go channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoCase {
    /// The workload.
    pub workload: Workload,
    /// The Go channel floor (W1, W3, W4 only) rather than client-go's queue.
    pub floor: bool,
}

impl GoCase {
    /// The Go run that a requeue case is compared with: a channel floor's
    /// is the Go channel floor, every queue engine's is client-go's queue.
    pub fn compared_with(case: Case) -> GoCase {
        GoCase {
            workload: case.workload,
            floor: case.engine == Engine::Channel,
        }
    }

    /// wqbench's id: `W3`, or `W3chan` for the floor.
    pub fn id(self) -> String {
        if self.floor {
            format!("{}chan", self.workload.id())
        } else {
            self.workload.id().to_string()
        }
    }

    /// [`CLIENT_GO`] or [`GO_CHANNEL`].
    pub const fn engine(self) -> &'static str {
        if self.floor { GO_CHANNEL } else { CLIENT_GO }
    }
}

impl std::fmt::Display for GoCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.workload.id(), self.engine())
    }
}

/// Running wqbench failed. Every message is one line naming the binary.
#[derive(Debug, thiserror::Error)]
pub enum ClientGoError {
    /// Nothing is at the path, or not a file.
    #[error("client-go benchmark {}: {what}", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
        /// `no such file` or `not a file`.
        what: &'static str,
    },
    /// The binary could not be started (not executable, wrong format …).
    #[error("cannot run the client-go benchmark {}: {error}", path.display())]
    Start {
        /// The binary.
        path: PathBuf,
        /// Why (in the message, so that it stays one line).
        error: std::io::Error,
    },
    /// It exited with an error or did not finish in time.
    #[error("the client-go benchmark {} -w {id} failed ({status}): {detail}", path.display())]
    Failed {
        /// The binary.
        path: PathBuf,
        /// The workload id it was given.
        id: String,
        /// The exit status, or what ended it.
        status: String,
        /// The first line of its error output.
        detail: String,
    },
    /// It printed no line of figures that can be read.
    #[error("the client-go benchmark {} -w {id} printed no usable figures ({detail}): {output}", path.display())]
    Unreadable {
        /// The binary.
        path: PathBuf,
        /// The workload id it was given.
        id: String,
        /// What is missing.
        detail: String,
        /// The start of what it printed.
        output: String,
    },
}

/// A wqbench binary, checked to exist.
#[derive(Debug, Clone)]
pub struct ClientGo {
    path: PathBuf,
}

impl ClientGo {
    /// The wqbench binary at `path`; [`ClientGoError::NotFound`] unless it is a file.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, ClientGoError> {
        let path = path.into();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(ClientGo { path }),
            Ok(_) => Err(ClientGoError::NotFound {
                path,
                what: "not a file",
            }),
            Err(_) => Err(ClientGoError::NotFound {
                path,
                what: "no such file",
            }),
        }
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `wqbench -w ID` once (killed after [`WATCHDOG`]) and reads its figures.
    pub fn run(&self, case: GoCase) -> Result<Measurement, ClientGoError> {
        let id = case.id();
        let mut child = Command::new(&self.path)
            .args(["-w", &id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| ClientGoError::Start {
                path: self.path.clone(),
                error,
            })?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut pipe) = pipe {
                    let mut bytes = Vec::new();
                    let _ = pipe.read_to_end(&mut bytes);
                    text = String::from_utf8_lossy(&bytes).into_owned();
                }
                text
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + WATCHDOG;
        let status: Result<ExitStatus, String> = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("killed after {WATCHDOG:?}"));
                }
                Err(e) => break Err(format!("cannot wait for it: {e}")),
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        let failed = |status: String| ClientGoError::Failed {
            path: self.path.clone(),
            id: id.clone(),
            status,
            detail: first_line(&stderr).unwrap_or("no error output").to_string(),
        };
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(failed(status.to_string())),
            Err(why) => return Err(failed(why)),
        }
        parse_wqbench(case, &stdout).map_err(|detail| ClientGoError::Unreadable {
            path: self.path.clone(),
            id: id.clone(),
            detail,
            output: first_line(&stdout)
                .unwrap_or("nothing")
                .chars()
                .take(200)
                .collect(),
        })
    }
}

/// The first non-blank line of `text`, trimmed.
fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// Reads wqbench's output for `case` (its line starts with the case's id)
/// into a [`Measurement`] in requeue's units: `ops` counts what the
/// workload's rate counts (W3/W4: items; W5: items processed; W6: adds;
/// W8: keys), `wall` is the rate's span (W6: the add loop), derived from
/// wqbench's own rate so that the rate comes out as it printed it; CPU
/// for W8, lateness for W6, the RSS with N keys tracked for W7 and the
/// peak RSS (VmHWM) for all. An error says which figure is missing.
pub fn parse_wqbench(case: GoCase, output: &str) -> Result<Measurement, String> {
    let id = case.id();
    let line = output
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .ok_or_else(|| format!("no line starting with {id}"))?;
    let fields: HashMap<&str, f64> = line
        .split_whitespace()
        .filter_map(|token| token.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse::<f64>().ok().filter(|v| v.is_finite())?)))
        .collect();
    let get = |key: &str| fields.get(key).copied().ok_or_else(|| format!("no {key}"));
    let count = |key: &str| -> Result<u64, String> {
        let v = get(key)?;
        if v >= 0.0 {
            Ok(v.round() as u64)
        } else {
            Err(format!("{key} is negative"))
        }
    };
    let kib = |key: &str| count(key).map(|k| k.saturating_mul(1024));
    let ms = |key: &str| get(key).map(|v| Duration::from_secs_f64(v.max(0.0) / 1e3));
    use Workload::*;
    let (ops, items, rate) = match (case.workload, case.floor) {
        (W1, floor) => {
            let ops = count("ops")?;
            (ops, ops / if floor { 2 } else { 3 }, Some("ops_per_s"))
        }
        (W2, _) => (count("ops")?, count("gets")?, Some("ops_per_s")),
        (W3 | W4, _) => (count("items")?, count("items")?, Some("items_per_s")),
        (W5, _) => (
            count("processed")?,
            HOT_KEYS as u64,
            Some("processed_per_s"),
        ),
        (W6, _) => (WQBENCH_N, WQBENCH_N, Some("adds_per_s")),
        (W7, _) => (count("ops")?, count("ops")? / 3, Some("ops_per_s")),
        (W8, _) => (count("keys")?, count("keys")?, None),
    };
    let from_rate = match rate {
        Some(key) => Some(get(key)?).filter(|&r| r > 0.0 && ops > 0),
        None => None,
    };
    let wall = match from_rate {
        Some(rate) => ops as f64 / rate,
        None => get("wall_s")?,
    };
    let wall = Duration::try_from_secs_f64(wall).map_err(|e| format!("wall time: {e}"))?;
    let mut m = Measurement::new(case.workload.id(), case.engine(), ops, items, wall);
    m.peak_rss_bytes = Some(kib("rss_peak_kb")?);
    match case.workload {
        W6 => {
            m.latency = Some(LatencySummary {
                p50: ms("late_p50_ms")?,
                p99: ms("late_p99_ms")?,
                max: ms("late_max_ms")?,
            })
        }
        W7 => m.rss_bytes = Some(kib("rss_with_n_tracked_kb")?),
        W8 => {
            let cpu = get("cpu_s")?;
            m.cpu = Some(Duration::try_from_secs_f64(cpu).map_err(|e| format!("cpu_s: {e}"))?);
        }
        _ => {}
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Figure;

    fn case(workload: Workload, floor: bool) -> GoCase {
        GoCase { workload, floor }
    }

    #[test]
    fn wqbench_lines_become_measurements_in_requeue_units() {
        let w3 = "W3 mpmc items_per_s=1550000 wall_s=0.6452 ops_per_s=4650000 items=1000000 \
                  producers=2 consumers=2 rss_peak_kb=148480 gc_cycles=3 gomaxprocs=2\n";
        let m = parse_wqbench(case(Workload::W3, false), w3).expect("W3");
        assert_eq!((m.workload, m.engine, m.ops), ("W3", CLIENT_GO, 1_000_000));
        assert!((m.items_per_sec() - 1.55e6).abs() < 1.0, "{m:?}");
        assert_eq!(m.peak_rss_bytes, Some(148_480 * 1024));
        let chan = "W1chan chan-fifo-single ops_per_s=49800000 wall_s=0.0402 items_per_s=24900000 \
                    ops=2000000 rss_peak_kb=90000 gc_cycles=0 gomaxprocs=2";
        let m = parse_wqbench(case(Workload::W1, true), chan).expect("W1chan");
        assert_eq!((m.engine, m.items), (GO_CHANNEL, 1_000_000));
        assert!((m.items_per_sec() - 24.9e6).abs() < 10.0, "{m:?}");
        let w6 = "W6 delayed adds_per_s=444000 producer_s=2.2523 wall_s=3.1 late_p50_ms=95.5 \
                  late_p99_ms=290.25 late_max_ms=301 late_min_ms=-0.001 seed=0x5EED rss_peak_kb=224256";
        let m = parse_wqbench(case(Workload::W6, false), w6).expect("W6");
        assert!((m.ops_per_sec() - 444e3).abs() < 1.0, "{m:?}");
        let lat = m.latency.expect("lateness");
        assert_eq!(lat.p99, Duration::from_micros(290_250));
        let w8 = "W8 ratelimited-queue wall_s=0.0420 cpu_s=0.0510 gets_per_s=952380 gets=40000 \
                  keys=10000 rss_peak_kb=9748 gc_cycles=3 gomaxprocs=2";
        let m = parse_wqbench(case(Workload::W8, false), w8).expect("W8");
        assert_eq!(m.cpu, Some(Duration::from_millis(51)));
        assert_eq!(Figure::Wall.value(&m), Some(0.042));
        let w7 = "W7 limiter-when ops_per_s=3070000 wall_s=0.977 ops=3000000 \
                  rss_with_n_tracked_kb=181248 rss_peak_kb=181300";
        let m = parse_wqbench(case(Workload::W7, false), w7).expect("W7");
        assert_eq!((m.items, m.rss_bytes), (1_000_000, Some(181_248 * 1024)));
    }

    #[test]
    fn unreadable_output_says_what_is_missing() {
        let no_line = parse_wqbench(case(Workload::W3, false), "W4 mpmc items_per_s=1");
        assert_eq!(no_line, Err("no line starting with W3".into()));
        let no_rss = parse_wqbench(
            case(Workload::W2, false),
            "W2 dedup ops_per_s=5 ops=10 gets=1",
        );
        assert_eq!(no_rss, Err("no rss_peak_kb".into()));
        assert!(parse_wqbench(case(Workload::W5, false), "W5 hot-requeue").is_err());
    }

    #[test]
    fn a_missing_binary_is_named_in_one_line() {
        let e = ClientGo::new("/nonexistent/wqbench").expect_err("no such file");
        assert_eq!(
            e.to_string(),
            "client-go benchmark /nonexistent/wqbench: no such file"
        );
        let dir = std::env::temp_dir();
        let e = ClientGo::new(&dir).expect_err("a directory");
        assert!(e.to_string().ends_with(": not a file"), "{e}");
        let floor = GoCase::compared_with(Case {
            workload: Workload::W4,
            engine: Engine::Channel,
        });
        assert_eq!(
            (floor.id(), floor.to_string()),
            ("W4chan".into(), "W4/go-channel".into())
        );
    }
}
