//! `requeue`: watch the library's primitives at work.

mod bench;
mod bench_peers;
mod bench_postgres;
mod bench_redis;
mod demo;
mod inspect;
mod inspect_postgres;
mod repair;
mod show;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use show::{PgUrl, RedisUrl};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Kubernetes' controller primitives in Rust: see them run.
#[derive(Debug, Parser)]
#[command(
    name = "requeue",
    version,
    about,
    after_help = "\
Environment:
  REDIS_URL     the Redis URL when --redis is not given (inspect, demo, bench --engine redis)
  DATABASE_URL  the PostgreSQL URL when --postgres is not given (bench --engine postgres)
  RUST_LOG      which log lines reach stderr, e.g. `debug` or `requeue_redis=debug`
                (default: warnings and errors; demo: not the simulated failures)"
)]
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
    /// Run the benchmark workloads W1–W8 (see docs/benchmarks.md),
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
        #[arg(long, value_name = "PATH", conflicts_with = "child")]
        client_go: Option<PathBuf>,
        /// The engine: `memory` (W1–W8 against a plain channel), `redis`
        /// (W1 and W3 with 1, 8 and 32 workers against raw LPUSH/RPOP) or
        /// `postgres` (W1 and W3 with 1, 8 and 32 workers: items/s,
        /// statements and server transactions per item).
        #[arg(long, value_enum, default_value_t = BenchEngine::Memory)]
        engine: BenchEngine,
        /// The Redis to use with `--engine redis`, e.g.
        /// `redis://:PASSWORD@127.0.0.1:6379/` (default: `REDIS_URL` if set,
        /// else a throwaway redis-server on loopback). Passwords are never
        /// printed.
        #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
        redis: Option<RedisUrl>,
        /// The PostgreSQL to use with `--engine postgres`, e.g.
        /// `postgres://USER:PASSWORD@127.0.0.1:5432/bench` (default:
        /// `DATABASE_URL` if set, else a throwaway server from initdb on
        /// loopback, fsync on). Use a database nothing else uses: the
        /// server counters count every client. Passwords are never printed.
        #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
        postgres: Option<PgUrl>,
        /// With `--engine postgres`: also run graphile-worker and pg-boss
        /// (Node.js 20.19+, installed with npm into requeue-bench's peers/
        /// on first use) on the same server, alternately with
        /// requeue-postgres, with requeue's ratios to each.
        /// With `--engine redis`: run BullMQ (Node.js 18+, installed with
        /// npm into requeue-bench's peers/bullmq on first use) beside
        /// requeue-redis on the same server, alternately, and report both
        /// sides' items/s, Redis commands per item and client round trips
        /// per item, with requeue's ratio to BullMQ ("x BullMQ").
        #[arg(long)]
        peers: bool,
        /// With `--engine redis`: the queues fetch up to N items ahead for
        /// their workers (`RedisQueueBuilder::prefetch`; 0, the default, is
        /// off). Rows are then named `requeue-redis xW prefetch`.
        #[arg(long, value_name = "N", default_value_t = 0)]
        prefetch: usize,
        /// Workloads to run, comma-separated (the same as the positional
        /// list), e.g. `--workloads W1,W3`.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        workloads: Vec<String>,
        /// Workloads to run, e.g. `W1 W3/floor W3/tasks` (default: all).
        /// Each workload's channel floor is added so that its ratio is known.
        /// With `--engine redis` or `postgres`: `W1`, `W3` or both (the default).
        cases: Vec<String>,
    },
    /// Show what a Redis queue holds: depth, parked re-adds, delayed items
    /// (next due), leases in flight with the time they have left, the keys
    /// that failed most, and the queue's counters. With `--postgres URL`:
    /// a PostgreSQL queue's counts by state, oldest lease deadline,
    /// counters and dead rows.
    Inspect {
        /// The Redis URL, e.g. `redis://127.0.0.1:6379/` or
        /// `redis://:PASSWORD@host:6379/0` (default: `REDIS_URL`). Passwords
        /// are never printed.
        #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
        redis: Option<RedisUrl>,
        /// Inspect a requeue-postgres queue instead, e.g.
        /// `postgres://USER:PASSWORD@host:5432/app` (tables in schema
        /// `requeue`). Passwords are never printed.
        #[arg(long, value_name = "URL")]
        postgres: Option<PgUrl>,
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
    /// Check every rule of a Redis queue's stored state (a full read) and
    /// say what is wrong; with `--apply`, fix what can be fixed safely, in
    /// one transaction that changes nothing if a worker touched the queue
    /// meanwhile. Exit 0: healthy or repaired; 3: problems found (dry run).
    Repair {
        /// The Redis URL (default: `REDIS_URL`). Passwords are never printed.
        #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
        redis: RedisUrl,
        /// The queue name.
        #[arg(long)]
        queue: String,
        /// Make the changes (without it, a dry run that only reports).
        #[arg(long)]
        apply: bool,
    },
}

