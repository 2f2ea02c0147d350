//! `requeue bench`: the WORKLOADS.md workloads (shared with the criterion
//! benches through the `requeue-bench` crate), in this process.

use anyhow::{Context, bail};
use requeue_bench::{Case, Measurement, Scale, report};

/// Runs `cases` (all of them when empty) `runs` times each and prints the
/// median of each as a table, or as JSON lines with `json`.
pub fn run(quick: bool, json: bool, runs: usize, cases: &[String]) -> anyhow::Result<()> {
    let scale = if quick { Scale::quick() } else { Scale::FULL };
    let cases: Vec<Case> = if cases.is_empty() {
        Case::all()
    } else {
        cases
            .iter()
            .map(|c| {
                Case::parse(c)
                    .with_context(|| format!("unknown workload `{c}` (try W1, W3/floor, W6)"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut results = Vec::new();
    for case in cases {
        let mut measured = Vec::new();
        for _ in 0..runs.max(1) {
            measured.push(
                case.run(&scale)
                    .with_context(|| format!("{} failed", case.id()))?,
            );
        }
        match report::median(measured) {
            Some(m) => results.push(m),
            None => bail!("{} produced no measurement", case.id()),
        }
        if json {
            if let Some(m) = results.last() {
                println!("{}", to_json(m));
            }
        }
    }
    if !json {
        println!("{}", report::table(&results));
        println!(
            "(all cases ran in this process: use the requeue-bench `report` example for per-workload peak RSS)"
        );
    }
    Ok(())
}

fn to_json(m: &Measurement) -> serde_json::Value {
    serde_json::json!({
        "workload": m.workload,
        "engine": m.engine,
        "ops": m.ops,
        "items": m.items,
        "wall_seconds": m.wall.as_secs_f64(),
        "ops_per_sec": m.ops_per_sec(),
        "items_per_sec": m.items_per_sec(),
        "cpu_seconds": m.cpu.map(|d| d.as_secs_f64()),
        "latency_p50_seconds": m.latency.map(|l| l.p50.as_secs_f64()),
        "latency_p99_seconds": m.latency.map(|l| l.p99.as_secs_f64()),
        "peak_rss_bytes": m.peak_rss_bytes,
    })
}
