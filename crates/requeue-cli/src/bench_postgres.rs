//! `requeue bench --engine postgres`: W1 and W3 on the PostgreSQL engine
//! with 1, 8 and 32 concurrent workers: items/s, statements sent per item
//! and server transactions per item (`pg_stat_database`). With `--peers`,
//! graphile-worker and pg-boss (Node.js drivers) run the same workloads on
//! the same server and database, alternately with requeue-postgres, and
//! the table sets the three side by side with requeue's ratios.

use crate::show::PgUrl;
use anyhow::Context;
use requeue_bench::peers::new_tag;
use requeue_bench::peers::pg::{PgPeer, PgPeerKind, PgPeerRun};
use requeue_bench::{
    Measurement, POSTGRES_WORKERS, PgRun, ServerCounts, report, w1_postgres, w3_postgres,
};
use requeue_postgres::local_server::{BIN_DIR_ENV, LocalServer, LocalServerOptions};
use std::time::Duration;

/// Items per timed run, as the Redis bench, and the peers' untimed warm-up.
const FULL_N: u64 = 20_000;
const FULL_WARMUP: u64 = 4_000;
const QUICK_N: u64 = 1_000;
const QUICK_WARMUP: u64 = 200;
/// How long the server may take to answer `SELECT 1`.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// One system's runs, reduced to what the table shows.
struct Figures {
    /// The median run by items/s.
    median: Measurement,
    /// Medians over the runs.
    statements_per_item: f64,
    xacts_per_item: Option<f64>,
    /// The server counters of a run with the median transactions.
    server: Option<ServerCounts>,
}

/// What a run of any system reports.
struct Run {
    measurement: Measurement,
    statements_per_item: f64,
    xacts_per_item: Option<f64>,
    server: Option<ServerCounts>,
}

impl From<PgRun> for Run {
    fn from(run: PgRun) -> Self {
        Run {
            statements_per_item: run.statements_per_item(),
            xacts_per_item: run.xacts_per_item(),
            server: run.server,
            measurement: run.measurement,
        }
    }
}

impl From<PgPeerRun> for Run {
    fn from(run: PgPeerRun) -> Self {
        Run {
            statements_per_item: run.statements_per_item(),
            xacts_per_item: run.xacts_per_item(),
            server: run.server,
            measurement: run.measurement,
        }
    }
}

/// Finds Node.js and installs both peers' pinned packages if needed
/// (before any server starts, so that a missing Node.js fails at once).
pub fn prepare_peers() -> anyhow::Result<Vec<PgPeer>> {
    PgPeerKind::ALL
        .iter()
        .map(|&kind| {
            let peer = PgPeer::prepare(kind, &kind.default_dir()).context("--peers")?;
            if peer.installed_now() {
                eprintln!(
                    "installed {}'s pinned packages (npm ci) in {}",
                    kind.name(),
                    peer.dir().display()
                );
            }
            Ok(peer)
        })
        .collect()
}

