//! `requeue`: watch the library's primitives at work.

mod bench;
mod bench_redis;
mod demo;
mod inspect;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Kubernetes' controller primitives in Rust: see them run.
#[derive(Debug, Parser)]
#[command(name = "requeue", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch a simulated controller reconcile a fleet of objects: dedup,
    /// per-key backoff, contained panics, resync and correlated events, live.
    Demo(demo::DemoArgs),
    /// Internal: one worker process of `demo --redis URL --workers-procs N`.
    #[command(hide = true)]
    DemoWorker(demo::WorkerArgs),
    /// Run the benchmark workloads W1–W8 (see shared/bench/WORKLOADS.md),
    /// each in its own process, and print median figures with the ratio to
    /// a plain channel measured in the same run (and, with `--client-go`,
    /// to the real client-go work queue measured in the same rounds).
    Bench {
        /// Small sizes (seconds instead of minutes), e.g. for CI.
        #[arg(long)]
        quick: bool,
        /// One JSON object per workload instead of a table.
        #[arg(long)]
        json: bool,
        /// Rounds: each workload runs once per round, in a fresh process;
        /// the median is reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
        runs: u16,
        /// Internal: run the cases in this process (used by the parent run).
        #[arg(long, hide = true)]
        child: bool,
        /// Also measure the real client-go work queue: PATH is a `wqbench`
        /// binary built from the client-go reference harness. Each round
        /// runs the Go side of a workload right before requeue's, and the
        /// table sets each requeue figure beside client-go's from the same
        /// rounds, with requeue's advantage ("x client-go").
        #[arg(long, value_name = "PATH", conflicts_with_all = ["child", "redis"])]
        client_go: Option<PathBuf>,
        /// The engine: `memory` (W1–W8 against a plain channel) or `redis`
        /// (W1 and W3 with 1, 8 and 32 workers against raw LPUSH/RPOP).
        #[arg(long, value_enum, default_value_t = BenchEngine::Memory)]
        engine: BenchEngine,
        /// The Redis to use with `--engine redis` (default: start a
        /// throwaway redis-server on loopback).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Workloads to run, e.g. `W1 W3/floor W3/tasks` (default: all).
        /// Each workload's channel floor is added so that its ratio is known.
        cases: Vec<String>,
    },
    /// Show what a Redis queue holds: depth, parked re-adds, delayed items
    /// (next due), leases in flight with the time they have left, the keys
    /// that failed most, and the queue's counters.
    Inspect {
        /// The Redis URL, e.g. `redis://127.0.0.1:6379/`.
        #[arg(long, value_name = "URL")]
        redis: String,
        /// The queue name.
        #[arg(long)]
        queue: String,
        /// Refresh every second until interrupted.
        #[arg(long)]
        watch: bool,
        /// At most this many leases and failing keys are listed.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Which engine `requeue bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchEngine {
    /// The in-memory `WorkQueue`.
    Memory,
    /// `requeue-redis` against a Redis server.
    Redis,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 3s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Flag combinations clap's declarations cannot express: a usage error (exit 2).
fn check_combinations(cli: &Cli) {
    if let Command::Bench {
        engine: BenchEngine::Redis,
        client_go: Some(_),
        ..
    } = &cli.command
    {
        let mut cli = Cli::command();
        cli.build();
        let message =
            "--client-go compares the in-memory engine; it cannot be used with --engine redis";
        let kind = clap::error::ErrorKind::ArgumentConflict;
        match cli.find_subcommand_mut("bench") {
            Some(bench) => bench.error(kind, message).exit(),
            None => cli.error(kind, message).exit(),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    check_combinations(&cli);
    // The demo contains panics on purpose; report them in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = requeue::crash::panic_message(info.payload());
        eprintln!("panic caught by requeue: {message}");
    }));
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::DemoWorker(args) => demo::run_worker(args),
        Command::Inspect {
            redis,
            queue,
            watch,
            limit,
        } => inspect::run(&inspect::Options {
            url: redis,
            queue,
            watch,
            limit,
        }),
        Command::Bench {
            engine: BenchEngine::Redis,
            quick,
            json,
            runs,
            redis,
            ..
        } => bench_redis::run(redis.as_deref(), quick, json, usize::from(runs)),
        Command::Bench {
            quick,
            json,
            runs,
            child,
            cases,
            client_go,
            ..
        } => bench::run(&bench::Options {
            quick,
            json,
            runs: usize::from(runs),
            cases,
            child,
            client_go,
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One clear line (the causes joined), no backtrace.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