/// The exit code of `inspect` and `repair` when the queue's state breaks
/// a rule (and nothing was repaired).
const EXIT_PROBLEMS: u8 = 3;

/// Which engine `requeue bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchEngine {
    /// The in-memory `WorkQueue`.
    Memory,
    /// `requeue-redis` against a Redis server.
    Redis,
    /// `requeue-postgres` against a PostgreSQL server.
    Postgres,
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

/// Parses the command line. A usage error is printed as clap would, but
/// with any URL in it redacted (clap quotes the arguments it rejects).
fn parse() -> (Cli, ArgMatches) {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(error.kind(), DisplayHelp | DisplayVersion) || !error.use_stderr() {
                error.exit();
            }
            let rendered = error.render();
            let text = if colours(&std::io::stderr()) {
                rendered.ansi().to_string()
            } else {
                rendered.to_string()
            };
            eprint!("{}", show::redact_urls_in(&text));
            std::process::exit(error.exit_code());
        }
    }
}

/// Whether to colour what goes to `stream`: a terminal, and `NO_COLOR` unset.
fn colours(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Log lines (the library's `tracing` events) go to stderr, so that stdout
/// (`--json`, `--plain`, a worker's reports) stays clean; `RUST_LOG`
/// chooses them, by default warnings and errors. The demo's reconciles fail
/// and panic on purpose and its view shows them: by default the
/// controller's line per failure and panic is not logged there.
fn init_logging(command: &Command) {
    let default = match command {
        Command::Demo(_) | Command::DemoWorker(_) => {
            "warn,requeue::controller=off,requeue::crash=off"
        }
        _ => "warn",
    };
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty());
    let filter =
        tracing_subscriber::EnvFilter::builder().parse_lossy(spec.as_deref().unwrap_or(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours(&std::io::stderr()))
        .try_init();
}

/// Exits with a usage error (code 2): `error: <why>`, the subcommand's
/// usage line and the hint, as clap prints its own.
fn usage_error(subcommand: &str, kind: clap::error::ErrorKind, why: &str) -> ! {
    let mut cli = Cli::command();
    cli.build(); // so that the usage line names the subcommand
    match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, why).exit(),
        None => cli.error(kind, why).exit(),
    }
}

/// Flag combinations and values clap's declarations cannot check: a usage
/// error (exit 2) before anything runs.
fn check_combinations(cli: &Cli, matches: &ArgMatches) {
    use clap::error::ErrorKind;
    if let Command::Demo(args) = &cli.command {
        let redis_given = matches
            .subcommand_matches("demo")
            .and_then(|demo| demo.value_source("redis"))
            == Some(ValueSource::CommandLine);
        if args.postgres.is_some() && redis_given {
            usage_error(
                "demo",
                ErrorKind::ArgumentConflict,
                "--redis and --postgres: the demo runs on one engine",
            );
        }
        return;
    }
    if let Command::Inspect {
        redis, postgres, ..
    } = &cli.command
    {
        let redis_given = matches
            .subcommand_matches("inspect")
            .and_then(|inspect| inspect.value_source("redis"))
            == Some(ValueSource::CommandLine);
        if postgres.is_some() && redis_given {
            usage_error(
                "inspect",
                ErrorKind::ArgumentConflict,
                "--redis and --postgres: inspect one queue at a time",
            );
        }
        if postgres.is_none() && redis.is_none() {
            usage_error(
                "inspect",
                ErrorKind::MissingRequiredArgument,
                "the queue's server is needed: --redis URL (or REDIS_URL) or --postgres URL",
            );
        }
        return;
    }
    let Command::Bench {
        engine,
        client_go,
        child,
        cases,
        workloads,
        peers,
        prefetch,
        ..
    } = &cli.command
    else {
        return;
    };
    if *engine != BenchEngine::Memory && client_go.is_some() {
        usage_error(
            "bench",
            ErrorKind::ArgumentConflict,
            "--client-go compares the in-memory engine; it needs --engine memory",
        );
    }
    if *engine != BenchEngine::Redis && *prefetch > 0 {
        usage_error(
            "bench",
            ErrorKind::ArgumentConflict,
            "--prefetch sets the Redis queues' fetching ahead; it needs --engine redis",
        );
    }
    if *engine == BenchEngine::Memory && *peers {
        usage_error(
            "bench",
            ErrorKind::ArgumentConflict,
            "--peers compares job queues on a server; it needs --engine redis or postgres",
        );
    }
    let postgres_given = matches
        .subcommand_matches("bench")
        .and_then(|bench| bench.value_source("postgres"))
        == Some(ValueSource::CommandLine);
    if *engine != BenchEngine::Postgres && postgres_given {
        usage_error(
            "bench",
            ErrorKind::ArgumentConflict,
            "--postgres needs --engine postgres",
        );
    }
    let cases: Vec<String> = cases.iter().chain(workloads).cloned().collect();
    let cases = &cases;
    // Given on the command line, not inherited from REDIS_URL: ignoring it
    // would run something else than asked.
    let redis_given = matches
        .subcommand_matches("bench")
        .and_then(|bench| bench.value_source("redis"))
        == Some(ValueSource::CommandLine);
    if *engine != BenchEngine::Redis && redis_given {
        usage_error(
            "bench",
            ErrorKind::ArgumentConflict,
            "--redis needs --engine redis (the other engines do not use Redis)",
        );
    }
    let checked = match engine {
        // The parent checked the cases it passes to its children.
        BenchEngine::Memory if *child => Ok(()),
        BenchEngine::Memory => bench::select(cases).map(drop),
        BenchEngine::Redis => bench_redis::select(cases).map(drop),
        BenchEngine::Postgres => bench_redis::select_for(cases, "PostgreSQL", "postgres").map(drop),
    };
    if let Err(why) = checked {
        usage_error("bench", ErrorKind::InvalidValue, &why);
    }
}

