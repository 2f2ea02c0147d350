//! The Redis-only background task of each process: the marker waiter
//! (blocks in `BZPOPMIN` so idle getters wake when work arrives, without
//! polling). The renewer and the unfinished-work tick are core's
//! (`requeue::engine::remote`).

use super::connection::{Conn, Connector};
use super::shared::Shared;

use requeue::engine::remote::retry_backoff;
use requeue::queue::Key;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a marker wait blocks; a lost wake-up costs at most this.
pub(crate) const WAKE_CAP: Duration = Duration::from_secs(5);

/// Blocks on the queue's marker while some getter of this process is
/// idle, and wakes the getters when it pops one.
pub(crate) async fn wait_for_marker<T: Key>(
    shared: Arc<Shared<T>>,
    connector: Connector,
    cancel: CancellationToken,
) {
    let mut conn: Option<Conn> = None;
    let mut backoff = retry_backoff(Duration::from_millis(50));
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
                match connector
                    .connect_blocking(Duration::from_secs(2), WAKE_CAP)
                    .await
                {
                    Ok(c) => {
                        backoff = retry_backoff(Duration::from_millis(50));
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
