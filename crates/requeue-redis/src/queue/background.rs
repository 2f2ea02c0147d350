//! The two tasks each process runs per queue: the renewer (keeps this
//! process's leases alive, and renews first after a connection error)
//! and the marker waiter (blocks in `BZPOPMIN` so idle getters wake when
//! work arrives, without polling).

use super::shared::Shared;
use crate::ops;
use redis::aio::MultiplexedConnection;
use requeue::clock::Sleep;
use requeue::queue::Key;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a marker wait blocks; a lost wake-up costs at most this.
pub(crate) const WAKE_CAP: Duration = Duration::from_secs(5);

/// Renews every lease this process holds each `lease / 3`, and at once
/// when a call failed; until a renewal succeeds after a failure, getters
/// wait (renew first, then take new work).
pub(crate) async fn renew<T: Key>(shared: Arc<Shared<T>>, cancel: CancellationToken) {
    let period = shared.lease / 3;
    let mut backoff = super::shared::retry_backoff(Duration::from_millis(50));
    loop {
        let deadline = requeue::clock::deadline_after(shared.clock.now(), period);
        tokio::select! {
            // A stopped queue must not renew: checked first, so a clock
            // that moved at the same moment cannot win.
            biased;
            _ = cancel.cancelled() => return,
            _ = Sleep::new(&*shared.clock, deadline) => {}
            _ = shared.renew_now.notified() => {}
        }
        loop {
            match renew_once(&shared).await {
                Ok(()) => {
                    backoff = super::shared::retry_backoff(Duration::from_millis(50));
                    shared.healthy.send_replace(true);
                    break;
                }
                Err(error @ crate::error::Error::Corrupt { .. }) => {
                    // The connection is fine: gets go on (and report the
                    // same corruption to their callers); the leases held
                    // here run out unless the state is repaired in time.
                    tracing::error!(queue = %shared.name, %error, "cannot renew leases: the queue's state needs repair; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff.step()) => {}
                    }
                }
                Err(error) => {
                    shared.healthy.send_replace(false);
                    tracing::warn!(queue = %shared.name, url = %shared.url, %error, "cannot renew leases; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff.step()) => {}
                    }
                }
            }
        }
    }
}

/// One renewal round over every held lease.
async fn renew_once<T: Key>(shared: &Arc<Shared<T>>) -> Result<(), crate::error::Error> {
    let held = shared.held.snapshot();
    let sent = shared.local_ms();
    let lease_ms = super::lease::millis(shared.lease);
    let mut conn = shared.conn.clone();
    if held.is_empty() {
        // Nothing to renew: a PING still proves the connection is back.
        return Ok(redis::cmd("PING").query_async::<()>(&mut conn).await?);
    }
    let lost = ops::extend(&mut conn, &shared.keys, lease_ms, &held, shared.now()).await?;
    let really_lost = shared.held.renewed(&held, &lost, shared.held.until(sent));
    if really_lost > 0 {
        tracing::warn!(queue = %shared.name, lost = really_lost, "leases lost: their holders are told when they finish");
    }
    Ok(())
}

/// Blocks on the queue's marker while some getter of this process is
/// idle, and wakes the getters when it pops one.
pub(crate) async fn wait_for_marker<T: Key>(
    shared: Arc<Shared<T>>,
    client: redis::Client,
    cancel: CancellationToken,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = super::shared::retry_backoff(Duration::from_millis(50));
    loop {
        // Only block while a getter waits, so this process never takes a
        // wake-up it cannot use.
        while shared.idle.load(Ordering::SeqCst) == 0 {
            let changed = shared.idle_changed.notified();
            if shared.idle.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = changed => {}
            }
        }
        let connection = match conn.as_mut() {
            Some(c) => c,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(Duration::from_secs(2)));
                match client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(c) => {
                        backoff = super::shared::retry_backoff(Duration::from_millis(50));
                        conn.insert(c)
                    }
                    Err(error) => {
                        tracing::debug!(queue = %shared.name, %error, "marker connection failed; retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff.step()) => {}
                        }
                        // Getters poll at the cap meanwhile.
                        shared.ready.notify_waiters();
                        continue;
                    }
                }
            }
        };
        let mut pop = redis::cmd("BZPOPMIN");
        pop.arg(shared.keys.marker()).arg(WAKE_CAP.as_secs_f64());
        let popped: Result<Option<(String, String, f64)>, _> = tokio::select! {
            _ = cancel.cancelled() => return,
            r = pop.query_async(connection) => r,
        };
        match popped {
            Ok(Some(_)) if shared.idle.load(Ordering::SeqCst) > 0 => {
                // One wake-up for one getter; if more items are ready, its
                // get re-arms the marker for the next waiter (here or elsewhere).
                let left = shared.idle_changed.notified();
                tokio::pin!(left);
                left.as_mut().enable();
                shared.ready.notify_one();
                // Block again only once the woken getter has left the idle
                // count, or this process would take the next wake-up too.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = left => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            Ok(Some(_)) => {
                // Our getters left while we were blocked: the wake-up
                // belongs to another process, so put it back.
                let mut give_back = redis::cmd("ZADD");
                give_back.arg(shared.keys.marker()).arg(0).arg("r");
                if let Err(error) = give_back.query_async::<()>(connection).await {
                    tracing::debug!(queue = %shared.name, %error, "cannot give a wake-up back");
                    conn = None;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(queue = %shared.name, %error, "marker wait failed; reconnecting");
                conn = None;
                shared.ready.notify_waiters();
            }
        }
    }
}

/// client-go's 500 ms tick of `unfinished_work_seconds` and
/// `longest_running_processor_seconds`, over this process's leases.
pub(crate) async fn tick_unfinished_work<T: Key>(
    shared: Arc<Shared<T>>,
    cancel: CancellationToken,
) {
    const TICK: Duration = Duration::from_millis(500);
    loop {
        let deadline = requeue::clock::deadline_after(shared.clock.now(), TICK);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = Sleep::new(&*shared.clock, deadline) => {}
        }
        let now = shared.clock.now();
        let (mut total, mut longest) = (0.0, 0.0);
        shared.held.for_each_started(|started| {
            let age = now.saturating_duration_since(started).as_secs_f64();
            total += age;
            longest = f64::max(longest, age);
        });
        shared.report(|m| {
            m.unfinished_work.set(total);
            m.longest_running.set(longest);
        });
    }
}
