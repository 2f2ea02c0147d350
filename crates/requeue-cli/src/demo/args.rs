//! The flags of `requeue demo`, validated by clap so that a bad value is a
//! usage error (exit code 2, with the usage line) before anything starts.

use crate::show::{self, PgUrl, RedisUrl};
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Args, Command};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `requeue demo`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Engines:
  (default)                  requeue's in-memory WorkQueue; the workers are threads here
  --redis URL|local          the queue lives in Redis; depth, in flight and delayed are read
                             from Redis, and leases lost/reaped are shown too
  --postgres URL|local       the queue lives in PostgreSQL (local: a throwaway server from
                             initdb, fsync on); depth, in flight and delayed are read from
                             its tables
  --workers-procs N          with --redis or --postgres: the controller runs in N worker
                             processes sharing the queue

Exit codes:
  0  the run finished and every check held
  1  it could not start (e.g. the server unreachable), or an invariant was violated
     (counts that do not add up, a key lost, a worker process that died)
  2  usage error
  3  the run was unhealthy: processing stalled and did not recover, the queue's
     state in the server is corrupt, the server was unreachable at the end, or
     keys were left leased after every worker stopped (takes precedence over 1:
     when the server fails, the invariants cannot hold)

Examples:
  requeue demo --duration 10s
  requeue demo --redis local --workers-procs 3
  requeue demo --redis redis://127.0.0.1:6379/ --plain
  requeue demo --postgres local --workers-procs 3 --duration 10s
  REDIS_URL=redis://:PASSWORD@10.0.0.5:6379/ requeue demo --workers-procs 3

Logs: RUST_LOG, on stderr (default: warnings and errors, except the controller's
line per failed or panicked reconcile: those failures are simulated and counted above).")]
pub struct DemoArgs {
    /// How long the controller runs, e.g. `30s`, `500ms` or `2m` (ctrl-c stops it earlier).
    #[arg(long, default_value = "30s", value_parser = Checked(positive_duration))]
    pub duration: Duration,
    /// Objects in the fleet, named `ns-N/obj-M`, 100 per namespace.
    #[arg(long, default_value_t = 5_000, value_parser = Checked(objects))]
    pub objects: u32,
    /// Controller workers: threads in memory; on Redis, tokio tasks (in
    /// each worker process).
    #[arg(long, default_value_t = 4, value_parser = Checked(workers))]
    pub workers: u32,
    /// Share of reconciles that fail with a transient error (0..=1); with
    /// a non-zero rate, some keys are also "flaky" and fail several times in a row.
    #[arg(long, default_value = "0.05", value_parser = Checked(rate))]
    pub fail_rate: f64,
    /// Share of reconciles that panic (0..=1); the controller contains them.
    #[arg(long, default_value = "0.005", value_parser = Checked(rate))]
    pub panic_rate: f64,
    /// How often the periodic resync re-adds every key.
    #[arg(long, default_value = "10s", value_parser = Checked(positive_duration))]
    pub resync: Duration,
    /// Seed of every random choice, so runs are reproducible.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// One plain line per second instead of the live view (the default
    /// when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Serve Prometheus metrics (client-go's workqueue and controller-runtime's
    /// controller series) at `http://ADDR/metrics` while the demo runs, e.g. `127.0.0.1:9090`.
    /// With `--workers-procs` above 1, only this process's series (the
    /// update stream's adds and the queue depth).
    #[arg(long, value_name = "ADDR", value_parser = Checked(address))]
    pub metrics_addr: Option<SocketAddr>,
    /// Run on the Redis engine: the queue lives at URL (e.g.
    /// `redis://127.0.0.1:6379/`) as `demo-<pid>`, deleted at the end. `local`
    /// starts a throwaway `redis-server` from PATH on a free loopback port,
    /// stopped at the end. Default: `REDIS_URL` if set (else in memory).
    /// Passwords are never printed. Unreachable: exit code 1.
    #[arg(
        long,
        value_name = "URL",
        value_parser = Checked(redis_target),
        env = "REDIS_URL",
        hide_env_values = true
    )]
    pub redis: Option<RedisTarget>,
    /// Run on the PostgreSQL engine: the queue lives in the database at URL
    /// (e.g. `postgres://USER:PASSWORD@127.0.0.1:5432/app`, tables in
    /// schema `requeue`) as `demo-<pid>`, its rows deleted at the end.
    /// `local` starts a throwaway server (initdb on a free loopback port,
    /// fsync on), removed at the end. Passwords are never printed. Unreachable: exit code 1.
    #[arg(long, value_name = "URL", value_parser = Checked(postgres_target))]
    pub postgres: Option<PgTarget>,
    /// Worker processes: above 1 (needs `--redis` or `--postgres`), this
    /// program runs itself N times as workers sharing the queue, each with
    /// `--workers` workers, and keeps the update stream, the resync, the
    /// view and the summary; SIGTERM stops them at the end. 1: everything
    /// in this process.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = Checked(procs))]
    pub workers_procs: u32,
    /// With `--redis`: leave the queue's keys in Redis at the end (they
    /// still expire a minute after the planned end), so that tests can
    /// compare the summary with Redis' own counters.
    #[arg(long, hide = true)]
    pub keep_queue: bool,
}

