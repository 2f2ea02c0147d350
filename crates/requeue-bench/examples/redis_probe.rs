//! W3 on requeue-redis at one concurrency, with Redis's own accounting:
//! items/s, script calls per item and Redis CPU per call, against the
//! Redis at `REDIS_URL`. For finding where a Redis run's time goes.
//!
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo run --release -p requeue-bench --example redis_probe -- 8 32 W1`
//! (workers, prefetch, workload: `W3` unless `W1`).

use std::time::Instant;

fn stat(conn: &mut redis::Connection, name: &str) -> (u64, u64) {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .unwrap_or_default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("cmdstat_{name}:")) {
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            return (field("calls="), field("usec="));
        }
    }
    (0, 0)
}

/// This process's CPU time so far (user + system), from /proc.
fn cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    std::time::Duration::from_millis(ticks * 10)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |a| a.parse())
    };
    let workers = number(0, 8)?;
    let prefetch = number(1, 0)?;
    let w1 = args.get(2).is_some_and(|w| w == "W1");
    let workload = if w1 { "W1" } else { "W3" };
    let n = 20_000;
    let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
    for _ in 0..3 {
        let before = stat(&mut conn, "evalsha");
        let cpu_before = cpu();
        let started = Instant::now();
        let m = if w1 {
            requeue_bench::w1_redis(&url, n, workers, prefetch)?
        } else {
            requeue_bench::w3_redis(&url, n, workers, prefetch)?
        };
        let wall = started.elapsed();
        let client_cpu = cpu() - cpu_before;
        let after = stat(&mut conn, "evalsha");
        let calls = after.0 - before.0;
        let usec = after.1 - before.1;
        println!(
            "{workload} x{workers} prefetch {prefetch}: {:.1} k items/s; {:.3} calls/item; {:.1} us Redis per call; Redis busy {:.0} % of {:?}; client CPU {:.1} us/item",
            m.items_per_sec() / 1e3,
            calls as f64 / n as f64,
            usec as f64 / calls.max(1) as f64,
            usec as f64 / 1e6 / wall.as_secs_f64() * 100.0,
            wall,
            client_cpu.as_secs_f64() * 1e6 / n as f64,
        );
    }
    Ok(())
}
