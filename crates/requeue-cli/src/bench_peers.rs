//! `requeue bench --engine redis --peers`: W1 and W3 with 1, 8 and 32
//! workers on requeue-redis and on BullMQ (Node.js), alternately, against
//! the same server; items/s, Redis commands per item and client round
//! trips per item for both (`requeue_bench::peers` says how each is
//! counted).

use crate::show::RedisUrl;
use anyhow::Context;
use requeue_bench::peers::{self, BullMq, CommandCounts, MonitorCounts, PeerRun};
use requeue_bench::{Measurement, REDIS_WORKERS, report};

/// Items per timed run, and BullMQ's untimed warm-up before it.
const FULL_N: u64 = 20_000;
const FULL_WARMUP: u64 = 4_000;
/// Items of the `MONITOR` pass (untimed; MONITOR slows the server down).
const FULL_MONITORED: u64 = 2_000;
const QUICK_N: u64 = 1_000;
const QUICK_WARMUP: u64 = 200;
const QUICK_MONITORED: u64 = 200;

/// Finds Node.js and installs BullMQ's pinned packages if needed (before
/// any server is started, so that a missing Node.js fails at once).
pub fn prepare() -> anyhow::Result<BullMq> {
    let dir = BullMq::default_dir();
    let bullmq = BullMq::prepare(&dir).context("--peers")?;
    if bullmq.installed_now() {
        eprintln!(
            "installed BullMQ's pinned packages (npm ci) in {}",
            bullmq.dir().display()
        );
    }
    Ok(bullmq)
}

/// One system's figures for one workload and worker count.
struct Figures {
    /// The median run (by items/s).
    median: Measurement,
    /// Median over the rounds.
    commands_per_item: f64,
    /// What Redis executed, by command, in the run with that median.
    commands: CommandCounts,
    /// From the `MONITOR` pass.
    monitored: MonitorCounts,
    monitored_items: u64,
}

impl Figures {
    fn round_trips_per_item(&self) -> f64 {
        self.monitored.client.per_item(self.monitored_items)
    }
}

/// Both systems on one workload and worker count.
struct Row {
    workload: &'static str,
    workers: usize,
    requeue: Figures,
    bullmq: Figures,
}

/// Which system runs first in `round` (they swap every round, so that
/// neither always runs on the server the other has just warmed).
fn requeue_first(round: usize) -> bool {
    round % 2 == 1
}

/// Runs the peers comparison against `url` (already checked reachable).
pub fn run(
    bullmq: &BullMq,
    url: &RedisUrl,
    workloads: &[&'static str],
    quick: bool,
    json: bool,
    runs: usize,
    prefetch: usize,
) -> anyhow::Result<()> {
    let (n, warmup, monitored_n) = if quick {
        (QUICK_N, QUICK_WARMUP, QUICK_MONITORED)
    } else {
        (FULL_N, FULL_WARMUP, FULL_MONITORED)
    };
    let runs = runs.max(1);
    let raw = url.expose();
    let cases: Vec<(usize, &'static str)> = REDIS_WORKERS
        .iter()
        .flat_map(|&workers| workloads.iter().map(move |&w| (workers, w)))
        .collect();
    eprintln!(
        "Redis at {url}; requeue-redis beside BullMQ {} (Node.js {}), alternately on the same \
         server: {n} items per timed run (BullMQ warms up on {warmup} first), median of {runs}; \
         round trips from a MONITOR pass of {monitored_n} items",
        bullmq.bullmq_version(),
        bullmq.node_version()
    );

    // The MONITOR pass first: untimed, and a check that both sides run.
    let mut monitored = Vec::with_capacity(cases.len());
    for &(workers, workload) in &cases {
        let (_, ours) = peers::monitored(raw, |tag| {
            peers::requeue_run(raw, workload, monitored_n, workers, prefetch, tag)
        })
        .with_context(|| format!("{workload} x{workers}: requeue-redis under MONITOR"))?;
        let (_, theirs) = peers::monitored(raw, |tag| {
            bullmq.run(raw, workload, monitored_n, workers, 0, tag)
        })
        .with_context(|| format!("{workload} x{workers}: BullMQ under MONITOR"))?;
        eprintln!(
            "MONITOR {workload} x{workers}: round trips per item: requeue-redis {:.2}, BullMQ {:.2}",
            ours.client.per_item(monitored_n),
            theirs.client.per_item(monitored_n)
        );
        monitored.push((ours, theirs));
    }

    let mut timed: Vec<(Vec<PeerRun>, Vec<PeerRun>)> =
        (0..cases.len()).map(|_| (Vec::new(), Vec::new())).collect();
    for round in 1..=runs {
        for (&(workers, workload), (ours, theirs)) in cases.iter().zip(&mut timed) {
            let requeue = || {
                peers::requeue_run(raw, workload, n, workers, prefetch, &peers::new_tag())
                    .with_context(|| format!("{workload} x{workers}: requeue-redis"))
            };
            let peer = || {
                bullmq
                    .run(raw, workload, n, workers, warmup, &peers::new_tag())
                    .context("--peers")
            };
            let (a, b) = if requeue_first(round) {
                let a = requeue()?;
                (a, peer()?)
            } else {
                let b = peer()?;
                (requeue()?, b)
            };
            eprintln!(
                "round {round}/{runs} {workload} x{workers}: requeue-redis {} items/s, {:.1} \
                 commands/item; BullMQ {} items/s, {:.1} commands/item",
                report::si(a.measurement.items_per_sec()),
                a.commands_per_item(),
                report::si(b.measurement.items_per_sec()),
                b.commands_per_item()
            );
            ours.push(a);
            theirs.push(b);
        }
    }

    let mut rows = Vec::with_capacity(cases.len());
    for ((&(workers, workload), (ours, theirs)), (ours_seen, theirs_seen)) in
        cases.iter().zip(timed).zip(monitored)
    {
        rows.push(Row {
            workload,
            workers,
            requeue: figures(ours, ours_seen, monitored_n)?,
            bullmq: figures(theirs, theirs_seen, monitored_n)?,
        });
    }
    if json {
        for row in &rows {
            for (figures, peer) in [(&row.requeue, Some(&row.bullmq)), (&row.bullmq, None)] {
                println!("{}", to_json(row, figures, peer, quick, runs));
            }
        }
    } else {
        println!("{}", table(&rows));
        println!(
            "x BullMQ: requeue-redis items/s over BullMQ's (above 1: requeue-redis is faster). \
             commands/item: Redis commands executed in the timed part (INFO commandstats, \
             commands run by Lua scripts included) per item, median of {runs}. round \
             trips/item: commands the system's own connections sent (MONITOR, scripts' inner \
             commands excluded; a pipelined command counts as one) per item, in a pass of \
             {monitored_n} items."
        );
    }
    Ok(())
}

/// The median figures of `runs`.
fn figures(
    runs: Vec<PeerRun>,
    monitored: MonitorCounts,
    monitored_items: u64,
) -> anyhow::Result<Figures> {
    let mut by_commands: Vec<&PeerRun> = runs.iter().collect();
    by_commands.sort_by(|a, b| a.commands_per_item().total_cmp(&b.commands_per_item()));
    let middle = by_commands
        .get(by_commands.len().saturating_sub(1) / 2)
        .context("no run")?;
    let (commands_per_item, commands) = (middle.commands_per_item(), middle.commands.clone());
    let median =
        report::median(runs.into_iter().map(|r| r.measurement).collect()).context("no run")?;
    Ok(Figures {
        median,
        commands_per_item,
        commands,
        monitored,
        monitored_items,
    })
}

/// `ours / theirs`, `None` when `theirs` is 0.
fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs > 0.0).then(|| ours / theirs)
}

