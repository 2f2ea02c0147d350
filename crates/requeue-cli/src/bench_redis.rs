//! `requeue bench --engine redis`: W1 and W3 on the Redis engine with 1, 8
//! and 32 concurrent workers, each beside raw `LPUSH`/`RPOP` of the same
//! number of items against the same server in the same run (the floor).

use crate::show::{self, RedisUrl};
use anyhow::Context;
use requeue_bench::{REDIS_WORKERS, Workload, floor_redis, report, w1_redis, w3_redis};
use requeue_redis::local_server::{Fsync, LocalServer, LocalServerOptions};
use std::time::Duration;

/// Items per workload run: small enough that 32 workers × 3 runs finish
/// in seconds on one core of Redis.
const FULL_N: u64 = 20_000;
const QUICK_N: u64 = 1_000;
/// How long Redis may take to answer the first PING.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// The workloads of the Redis engine.
const WORKLOADS: [&str; 2] = ["W1", "W3"];

/// The workloads `names` select (both when empty), in run order; an
/// unknown one, or one without a Redis version, is a one-line reason.
pub fn select(names: &[String]) -> Result<Vec<&'static str>, String> {
    select_for(names, "Redis", "redis")
}

/// [`select`] for the engine `flag` (`--engine FLAG`), named `label` in
/// the reasons: the server engines all run W1 and W3.
pub fn select_for(names: &[String], label: &str, flag: &str) -> Result<Vec<&'static str>, String> {
    let mut chosen = Vec::new();
    for name in names {
        let id = match Workload::parse(name) {
            Some(w) if WORKLOADS.contains(&w.id()) => w.id(),
            Some(w) => {
                return Err(format!(
                    "{} has no {label} version: --engine {flag} runs W1 and W3",
                    w.id()
                ));
            }
            None => {
                return Err(format!(
                    "unknown workload `{}`: --engine {flag} runs W1 and W3",
                    show::input(name)
                ));
            }
        };
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    if chosen.is_empty() {
        return Ok(WORKLOADS.to_vec());
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Runs `workloads` (W1, W3) against `url`, or a throwaway local
/// `redis-server` (AOF off, as a cache-like bench setup) when `url` is `None`;
/// with `peers`, beside BullMQ instead of the floor ([`bench_peers`](crate::bench_peers)).
pub fn run(
    url: Option<&RedisUrl>,
    workloads: &[&'static str],
    quick: bool,
    json: bool,
    runs: usize,
    peers: bool,
    prefetch: usize,
) -> anyhow::Result<()> {
    let bullmq = peers.then(crate::bench_peers::prepare).transpose()?;
    let mut local = None;
    let url = match url {
        Some(url) => url.clone(),
        None => {
            let options = LocalServerOptions {
                appendonly: false,
                appendfsync: Fsync::No,
                ..LocalServerOptions::default()
            };
            let server = LocalServer::start_with(options).context(
                "cannot start a local redis-server (is it installed? or pass --redis URL)",
            )?;
            RedisUrl::from(local.insert(server).url())
        }
    };
    check_reachable(&url)?;
    if let Some(bullmq) = &bullmq {
        crate::bench_peers::run(bullmq, &url, workloads, quick, json, runs, prefetch)?;
        drop(local);
        return Ok(());
    }
    let n = if quick { QUICK_N } else { FULL_N };
    if !json {
        eprintln!("Redis at {url}; {n} items per run, median of {runs}");
        println!(
            "| workload | workers | requeue-redis items/s | LPUSH/RPOP items/s | requeue / floor |"
        );
        println!("|---|---|---|---|---|");
    }
    for workers in REDIS_WORKERS {
        for &workload in workloads {
            let median =
                |f: &dyn Fn() -> Result<requeue_bench::Measurement, requeue_bench::BenchError>| {
                    let mut measured = Vec::new();
                    for _ in 0..runs.max(1) {
                        measured
                            .push(f().with_context(|| format!("{workload} x{workers} failed"))?);
                    }
                    report::median(measured).context("no measurement")
                };
            let raw = url.expose();
            let engine = median(&|| match workload {
                "W1" => w1_redis(raw, n, workers, prefetch),
                _ => w3_redis(raw, n, workers, prefetch),
            })?;
            let floor = median(&|| floor_redis(workload, raw, n, workers))?;
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
    idle_latency(
        url.expose(),
        if quick { QUICK_IDLE } else { FULL_IDLE },
        json,
    )?;
    drop(local);
    Ok(())
}

/// Samples of the idle add-to-hand-out latency.
pub(crate) const FULL_IDLE: u64 = 500;
pub(crate) const QUICK_IDLE: u64 = 50;

/// The idle queue's add-to-hand-out latency (the wake-up path), one line
/// or one JSON row.
fn idle_latency(url: &str, samples: u64, json: bool) -> anyhow::Result<()> {
    let m = requeue_bench::idle_handout_redis(url, samples).context("idle latency failed")?;
    print_idle(&m, samples, json)
}

/// Prints an idle-latency measurement (any engine's), one line or one
/// JSON row.
pub(crate) fn print_idle(
    m: &requeue_bench::Measurement,
    samples: u64,
    json: bool,
) -> anyhow::Result<()> {
    let latency = m.latency.context("no latency recorded")?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "workload": m.workload,
                "engine": m.engine,
                "samples": samples,
                "p50_seconds": latency.p50.as_secs_f64(),
                "p99_seconds": latency.p99.as_secs_f64(),
                "max_seconds": latency.max.as_secs_f64(),
            })
        );
    } else {
        println!();
        println!(
            "Idle queue, add to hand-out ({samples} samples): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latency.p50.as_secs_f64() * 1e3,
            latency.p99.as_secs_f64() * 1e3,
            latency.max.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

/// One clear line (and exit 1) when Redis cannot be reached or does not
/// answer within [`REACH_TIMEOUT`].
fn check_reachable(url: &RedisUrl) -> anyhow::Result<()> {
    let client = requeue_redis::connect_client(url.expose(), None)
        .with_context(|| format!("invalid Redis URL {url}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REACH_TIMEOUT))
        .set_response_timeout(Some(REACH_TIMEOUT));
    let ping = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| show::redis_failure(url, "cannot reach Redis at", e, REACH_TIMEOUT))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| show::redis_failure(url, "PING failed at", e, REACH_TIMEOUT))?;
        Ok(())
    };
    runtime.block_on(async {
        tokio::time::timeout(REACH_TIMEOUT, ping)
            .await
            .unwrap_or_else(|_| Err(show::did_not_answer(url, REACH_TIMEOUT)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_w1_and_w3_have_a_redis_version() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select(&[]), Ok(vec!["W1", "W3"]));
        assert_eq!(select(&names(&["w3", "W1", "W3"])), Ok(vec!["W1", "W3"]));
        assert_eq!(select(&names(&["mpmc"])), Ok(vec!["W3"]));
        let unknown = select(&names(&["W99"])).expect_err("W99 is no workload");
        assert!(unknown.contains("unknown workload `W99`"), "{unknown}");
        let memory_only = select(&names(&["W5"])).expect_err("W5 is memory only");
        assert!(
            memory_only.contains("W5 has no Redis version"),
            "{memory_only}"
        );
        let long = select(&names(&[&"W".repeat(10_000)])).expect_err("unknown");
        assert!(long.len() < 200, "{long}");
    }
}
