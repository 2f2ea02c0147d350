//! The background tasks of a remote engine's process: the renewer and the
//! unfinished-work tick.

use super::{LeaseEngine, retry_backoff};
use crate::clock::{Sleep, deadline_after};
use crate::handout::QueueError;
use crate::queue::Key;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Renews every lease this process holds each third of a lease, and at
/// once when a call failed on the connection
/// ([`LeaseKeeper::connection_failed`](super::LeaseKeeper::connection_failed)).
/// Until a renewal succeeds after a failure the keeper reports unhealthy,
/// so getters renew first, then take new work. Corrupt backend state is
/// logged and retried without marking the connection unhealthy (gets go
/// on, and report the corruption to their callers). Ends when `cancel` fires.
pub async fn renew<T: Key, E: LeaseEngine<T>>(engine: Arc<E>, cancel: CancellationToken) {
    let keeper = engine.keeper();
    let period = keeper.lease() / 3;
    let first = Duration::from_millis(50);
    let mut backoff = retry_backoff(first);
    loop {
        let deadline = deadline_after(keeper.clock().now(), period);
        tokio::select! {
            // A stopped queue must not renew: checked first, so a clock
            // that moved at the same moment cannot win.
            biased;
            _ = cancel.cancelled() => return,
            _ = Sleep::new(&**keeper.clock(), deadline) => {}
            _ = keeper.renew_requested() => {}
        }
        loop {
            match renew_once(&engine).await {
                Ok(()) => {
                    backoff = retry_backoff(first);
                    keeper.set_healthy(true);
                    break;
                }
                Err(error @ QueueError::Corrupt { .. }) => {
                    // The leases held here run out unless the state is
                    // repaired in time.
                    tracing::error!(queue = keeper.name(), %error, "cannot renew leases: the queue's state needs repair; retrying");
                }
                Err(error) => {
                    keeper.set_healthy(false);
                    tracing::warn!(queue = keeper.name(), endpoint = keeper.endpoint(), %error, "cannot renew leases; retrying");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = engine.pause(backoff.step()) => {}
            }
        }
    }
}

/// One renewal round over every held lease.
async fn renew_once<T: Key, E: LeaseEngine<T>>(engine: &Arc<E>) -> Result<(), QueueError> {
    let keeper = engine.keeper();
    let held = keeper.table().snapshot();
    let sent = keeper.local_ms();
    let lost = engine.clone().extend(held.clone()).await?;
    let table = keeper.table();
    let really_lost = table.renewed(&held, &lost, table.until(sent));
    if really_lost > 0 {
        tracing::warn!(
            queue = keeper.name(),
            lost = really_lost,
            "leases lost: their holders are told when they finish"
        );
    }
    Ok(())
}

/// client-go's 500 ms tick of `unfinished_work_seconds` and
/// `longest_running_processor_seconds`, over this process's leases (a
/// no-op without metrics). Ends when `cancel` fires.
pub async fn report_unfinished_work<T: Key, E: LeaseEngine<T>>(
    engine: Arc<E>,
    cancel: CancellationToken,
) {
    const TICK: Duration = Duration::from_millis(500);
    let Some(metrics) = engine.metrics() else {
        return;
    };
    let keeper = engine.keeper();
    loop {
        let deadline = deadline_after(keeper.clock().now(), TICK);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = Sleep::new(&**keeper.clock(), deadline) => {}
        }
        let now = keeper.clock().now();
        let (mut total, mut longest) = (0.0, 0.0);
        keeper.table().for_each_started(|started| {
            let age = now.saturating_duration_since(started).as_secs_f64();
            total += age;
            longest = f64::max(longest, age);
        });
        metrics.unfinished_work.set(total);
        metrics.longest_running.set(longest);
    }
}