/// Per-item counts by command name.
fn per_item(counts: &CommandCounts, items: u64) -> serde_json::Value {
    counts
        .iter()
        .map(|(name, count)| {
            (
                name.to_string(),
                (count as f64 / items.max(1) as f64).into(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One JSON row, the fields of the other Redis rows plus the peers
/// figures; requeue's rows carry `x_bullmq`: requeue-redis / BullMQ,
/// figure by figure.
fn to_json(
    row: &Row,
    f: &Figures,
    peer: Option<&Figures>,
    quick: bool,
    runs: usize,
) -> serde_json::Value {
    let m = &f.median;
    let mut out = serde_json::json!({
        "workload": m.workload,
        "engine": m.engine,
        "workers": row.workers,
        "ops": m.ops,
        "items": m.items,
        "wall_seconds": m.wall.as_secs_f64(),
        "ops_per_sec": m.ops_per_sec(),
        "items_per_sec": m.items_per_sec(),
        "ratio_to_floor": serde_json::Value::Null,
        "peak_rss_bytes": m.peak_rss_bytes,
        "commands_per_item": f.commands_per_item,
        "commands_by_command": per_item(&f.commands, m.items),
        "round_trips_per_item": f.round_trips_per_item(),
        "script_commands_per_item": f.monitored.script.per_item(f.monitored_items),
        "round_trips_by_command": per_item(&f.monitored.client, f.monitored_items),
        "monitored_items": f.monitored_items,
        "runs": runs,
        "quick": quick,
    });
    if let Some(peer) = peer {
        out["x_bullmq"] = serde_json::json!({
            "items_per_sec": ratio(m.items_per_sec(), peer.median.items_per_sec()),
            "commands_per_item": ratio(f.commands_per_item, peer.commands_per_item),
            "round_trips_per_item": ratio(f.round_trips_per_item(), peer.round_trips_per_item()),
        });
    }
    out
}

/// The Markdown table of `rows`.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | workers | requeue-redis items/s | BullMQ items/s | x BullMQ \
         | requeue-redis commands/item | BullMQ commands/item \
         | requeue-redis round trips/item | BullMQ round trips/item |\n\
         |---|---|---|---|---|---|---|---|---|",
    );
    for row in rows {
        let (ours, theirs) = (&row.requeue, &row.bullmq);
        let x = ratio(ours.median.items_per_sec(), theirs.median.items_per_sec())
            .map_or_else(|| "-".into(), |r| format!("{r:.2}"));
        out.push_str(&format!(
            "\n| {} | {} | {} | {} | {x} | {:.1} | {:.1} | {:.2} | {:.2} |",
            row.workload,
            row.workers,
            report::si(ours.median.items_per_sec()),
            report::si(theirs.median.items_per_sec()),
            ours.commands_per_item,
            theirs.commands_per_item,
            ours.round_trips_per_item(),
            theirs.round_trips_per_item(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_the_running_order() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert!(requeue_first(1) && !requeue_first(2) && requeue_first(3));
    }
}
