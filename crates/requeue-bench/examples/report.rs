//! Runs every workload case, each in its own process (so peak RSS is per
//! workload), and prints the results table.
//!
//! ```text
//! cargo run --release -p requeue-bench --example report -- [--runs R] [--n N] [--quick] [CASE ...]
//! ```
//!
//! CASE is an id such as `W1`, `W1/floor`, `W3/tasks` or `W3/metrics` (default: all).
//! With `--runs R` each case runs R times and the median is shown. On a
//! shared machine, `--wait-idle` waits before each run until the machine
//! is at least 95 % idle (at most 5 minutes, then runs anyway and says so).

use requeue_bench::{Case, Engine, Measurement, Scale, report};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

struct Options {
    runs: usize,
    scale: Scale,
    cases: Vec<Case>,
    child: bool,
    wait_idle: bool,
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "{problem}\nusage: report [--runs R] [--n N] [--quick] [--wait-idle] [CASE ...]  (cases: W1 W1/floor W1/metrics W2 W3/tasks ...)"
    );
    ExitCode::from(2)
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        runs: 1,
        scale: Scale::from_env(),
        cases: Vec::new(),
        child: false,
        wait_idle: false,
    };
    let mut n = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.replace('_', "")
                .parse()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--runs" => opts.runs = value("--runs")?.max(1),
            "--n" => n = Some(value("--n")?),
            "--quick" => opts.scale = Scale::quick(),
            "--child" => opts.child = true,
            "--wait-idle" => opts.wait_idle = true,
            // A `cargo bench`-style filter argument is ignored.
            "--bench" => {}
            case => opts
                .cases
                .push(Case::parse(case).ok_or(format!("unknown case {case}"))?),
        }
    }
    if let Some(n) = n {
        opts.scale.n = n;
    }
    if opts.cases.is_empty() {
        opts.cases = Case::all();
    }
    Ok(opts)
}

/// Runs one case in this process and prints its encoded measurement.
fn child(opts: &Options) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for case in &opts.cases {
        match case.run(&opts.scale) {
            Ok(m) => println!("{}", m.encode()),
            Err(e) => {
                eprintln!("{case}: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// Runs `case` in a fresh process of this program.
fn isolated(case: Case, opts: &Options) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .arg(case.id())
        .args(["--n", &opts.scale.n.to_string()]);
    if opts.scale
        == (Scale {
            n: opts.scale.n,
            ..Scale::quick()
        })
    {
        cmd.arg("--quick");
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(Measurement::decode) {
        Some(m) if out.status.success() => Ok(m),
        _ => Err(format!(
            "{} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Waits until the machine is quiet; `false` if it never got so.
fn wait_for_idle() -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        match requeue_bench::idle_fraction(Duration::from_secs(1)) {
            Some(idle) if idle >= 0.95 => return true,
            Some(_) => {}
            None => return true,
        }
    }
    false
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(problem) => return usage(&problem),
    };
    if opts.child {
        return child(&opts);
    }
    let s = &opts.scale;
    eprintln!(
        "N = {}, W2 {} x {}, W5 {:?}, W8 {} keys; {} run(s) per case, median shown",
        s.n, s.dedup_keys, s.dedup_rounds, s.hot_duration, s.retry_keys, opts.runs
    );
    let mut results = Vec::new();
    let mut failed = false;
    for &case in &opts.cases {
        let mut runs = Vec::new();
        for _ in 0..opts.runs {
            if opts.wait_idle && !wait_for_idle() {
                eprintln!("{case}: the machine stayed busy for 5 minutes; running anyway");
            }
            match isolated(case, &opts) {
                Ok(m) => runs.push(m),
                Err(e) => {
                    eprintln!("{case}: FAILED: {e}");
                    failed = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let rate = |m: &Measurement| match case.engine {
            Engine::Channel => m.items_per_sec(),
            _ => m.ops_per_sec(),
        };
        let rates: Vec<String> = runs.iter().map(|m| report::si(rate(m))).collect();
        eprintln!("{case}: {}", rates.join(", "));
        results.extend(report::median(runs));
    }
    println!("{}", report::table(&results));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
