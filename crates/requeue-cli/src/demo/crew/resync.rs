//! The periodic resync, run by the parent on Redis: every key re-added now
//! and then every period, as an informer's resync would. (In memory the
//! controller runs it; on Redis the controllers are in the worker
//! processes, and N of them would list every key N times.)

use super::super::fleet::Fleet;
use super::super::updates::add_all;
use requeue::controller::RESYNC_PRIORITY;
use requeue::engine::AsyncQueue;
use requeue::queue::AddOpts;
use requeue::wait::Stop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Re-adds every key of `fleet` at once and then every `period` until
/// `stop` fires; counts the rounds in `rounds`.
pub async fn run<Q: AsyncQueue<String>>(
    queue: &Q,
    fleet: &Fleet,
    period: Duration,
    rounds: &AtomicU64,
    stop: &Stop,
) {
    // The engines that know priorities serve resync adds after real changes.
    let opts = AddOpts::new().priority(RESYNC_PRIORITY);
    loop {
        rounds.fetch_add(1, Ordering::Relaxed);
        if !add_all(queue, fleet.keys().iter().cloned(), opts, stop, drop).await {
            return;
        }
        tokio::select! {
            biased;
            _ = stop.stopped() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}
