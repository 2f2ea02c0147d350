//! Wake-ups without polling: one connection per process `LISTEN`s on the
//! schema's channel, where the operations that make an item ready (or
//! give a delayed one an earlier due time) `NOTIFY` the queue's id. A
//! notification for this queue wakes this process's idle getters, which
//! then ask the database. Getters also wake at the next due time or lease
//! deadline the database told them, and at the latest after [`WAKE_CAP`],
//! so a lost notification (the listener reconnecting) costs a bounded
//! delay, never an item.

use super::shared::Shared;
use requeue::engine::remote::retry_backoff;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest an idle getter sleeps without asking the database.
pub(crate) const WAKE_CAP: Duration = Duration::from_secs(5);

/// Listens for this queue's notifications until `cancel` fires.
pub(crate) async fn listen<T: Send + Sync + 'static>(
    shared: Arc<Shared<T>>,
    channel: String,
    cancel: CancellationToken,
) {
    let mine = shared.queue_id.to_string();
    let mut backoff = retry_backoff(Duration::from_millis(50));
    loop {
        let mut listener = tokio::select! {
            _ = cancel.cancelled() => return,
            connected = connect(&shared, &channel) => match connected {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(queue = %shared.name, url = %shared.url, %error, "cannot listen for wake-ups; getters poll until it can");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff.step()) => continue,
                    }
                }
            },
        };
        backoff = retry_backoff(Duration::from_millis(50));
        // Anything added while nobody listened: look now.
        shared.ready.notify_waiters();
        loop {
            // `try_recv` ends with `None` when the connection is lost,
            // instead of reconnecting silently and dropping what was sent
            // meanwhile: the next round reconnects and wakes every getter.
            let received = tokio::select! {
                _ = cancel.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    if notification.payload() == mine {
                        shared.ready.notify_waiters();
                    }
                }
                Ok(None) => {
                    tracing::warn!(queue = %shared.name, url = %shared.url, "the wake-up listener lost its connection; reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(queue = %shared.name, url = %shared.url, %error, "the wake-up listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// A listener on one of the pool's connections (kept while it lives).
/// Its notification buffer is unbounded in sqlx; it stays short because
/// this task reads it continuously, and each entry is a few bytes.
async fn connect<T: Send + Sync + 'static>(
    shared: &Shared<T>,
    channel: &str,
) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