/// Runs `workloads` (W1, W3) against `url`, or a throwaway local
/// PostgreSQL (fsync on) when `url` is `None`; with `peers`, beside
/// graphile-worker and pg-boss.
pub fn run(
    url: Option<&PgUrl>,
    workloads: &[&'static str],
    quick: bool,
    json: bool,
    runs: usize,
    peers: bool,
) -> anyhow::Result<()> {
    let peers = if peers { prepare_peers()? } else { Vec::new() };
    let mut local = None;
    let url = match url {
        Some(url) => url.clone(),
        None => {
            let options = LocalServerOptions {
                // pg-boss opens 2 × workers + 2 connections, graphile-worker
                // a pool of its own: room for x32 with both.
                settings: vec![("max_connections".into(), "200".into())],
                ..LocalServerOptions::default()
            };
            let server = LocalServer::start_with(options).with_context(|| {
                format!(
                    "cannot start a local PostgreSQL (are initdb and postgres installed? set \
                     {BIN_DIR_ENV} to their directory, or pass --postgres URL)"
                )
            })?;
            PgUrl::from(local.insert(server).url())
        }
    };
    check_reachable(&url)?;
    let (n, warmup) = if quick {
        (QUICK_N, QUICK_WARMUP)
    } else {
        (FULL_N, FULL_WARMUP)
    };
    let runs = runs.max(1);
    let throwaway = if local.is_some() {
        " (throwaway, fsync on)"
    } else {
        ""
    };
    if peers.is_empty() {
        eprintln!("PostgreSQL at {url}{throwaway}; {n} items per run, median of {runs}");
    } else {
        let names: Vec<String> = peers
            .iter()
            .map(|p| format!("{} {}", p.kind().name(), p.version()))
            .collect();
        eprintln!(
            "PostgreSQL at {url}{throwaway}; requeue-postgres beside {} (Node.js {}), \
             alternately on the same server: {n} items per timed run (the peers warm up on \
             {warmup} first), median of {runs}",
            names.join(" and "),
            peers.first().map_or("?", |p| p.node_version()),
        );
    }
    let raw = url.expose();
    let cases: Vec<(usize, &'static str)> = POSTGRES_WORKERS
        .iter()
        .flat_map(|&workers| workloads.iter().map(move |&w| (workers, w)))
        .collect();
    // Per case: requeue's runs, then each peer's.
    let systems = 1 + peers.len();
    let mut measured: Vec<Vec<Vec<Run>>> = cases
        .iter()
        .map(|_| (0..systems).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..runs {
        for (&(workers, workload), by_system) in cases.iter().zip(&mut measured) {
            // The order rotates every round, so that no system always runs
            // on the server another has just warmed.
            for step in 0..systems {
                let system = (step + round) % systems;
                let run: Run = if system == 0 {
                    match workload {
                        "W1" => w1_postgres(raw, n, workers),
                        _ => w3_postgres(raw, n, workers),
                    }
                    .with_context(|| format!("{workload} x{workers}: requeue-postgres"))?
                    .into()
                } else {
                    peers[system - 1]
                        .run(raw, workload, n, workers, warmup, &new_tag())
                        .context("--peers")?
                        .into()
                };
                if runs > 1 || !peers.is_empty() {
                    eprintln!(
                        "round {}/{runs} {workload} x{workers}: {} {} items/s, {:.2} statements/item",
                        round + 1,
                        run.measurement.engine,
                        report::si(run.measurement.items_per_sec()),
                        run.statements_per_item,
                    );
                }
                by_system[system].push(run);
            }
        }
    }
    let mut rows = Vec::with_capacity(cases.len());
    for (&(workers, workload), by_system) in cases.iter().zip(measured) {
        let figures = by_system
            .into_iter()
            .map(figures)
            .collect::<anyhow::Result<Vec<_>>>()?;
        rows.push((workload, workers, figures));
    }
    if json {
        for (_, workers, figures) in &rows {
            for (i, f) in figures.iter().enumerate() {
                println!(
                    "{}",
                    to_json(*workers, f, (i == 0).then_some(&figures[1..]), quick, runs)
                );
            }
        }
    } else {
        println!("{}", table(&rows, &peers));
        println!(
            "statements/item: statements (round trips) each system's own connections sent \
             while the clock ran, per item; xacts/item: the database's committed and rolled-back \
             transactions (pg_stat_database) over the run, per item, when nothing else was \
             connected (-: not read){}",
            if peers.is_empty() {
                ""
            } else {
                "; x PEER: requeue-postgres items/s over the peer's (above 1: requeue is faster)"
            }
        );
    }
    let samples = if quick {
        crate::bench_redis::QUICK_IDLE
    } else {
        crate::bench_redis::FULL_IDLE
    };
    let idle = requeue_bench::idle_handout_postgres(raw, samples).context("idle latency failed")?;
    crate::bench_redis::print_idle(&idle, samples, json)?;
    drop(local);
    Ok(())
}

/// The median figures of `runs`.
fn figures(runs: Vec<Run>) -> anyhow::Result<Figures> {
    let statements_per_item =
        middle(runs.iter().map(|r| r.statements_per_item).collect()).context("no run")?;
    let mut with_xacts: Vec<&Run> = runs.iter().filter(|r| r.xacts_per_item.is_some()).collect();
    with_xacts.sort_by(|a, b| {
        a.xacts_per_item
            .unwrap_or(0.0)
            .total_cmp(&b.xacts_per_item.unwrap_or(0.0))
    });
    let chosen = with_xacts.get(with_xacts.len().saturating_sub(1) / 2);
    let (xacts_per_item, server) = chosen.map_or((None, None), |r| (r.xacts_per_item, r.server));
    let median =
        report::median(runs.into_iter().map(|r| r.measurement).collect()).context("no run")?;
    Ok(Figures {
        median,
        statements_per_item,
        xacts_per_item,
        server,
    })
}

/// The lower median of `values`.
fn middle(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// `ours / theirs`, `None` when `theirs` is 0.
fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs > 0.0).then(|| ours / theirs)
}

fn or_dash(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// The Markdown table: per system items/s, then requeue's ratios, then
/// statements and transactions per item.
fn table(rows: &[(&'static str, usize, Vec<Figures>)], peers: &[PgPeer]) -> String {
    let names: Vec<&str> = std::iter::once("requeue-postgres")
        .chain(peers.iter().map(|p| p.kind().name()))
        .collect();
    let mut header = vec!["workload".to_string(), "workers".to_string()];
    header.extend(names.iter().map(|n| format!("{n} items/s")));
    header.extend(names[1..].iter().map(|n| format!("x {n}")));
    header.extend(names.iter().map(|n| format!("{n} statements/item")));
    header.extend(names.iter().map(|n| format!("{n} xacts/item")));
    let mut out = format!(
        "| {} |\n|{}",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for (workload, workers, figures) in rows {
        let mut cells = vec![workload.to_string(), workers.to_string()];
        cells.extend(figures.iter().map(|f| report::si(f.median.items_per_sec())));
        let ours = figures[0].median.items_per_sec();
        cells.extend(
            figures[1..]
                .iter()
                .map(|f| or_dash(ratio(ours, f.median.items_per_sec()), 2)),
        );
        cells.extend(
            figures
                .iter()
                .map(|f| format!("{:.2}", f.statements_per_item)),
        );
        cells.extend(figures.iter().map(|f| or_dash(f.xacts_per_item, 2)));
        out.push_str(&format!("\n| {} |", cells.join(" | ")));
    }
    out
}

/// One JSON row; requeue's carries `x_<peer>` ratios of items/s.
fn to_json(
    workers: usize,
    f: &Figures,
    peers: Option<&[Figures]>,
    quick: bool,
    runs: usize,
) -> serde_json::Value {
    let m = &f.median;
    let mut out = serde_json::json!({
        "workload": m.workload,
        "engine": m.engine,
        "workers": workers,
        "ops": m.ops,
        "items": m.items,
        "wall_seconds": m.wall.as_secs_f64(),
        "ops_per_sec": m.ops_per_sec(),
        "items_per_sec": m.items_per_sec(),
        "peak_rss_bytes": m.peak_rss_bytes,
        "statements_per_item": f.statements_per_item,
        "xacts_per_item": f.xacts_per_item,
        "server": f.server.map(|s| serde_json::json!({
            "xacts": s.xacts,
            "rollbacks": s.rollbacks,
            "inserted": s.inserted,
            "updated": s.updated,
            "deleted": s.deleted,
            "returned": s.returned,
            "fetched": s.fetched,
        })),
        "runs": runs,
        "quick": quick,
    });
    for peer in peers.unwrap_or_default() {
        let name = peer
            .median
            .engine
            .split(' ')
            .next()
            .unwrap_or(peer.median.engine);
        out[format!("x_{}", name.replace('-', "_"))] =
            serde_json::json!(ratio(m.items_per_sec(), peer.median.items_per_sec()));
    }
    out
}

/// One clear line (and exit 1) when PostgreSQL cannot be reached or does
/// not answer within [`REACH_TIMEOUT`].
pub fn check_reachable(url: &PgUrl) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let ping = async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url.expose()).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        };
        match tokio::time::timeout(REACH_TIMEOUT, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                Err(anyhow::Error::new(e).context(format!("cannot reach PostgreSQL at {url}")))
            }
            Err(_) => Err(anyhow::anyhow!(
                "PostgreSQL at {url} did not answer within {} s",
                REACH_TIMEOUT.as_secs()
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(middle(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(middle(vec![4.0, 1.0]), Some(1.0));
        assert_eq!(middle(vec![]), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(or_dash(None, 2), "-");
    }
}
