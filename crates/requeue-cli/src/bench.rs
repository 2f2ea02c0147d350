//! `requeue bench`: the WORKLOADS.md workloads (shared with the criterion
//! benches through the `requeue-bench` crate, not copied), each run in a
//! fresh child process of this binary so that peak RSS is per workload and
//! one workload's allocations do not warm the next one's.

use anyhow::{Context, bail};
use requeue_bench::{Case, Engine, Measurement, Scale, report};
use std::process::Command;

/// What `requeue bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes (seconds instead of minutes).
    pub quick: bool,
    /// One JSON object per case instead of a table.
    pub json: bool,
    /// Runs per case; the median is reported.
    pub runs: usize,
    /// Case ids (all when empty).
    pub cases: Vec<String>,
    /// Internal: run `cases` here and print encoded measurements.
    pub child: bool,
}

/// Runs the selected cases and prints the medians.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let scale = if opts.quick {
        Scale::quick()
    } else {
        Scale::FULL
    };
    if opts.child {
        let cases = opts
            .cases
            .iter()
            .map(|name| Case::parse(name).with_context(|| format!("unknown workload `{name}`")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return child(&cases, &scale);
    }
    let cases = select(&opts.cases)?;
    let runs = opts.runs.max(1);
    if !opts.json {
        eprintln!(
            "{} case(s), {runs} run(s) each in a fresh process, median shown{}",
            cases.len(),
            if opts.quick { " (quick sizes)" } else { "" }
        );
    }
    let mut results: Vec<Measurement> = Vec::new();
    for case in cases {
        let mut measured = Vec::with_capacity(runs);
        for _ in 0..runs {
            measured.push(isolated(case, opts.quick)?);
        }
        let Some(median) = report::median(measured) else {
            bail!("{} produced no measurement", case.id());
        };
        if opts.json {
            let floor = results
                .iter()
                .find(|f| f.workload == median.workload && f.engine == Engine::Channel.name());
            println!("{}", to_json(&median, floor));
        } else {
            eprintln!("{}: done", case.id());
        }
        results.push(median);
    }
    if !opts.json {
        println!("{}", report::table(&results));
    }
    Ok(())
}

/// The cases named (all when none), each workload's channel floor run
/// first so that every requeue figure has its ratio from the same run.
fn select(names: &[String]) -> anyhow::Result<Vec<Case>> {
    if names.is_empty() {
        return Ok(order(Case::all()));
    }
    let mut cases = Vec::new();
    for name in names {
        let case = Case::parse(name)
            .with_context(|| format!("unknown workload `{name}` (try W1, W3/floor, W6)"))?;
        let floor = Case {
            engine: Engine::Channel,
            ..case
        };
        if Case::parse(&floor.id()).is_some() && !cases.contains(&floor) {
            cases.push(floor);
        }
        if !cases.contains(&case) {
            cases.push(case);
        }
    }
    Ok(order(cases))
}

/// Floors before the engines compared with them, workloads in order.
fn order(mut cases: Vec<Case>) -> Vec<Case> {
    cases.sort_by_key(|c| (c.workload, c.engine != Engine::Channel, c.engine));
    cases
}

/// Child mode: run each case here and print its encoded measurement.
fn child(cases: &[Case], scale: &Scale) -> anyhow::Result<()> {
    for case in cases {
        let m = case
            .run(scale)
            .with_context(|| format!("{} failed", case.id()))?;
        println!("{}", m.encode());
    }
    Ok(())
}

/// Runs `case` once in a fresh process of this binary.
fn isolated(case: Case, quick: bool) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe().context("cannot find the requeue binary to re-run")?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--child", "--runs", "1"]);
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg(case.id());
    let out = cmd
        .output()
        .with_context(|| format!("cannot start a process for {}", case.id()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(Measurement::decode) {
        Some(m) if out.status.success() => Ok(m),
        _ => bail!(
            "{} failed ({}): {}",
            case.id(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn to_json(m: &Measurement, floor: Option<&Measurement>) -> serde_json::Value {
    let requeue = m.engine != Engine::Channel.name();
    serde_json::json!({
        "workload": m.workload,
        "engine": m.engine,
        "ops": m.ops,
        "items": m.items,
        "wall_seconds": m.wall.as_secs_f64(),
        "ops_per_sec": m.ops_per_sec(),
        "items_per_sec": m.items_per_sec(),
        "ratio_to_floor": floor.filter(|_| requeue).map(|f| m.ratio_to(f)),
        "cpu_seconds": m.cpu.map(|d| d.as_secs_f64()),
        "latency_p50_seconds": m.latency.map(|l| l.p50.as_secs_f64()),
        "latency_p99_seconds": m.latency.map(|l| l.p99.as_secs_f64()),
        "peak_rss_bytes": m.peak_rss_bytes,
    })
}
