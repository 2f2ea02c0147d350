//! `requeue bench`: the workloads of docs/benchmarks.md (shared with the criterion
//! benches through the `requeue-bench` crate, not copied), each run in a
//! fresh child process of this binary so that peak RSS is per workload and
//! one workload's allocations do not warm the next one's.
//!
//! With `--client-go PATH` every round also runs the real client-go work
//! queue (a `wqbench` binary built from the client-go reference harness)
//! on the same workloads, each Go run right before its requeue
//! counterparts, so that both see the same machine load; the ratios come
//! from those runs only.

use anyhow::{Context, bail};
use requeue_bench::{
    CLIENT_GO, Case, ClientGo, Engine, GO_CHANNEL, GoCase, Measurement, Scale, WQBENCH_N, report,
};
use std::path::PathBuf;
use std::process::Command;

/// What `requeue bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes (seconds instead of minutes).
    pub quick: bool,
    /// One JSON object per case instead of a table.
    pub json: bool,
    /// Rounds: each case runs once per round; the median is reported.
    pub runs: usize,
    /// Case ids (all when empty).
    pub cases: Vec<String>,
    /// Internal: run `cases` here and print encoded measurements.
    pub child: bool,
    /// A wqbench binary: measure client-go in the same rounds.
    pub client_go: Option<PathBuf>,
}

/// One run of a round: a requeue case (in a child process) or a wqbench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Requeue(Case),
    Go(GoCase),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Requeue(case) => write!(f, "{case}"),
            Step::Go(case) => write!(f, "{case}"),
        }
    }
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
            .map(|name| {
                Case::parse(name)
                    .with_context(|| format!("unknown workload `{}`", crate::show::input(name)))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        return child(&cases, &scale);
    }
    let cases = select(&opts.cases).map_err(anyhow::Error::msg)?;
    let go = opts.client_go.as_ref().map(ClientGo::new).transpose()?;
    let steps = plan(&cases, go.is_some());
    let runs = opts.runs.max(1);
    let quick_note = (opts.quick && go.is_some()).then(|| {
        format!(
            "note: --quick runs requeue at N = {}, but wqbench always runs N = {}: \
             the x client-go ratios compare different sizes (a smoke test, not a result)",
            thousands(scale.n as u64),
            thousands(WQBENCH_N)
        )
    });
    if !opts.json {
        let go_runs = steps.iter().filter(|s| matches!(s, Step::Go(_))).count();
        eprintln!(
            "{} case(s){}, {runs} round(s), each run in a fresh process, median shown{}",
            cases.len(),
            match &go {
                Some(go) => format!(" and {go_runs} client-go run(s) of {}", go.path().display()),
                None => String::new(),
            },
            if opts.quick { " (quick sizes)" } else { "" }
        );
        if let Some(note) = &quick_note {
            eprintln!("{note}");
        }
    }
    let mut measured: Vec<Vec<Measurement>> = vec![Vec::with_capacity(runs); steps.len()];
    for round in 1..=runs {
        for (step, runs_so_far) in steps.iter().zip(&mut measured) {
            let m = match (step, &go) {
                (Step::Requeue(case), _) => isolated(*case, opts.quick)?,
                (Step::Go(case), Some(go)) => go.run(*case)?,
                (Step::Go(case), None) => bail!("{case}: no client-go binary given"),
            };
            if !opts.json {
                eprintln!("round {round}/{runs} {step}: {}", rate(&m));
            }
            runs_so_far.push(m);
        }
    }
    let mut results = Vec::with_capacity(steps.len());
    for (step, runs) in steps.iter().zip(measured) {
        let Some(median) = report::median(runs) else {
            bail!("{step} produced no measurement");
        };
        results.push(median);
    }
    if opts.json {
        for m in &results {
            println!("{}", to_json(m, &results, opts.quick));
        }
        return Ok(());
    }
    println!("{}", report::table(&results));
    if go.is_some() {
        println!(
            "queue / floor: items/s over the floor measured in the same rounds (requeue: \
             crossbeam channel; client-go: Go channel). x client-go: requeue's advantage over \
             client-go measured in the same rounds, on the workload's headline figure (W8: CPU); \
             above 1, requeue did better. Figure by figure:\n"
        );
        println!("{}", report::comparison(&results));
        if let Some(note) = &quick_note {
            println!("{note}");
        }
    } else {
        println!(
            "(`--client-go PATH` adds the real client-go work queue, measured in the same rounds)"
        );
    }
    Ok(())
}

