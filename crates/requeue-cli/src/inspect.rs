//! `requeue inspect`: what a Redis queue holds right now — depth, parked
//! re-adds, delayed items and the next due, the leases in flight with the
//! time they have left, the keys that failed most, and the queue's
//! lifetime counters. One consistent snapshot (a read-only script), once
//! or every second with `--watch`.

use crate::show::{self, RedisUrl};
use anyhow::Context;
use requeue_redis::inspect::{QueueState, diagnose, inspect};
use requeue_redis::keys::QueueKeys;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one snapshot may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `requeue inspect` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Redis URL.
    pub url: RedisUrl,
    /// The queue name.
    pub queue: String,
    /// Refresh every second until interrupted.
    pub watch: bool,
    /// At most this many leases and failing keys are listed.
    pub limit: usize,
}

/// Above this many stored items, `inspect` checks only what its snapshot
/// shows; the full check reads everything (`requeue repair` does it).
const FULL_CHECK_MAX: u64 = 100_000;

/// Prints the snapshot, once or (with `--watch`) every second. Returns
/// whether the queue's state broke a rule (once: the exit code says so).
///
/// With `--watch`, a lost connection is reported on stderr (once per
/// outage) and the view resumes when Redis is back.
pub fn run(opts: &Options) -> anyhow::Result<bool> {
    // The error names the queue (shortened): no context that repeats it.
    let keys = QueueKeys::new(&opts.queue)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let url = &opts.url;
    runtime.block_on(async {
        let mut conn = connect(url, RESPONSE_TIMEOUT).await?;
        let tty = std::io::stdout().is_terminal();
        let mut down = false;
        loop {
            let state = match snapshot(&mut conn, &keys, opts).await {
                Ok(state) => state,
                Err(error) if opts.watch => {
                    if !down {
                        eprintln!("warning: {error:#}; retrying every second");
                        down = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(fresh) = connect(url, RESPONSE_TIMEOUT).await {
                        conn = fresh;
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            if down {
                eprintln!("Redis at {url} answers again");
                down = false;
            }
            let text = render(&opts.queue, &url.to_string(), &state);
            if opts.watch && tty {
                // Clear the screen and home the cursor: a steady, redrawn view.
                print!("\x1b[2J\x1b[H{text}");
            } else {
                print!("{text}");
            }
            if !opts.watch {
                return Ok(!state.problems.is_empty());
            }
            println!();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// One snapshot, with every rule checked when the queue is small enough
/// to read whole.
async fn snapshot(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
    opts: &Options,
) -> anyhow::Result<QueueState> {
    let url = &opts.url;
    let read_failed = |e: requeue_redis::error::Error| match e {
        requeue_redis::error::Error::Redis(e) if e.is_timeout() => {
            show::did_not_answer(url, RESPONSE_TIMEOUT)
        }
        e => {
            anyhow::Error::new(e).context(format!("cannot read queue {}", show::input(&opts.queue)))
        }
    };
    let mut state = inspect(conn, keys, opts.limit).await.map_err(read_failed)?;
    let stored = state.depth + state.dirty + state.delayed + state.processing_count;
    if stored <= FULL_CHECK_MAX {
        state.problems = diagnose(conn, keys).await.map_err(read_failed)?.problems;
    }
    Ok(state)
}

/// A connection to the Redis at `url`, within [`CONNECT_TIMEOUT`], whose
/// calls time out after `response`.
pub async fn connect(
    url: &RedisUrl,
    response: Duration,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = requeue_redis::connect_client(url.expose(), None)
        .with_context(|| format!("invalid Redis URL {url}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response));
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| show::did_not_answer(url, CONNECT_TIMEOUT))?
    .map_err(|e| show::redis_failure(url, "cannot reach Redis at", e, CONNECT_TIMEOUT))
}

/// Bytes as text: UTF-8 when it is, else escaped.
fn show(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(text) => text.to_string(),
        Err(_) => raw.escape_ascii().to_string(),
    }
}

/// Milliseconds as a short human duration, signed.
fn span(ms: i128) -> String {
    let (sign, ms) = if ms < 0 { ("-", -ms) } else { ("", ms) };
    if ms < 1_000 {
        format!("{sign}{ms} ms")
    } else if ms < 120_000 {
        format!("{sign}{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{sign}{:.1} min", ms as f64 / 60_000.0)
    }
}

/// The snapshot as a small report; `url` as it may be shown (redacted).
pub fn render(queue: &str, url: &str, s: &QueueState) -> String {
    let now = i128::from(s.server_now_ms);
    let mut out = String::new();
    let _ = writeln!(out, "queue {queue} at {url}");
    let _ = writeln!(
        out,
        "ready {}   parked {}   delayed {}   processing {}   failing keys {}",
        s.depth, s.parked, s.delayed, s.processing_count, s.failures_tracked
    );
    if let Some((item, due)) = &s.next_due {
        let _ = writeln!(
            out,
            "next due: {} in {}",
            show(item),
            span(i128::from(*due) - now)
        );
    }
    let _ = writeln!(
        out,
        "hand-outs {}   leases expired {}   retries {}",
        s.seq, s.lease_expired_total, s.retries_total
    );
    if !s.processing.is_empty() {
        let _ = writeln!(out, "\nin flight (lease left, token):");
        for lease in &s.processing {
            let left = i128::from(lease.deadline_ms) - now;
            let token = lease
                .token
                .map_or_else(|| "-".to_string(), |t| t.to_string());
            let state = if left <= 0 { "  EXPIRED" } else { "" };
            let _ = writeln!(
                out,
                "  {:<40} {:>10}  {token}{state}",
                show(&lease.item),
                span(left)
            );
        }
    }
    if !s.problems.is_empty() {
        let _ = writeln!(
            out,
            "\nPROBLEMS ({}; `requeue repair --apply` fixes them):",
            s.problems.len()
        );
        for problem in &s.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    if !s.top_failures.is_empty() {
        let _ = writeln!(out, "\nmost failures:");
        for (item, count) in &s.top_failures {
            let _ = writeln!(out, "  {:<40} {count}", show(item));
        }
    }
    out
}
