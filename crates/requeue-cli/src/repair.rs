//! `requeue repair`: checks every rule of a Redis queue's stored state and,
//! with `--apply`, fixes what can be fixed safely (see
//! `requeue_redis::inspect::repair`): stranded dirty keys are queued
//! again, leases held by nobody are given back, orphaned bookkeeping and
//! content that is not the queue's are dropped. A dry run by default.

use crate::show::RedisUrl;
use anyhow::Context;
use requeue_redis::inspect::{diagnose, repair};
use requeue_redis::keys::QueueKeys;
use std::time::Duration;

/// What `requeue repair` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Redis URL.
    pub url: RedisUrl,
    /// The queue name.
    pub queue: String,
    /// Make the changes (else only say what they would be).
    pub apply: bool,
}

/// What the run found, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule held.
    Healthy,
    /// Problems found, not changed (dry run).
    Found,
    /// Problems found and repaired.
    Repaired,
}

/// How long one Redis call may take (a repair reads the whole queue).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints the problems and, with `apply`, the changes made.
pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    // The error names the queue (shortened): no context that repeats it.
    let keys = QueueKeys::new(&opts.queue)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let mut conn = crate::inspect::connect(&opts.url, CALL_TIMEOUT).await?;
        let timed = |what: &'static str| {
            move |_| anyhow::anyhow!("Redis did not answer the {what} within {CALL_TIMEOUT:?}")
        };
        let found = tokio::time::timeout(CALL_TIMEOUT, diagnose(&mut conn, &keys))
            .await
            .map_err(timed("diagnosis"))?
            .context("cannot read the queue")?;
        if found.is_healthy() {
            println!("queue {}: every rule holds; nothing to repair", keys.name());
            return Ok(Outcome::Healthy);
        }
        println!("queue {}: {} problems", keys.name(), found.problems.len());
        for problem in &found.problems {
            println!("  {problem}\n      repair: {}", problem.repair());
        }
        if !opts.apply {
            println!("dry run: nothing changed; run again with --apply to repair");
            return Ok(Outcome::Found);
        }
        let report = tokio::time::timeout(CALL_TIMEOUT, repair(&mut conn, &keys))
            .await
            .map_err(timed("repair"))?
            .context("cannot repair the queue")?;
        println!("repaired, {} changes:", report.actions.len());
        for action in &report.actions {
            println!("  {action}");
        }
        Ok(Outcome::Repaired)
    })
}