impl DemoArgs {
    /// The rule between flags that clap cannot say: several worker
    /// processes only share a queue in Redis or PostgreSQL. A usage error (exit code 2,
    /// with the usage line) otherwise.
    pub fn check(&self) -> Result<(), clap::Error> {
        if self.workers_procs > 1 && self.redis.is_none() && self.postgres.is_none() {
            let mut cli = <crate::Cli as clap::CommandFactory>::command();
            cli.build(); // so that the usage line says `requeue demo`
            let why = "--workers-procs above 1 needs --redis URL or --postgres URL: the worker \
                       processes share a queue in the server (in memory, a queue is one process's)";
            let error = match cli.find_subcommand_mut("demo") {
                Some(demo) => demo.error(ErrorKind::MissingRequiredArgument, why),
                None => cli.error(ErrorKind::MissingRequiredArgument, why),
            };
            return Err(error);
        }
        Ok(())
    }
}

/// Where `--redis` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A throwaway `redis-server` started for the run.
    Local,
    /// A Redis URL (its `Debug` shows no credentials).
    Url(RedisUrl),
}

/// Where `--postgres` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTarget {
    /// A throwaway server started for the run.
    Local,
    /// A PostgreSQL URL (its `Debug` shows no credentials).
    Url(PgUrl),
}

/// `local`, or a `postgres://` / `postgresql://` URL (reachability is
/// checked when the demo starts: exit code 1, not a usage error).
fn postgres_target(text: &str) -> Result<PgTarget, String> {
    let text = text.trim();
    if text == "local" {
        return Ok(PgTarget::Local);
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Ok(PgTarget::Url(PgUrl::from(text.to_string())));
    }
    Err("not `local` or a URL like postgres://USER@127.0.0.1:5432/DB".to_string())
}

/// A value parser from a checking function whose error, unlike clap's
/// own value errors, shows the usage line too. The rejected value is shown
/// as [`show::input`] shows input: short, and without credentials.
#[derive(Clone)]
struct Checked<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        (self.0)(&text).map_err(|why| {
            let arg = arg.map_or_else(|| "a flag".to_string(), |a| format!("'{a}'"));
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value '{}' for {arg}: {why}", show::input(&text)),
            )
            .format(&mut cmd.clone())
        })
    }
}

/// A whole number in `range`.
fn count_in(text: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    let value: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be {} to {}", range.start(), range.end()))
    }
}

fn objects(text: &str) -> Result<u32, String> {
    count_in(text, 1..=1_000_000)
}

fn workers(text: &str) -> Result<u32, String> {
    count_in(text, 1..=256)
}

fn procs(text: &str) -> Result<u32, String> {
    count_in(text, 1..=64)
}

/// `local`, or a URL the Redis client accepts (reachability is checked
/// when the demo starts: that is exit code 1, not a usage error).
fn redis_target(text: &str) -> Result<RedisTarget, String> {
    let text = text.trim();
    if text == "local" {
        return Ok(RedisTarget::Local);
    }
    requeue_redis::connect_client(text, None)
        .map(|_| RedisTarget::Url(RedisUrl::from(text.to_string())))
        .map_err(|e| format!("not `local` or a Redis URL like redis://127.0.0.1:6379/ ({e})"))
}

fn address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:9090"))
}

/// A share between 0 and 1 inclusive.
fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 1".to_string())
    }
}

/// A duration above zero (a zero period would spin, a zero run shows nothing).
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = crate::parse_duration(text)?;
    if duration.is_zero() {
        Err("must be longer than zero".to_string())
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_lie_between_zero_and_one() {
        assert_eq!(rate("0"), Ok(0.0));
        assert_eq!(rate("0.05"), Ok(0.05));
        assert_eq!(rate("1"), Ok(1.0));
        assert!(rate("2").is_err());
        assert!(rate("-0.1").is_err());
        assert!(rate("NaN").is_err());
        assert!(rate("lots").is_err());
    }

    #[test]
    fn counts_must_lie_in_their_range() {
        assert_eq!(objects("500"), Ok(500));
        assert!(objects("0").is_err());
        assert!(workers("257").is_err());
        assert!(workers("four").is_err());
        assert!(address("127.0.0.1:0").is_ok());
        assert!(address("nowhere").is_err());
        assert_eq!(procs("3"), Ok(3));
        assert!(procs("0").is_err());
    }

    #[test]
    fn redis_is_local_or_a_url() {
        assert_eq!(redis_target("local"), Ok(RedisTarget::Local));
        assert_eq!(
            redis_target("redis://127.0.0.1:6379/"),
            Ok(RedisTarget::Url(RedisUrl::from(
                "redis://127.0.0.1:6379/".to_string()
            )))
        );
        assert!(redis_target("nowhere").is_err());
        let with_password = redis_target("redis://admin:s3cretpass@127.0.0.1:6379/")
            .expect("a URL with credentials");
        let debug = format!("{with_password:?}");
        assert!(
            !debug.contains("s3cretpass") && debug.contains("***"),
            "{debug}"
        );
        let refused =
            redis_target("redis://admin:s3cretpass@127.0.0.1:notaport/").expect_err("not a port");
        assert!(!refused.contains("s3cretpass"), "{refused}");
    }

    #[test]
    fn postgres_is_local_or_a_url() {
        assert_eq!(postgres_target("local"), Ok(PgTarget::Local));
        assert!(matches!(
            postgres_target("postgres://u:pw@127.0.0.1:5432/db"),
            Ok(PgTarget::Url(_))
        ));
        let refused = postgres_target("redis://u:s3cret@h/").expect_err("not PostgreSQL");
        assert!(!refused.contains("s3cret"), "{refused}");
    }

    #[test]
    fn durations_must_be_positive() {
        assert_eq!(positive_duration("3s"), Ok(Duration::from_secs(3)));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("soon").is_err());
    }
}