fn main() -> std::process::ExitCode {
    let (cli, matches) = parse();
    init_logging(&cli.command);
    check_combinations(&cli, &matches);
    // The demo contains panics on purpose; report them in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = requeue::crash::panic_message(info.payload());
        eprintln!("panic caught by requeue: {message}");
    }));
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::DemoWorker(args) => demo::run_worker(args),
        Command::Inspect {
            postgres: Some(url),
            queue,
            watch,
            ..
        } => inspect_postgres::run(&url, &queue, watch),
        Command::Inspect {
            redis,
            queue,
            watch,
            limit,
            ..
        } => match redis.context("--redis URL is needed").and_then(|url| {
            inspect::run(&inspect::Options {
                url,
                queue,
                watch,
                limit,
            })
        }) {
            Ok(true) => return std::process::ExitCode::from(EXIT_PROBLEMS),
            other => other.map(drop),
        },
        Command::Repair {
            redis,
            queue,
            apply,
        } => match repair::run(&repair::Options {
            url: redis,
            queue,
            apply,
        }) {
            Ok(repair::Outcome::Found) => return std::process::ExitCode::from(EXIT_PROBLEMS),
            other => other.map(drop),
        },
        Command::Bench {
            engine: BenchEngine::Postgres,
            quick,
            json,
            runs,
            postgres,
            mut cases,
            workloads,
            peers,
            ..
        } => {
            cases.extend(workloads);
            bench_redis::select_for(&cases, "PostgreSQL", "postgres")
                .map_err(anyhow::Error::msg)
                .and_then(|workloads| {
                    bench_postgres::run(
                        postgres.as_ref(),
                        &workloads,
                        quick,
                        json,
                        usize::from(runs),
                        peers,
                    )
                })
        }
        Command::Bench {
            engine: BenchEngine::Redis,
            quick,
            json,
            runs,
            redis,
            mut cases,
            workloads,
            peers,
            prefetch,
            ..
        } => bench_redis::select({
            cases.extend(workloads);
            &cases
        })
        .map_err(anyhow::Error::msg)
        .and_then(|workloads| {
            bench_redis::run(
                redis.as_ref(),
                &workloads,
                quick,
                json,
                usize::from(runs),
                peers,
                prefetch,
            )
        }),
        Command::Bench {
            quick,
            json,
            runs,
            child,
            mut cases,
            workloads,
            client_go,
            ..
        } => bench::run(&bench::Options {
            quick,
            json,
            runs: usize::from(runs),
            cases: {
                cases.extend(workloads);
                cases
            },
            child,
            client_go,
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One clear line: each cause once, no backtrace, no password.
            eprintln!("error: {}", show::one_line(&error));
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
