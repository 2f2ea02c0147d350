//! `requeue bench --engine redis`: W1 and W3 on the Redis engine with 1, 8
//! and 32 concurrent workers, each beside raw `LPUSH`/`RPOP` of the same
//! number of items against the same server in the same run (the floor).

use anyhow::{Context, bail};
use requeue_bench::{REDIS_WORKERS, floor_redis, report, w1_redis, w3_redis};
use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};

/// Items per workload run: small enough that 32 workers × 3 runs finish
/// in seconds on one core of Redis.
const FULL_N: u64 = 20_000;
const QUICK_N: u64 = 1_000;

/// Runs the Redis workloads against `url`, or a throwaway local
/// `redis-server` (AOF off, as a cache-like bench setup) when `url` is `None`.
pub fn run(url: Option<&str>, quick: bool, json: bool, runs: usize) -> anyhow::Result<()> {
    let mut local = None;
    let url = match url {
        Some(url) => url.to_string(),
        None => {
            let options = LocalServerOptions {
                appendonly: false,
                appendfsync: Fsync::No,
                ..LocalServerOptions::default()
            };
            let server = LocalServer::start_with(options).context(
                "cannot start a local redis-server (is it installed? or pass --redis URL)",
            )?;
            local.insert(server).url()
        }
    };
    check_reachable(&url)?;
    let n = if quick { QUICK_N } else { FULL_N };
    if !json {
        eprintln!("Redis at {url}; {n} items per run, median of {runs}");
        println!(
            "| workload | workers | requeue-redis items/s | LPUSH/RPOP items/s | requeue / floor |"
        );
        println!("|---|---|---|---|---|");
    }
    for workers in REDIS_WORKERS {
        for workload in ["W1", "W3"] {
            let median =
                |f: &dyn Fn() -> Result<requeue_bench::Measurement, requeue_bench::BenchError>| {
                    let mut measured = Vec::new();
                    for _ in 0..runs.max(1) {
                        measured
                            .push(f().with_context(|| format!("{workload} x{workers} failed"))?);
                    }
                    report::median(measured).context("no measurement")
                };
            let engine = median(&|| match workload {
                "W1" => w1_redis(&url, n, workers),
                _ => w3_redis(&url, n, workers),
            })?;
            let floor = median(&|| {
                floor_redis(if workload == "W1" { "W1" } else { "W3" }, &url, n, workers)
            })?;
            let ratio = engine.ratio_to(&floor);
            if json {
                for (m, ratio) in [(&engine, Some(ratio)), (&floor, None)] {
                    println!(
                        "{}",
                        serde_json::json!({
                            "workload": m.workload,
                            "engine": m.engine,
                            "workers": workers,
                            "ops": m.ops,
                            "items": m.items,
                            "wall_seconds": m.wall.as_secs_f64(),
                            "ops_per_sec": m.ops_per_sec(),
                            "items_per_sec": m.items_per_sec(),
                            "ratio_to_floor": ratio,
                            "peak_rss_bytes": m.peak_rss_bytes,
                        })
                    );
                }
            } else {
                println!(
                    "| {workload} | {workers} | {} | {} | {ratio:.3} |",
                    report::si(engine.items_per_sec()),
                    report::si(floor.items_per_sec()),
                );
            }
        }
    }
    drop(local);
    Ok(())
}

/// One clear line (and exit 1) when Redis cannot be reached.
fn check_reachable(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url).with_context(|| format!("invalid Redis URL {url}"))?;
    match client.get_connection_with_timeout(std::time::Duration::from_secs(2)) {
        Ok(mut conn) => match redis::cmd("PING").query::<String>(&mut conn) {
            Ok(_) => Ok(()),
            Err(e) => bail!("Redis at {url} does not answer: {e}"),
        },
        Err(e) => bail!("cannot reach Redis at {url}: {e}"),
    }
}