/// `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The figure shown while a run progresses: its rate in the workload's unit.
fn rate(m: &Measurement) -> String {
    let unit = requeue_bench::Workload::parse(m.workload)
        .filter(|_| !report::is_floor(m.engine))
        .map_or("items/s", |w| w.unit());
    let value = if report::is_floor(m.engine) {
        m.items_per_sec()
    } else {
        m.ops_per_sec()
    };
    format!("{} {unit}", report::si(value))
}

/// The runs of one round: each requeue case, preceded by the client-go run
/// it is compared with (once per workload and kind) when `go` is set.
fn plan(cases: &[Case], go: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for &case in cases {
        let go_case = Step::Go(GoCase::compared_with(case));
        if go && !steps.contains(&go_case) {
            steps.push(go_case);
        }
        steps.push(Step::Requeue(case));
    }
    steps
}

/// The cases named (all when none), each workload's channel floor run
/// first so that every requeue figure has its ratio from the same run. An
/// unknown name is a one-line reason (`main` makes it a usage error).
pub fn select(names: &[String]) -> Result<Vec<Case>, String> {
    if names.is_empty() {
        return Ok(order(Case::all()));
    }
    let mut cases = Vec::new();
    for name in names {
        let case = Case::parse(name).ok_or_else(|| {
            format!(
                "unknown workload `{}` (try W1, W3/floor, W3/tasks, W6)",
                crate::show::input(name)
            )
        })?;
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

/// One JSON row. Requeue rows compared with a client-go run carry
/// `x_client_go`: each compared figure's JSON field → requeue's advantage
/// (above 1: requeue did better; `null` where it cannot be computed).
fn to_json(m: &Measurement, results: &[Measurement], quick: bool) -> serde_json::Value {
    let go = m.engine == CLIENT_GO || m.engine == GO_CHANNEL;
    let mut row = serde_json::json!({
        "workload": m.workload,
        "engine": m.engine,
        "ops": m.ops,
        "items": m.items,
        "wall_seconds": m.wall.as_secs_f64(),
        "ops_per_sec": m.ops_per_sec(),
        "items_per_sec": m.items_per_sec(),
        "ratio_to_floor": report::ratio_to_floor(results, m),
        "cpu_seconds": m.cpu.map(|d| d.as_secs_f64()),
        "latency_p50_seconds": m.latency.map(|l| l.p50.as_secs_f64()),
        "latency_p99_seconds": m.latency.map(|l| l.p99.as_secs_f64()),
        "peak_rss_bytes": m.peak_rss_bytes,
        // wqbench has no small sizes: its rows are always full size.
        "quick": quick && !go,
    });
    let ratios = report::x_client_go(results, m);
    if let (Some(workload), false) = (
        requeue_bench::Workload::parse(m.workload),
        ratios.is_empty(),
    ) {
        let ratios: serde_json::Map<String, serde_json::Value> = ratios
            .into_iter()
            .map(|(figure, ratio)| (figure.json_field(workload).to_string(), ratio.into()))
            .collect();
        row["x_client_go"] = ratios.into();
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(steps: &[Step]) -> Vec<String> {
        steps.iter().map(Step::to_string).collect()
    }

    #[test]
    fn each_go_run_comes_right_before_its_requeue_counterparts() {
        let cases = select(&["W3/tasks".into(), "W3".into(), "W8".into()]).expect("known cases");
        assert_eq!(
            ids(&plan(&cases, true)),
            [
                "W3/go-channel",
                "W3/floor",
                "W3/client-go",
                "W3",
                "W3/tasks",
                "W8/client-go",
                "W8"
            ]
        );
        assert_eq!(
            ids(&plan(&cases, false)),
            ["W3/floor", "W3", "W3/tasks", "W8"]
        );
        let all = plan(&select(&[]).expect("all"), true);
        let go_runs: Vec<String> = all
            .iter()
            .filter(|s| matches!(s, Step::Go(_)))
            .map(Step::to_string)
            .collect();
        assert_eq!(
            go_runs.len(),
            11,
            "W1–W8 and three channel floors: {go_runs:?}"
        );
        assert_eq!(
            (thousands(20_000), thousands(1_000_000), thousands(7)),
            ("20,000".into(), "1,000,000".into(), "7".into())
        );
    }
}
