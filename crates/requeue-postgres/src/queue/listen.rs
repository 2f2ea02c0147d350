//! Wake-ups without polling: one connection per process `LISTEN`s on the
//! schema's channel, where the operations that make an item ready (or
//! give a delayed one an earlier due time) `NOTIFY` the queue's id (and
//! how many items, when more than one). A notification for this queue
//! wakes one idle getter of this process per item, not all of them: 32
//! idle workers and one add must not cost 32 statements. Getters also wake at the next due time or lease
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

/// The most getters one notification wakes.
const WAKE_AT_ONCE: u32 = 256;

/// How many items a notification says became ready in queue `mine`
/// (payload `<id>` or `<id>:<n>`), or `None` for another queue's.
fn ready_items(payload: &str, mine: &str) -> Option<u32> {
    let (queue, n) = payload.split_once(':').unwrap_or((payload, "1"));
    (queue == mine).then(|| n.parse().unwrap_or(1))
}

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
                    if let Some(ready) = ready_items(notification.payload(), &mine) {
                        // One getter per item that became ready (each
                        // that finds one and sees more wakes the next).
                        for _ in 0..ready.min(WAKE_AT_ONCE) {
                            shared.ready.notify_one();
                        }
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

#[cfg(test)]
mod tests {
    use super::ready_items;

    #[test]
    fn payloads_name_the_queue_and_the_count() {
        assert_eq!(ready_items("7", "7"), Some(1));
        assert_eq!(ready_items("7:40", "7"), Some(40));
        assert_eq!(ready_items("17", "7"), None);
        assert_eq!(ready_items("17:3", "7"), None);
        assert_eq!(ready_items("7:junk", "7"), Some(1));
    }
}
