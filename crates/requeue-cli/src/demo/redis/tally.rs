//! What a worker process reports (see [`wire`](super::wire)): its
//! controller's counts, the keys it reconciled for the first time, and the
//! Warning events its controller recorded, which a watcher on its own
//! broadcaster collects for the next line.

use super::super::fleet::Fleet;
use super::super::panics::PanicLog;
use super::super::reconcile::AsyncReconciler;
use super::wire::Line;
use requeue::controller::Controller;
use requeue::events::{Broadcaster, EventSource, Recorder};
use requeue_redis::RedisQueue;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

/// An event as it travels: (fleet position, reason, message).
type Forwarded = (usize, String, String);

/// The worker's events, collected instead of stored: the parent stores them.
pub struct Forwarder {
    broadcaster: Broadcaster,
    pending: Arc<Mutex<Vec<Forwarded>>>,
}

impl Forwarder {
    /// Starts the collecting watcher.
    pub fn start(fleet: Arc<Fleet>) -> anyhow::Result<Self> {
        let broadcaster = Broadcaster::default();
        let pending: Arc<Mutex<Vec<Forwarded>>> = Arc::default();
        let sink = pending.clone();
        broadcaster.start_event_watcher(move |event| {
            let object = &event.involved_object;
            let key = format!("{}/{}", object.namespace, object.name);
            if let Some(i) = fleet.position(&key) {
                sink.lock().unwrap_or_else(PoisonError::into_inner).push((
                    i,
                    event.reason.clone(),
                    event.message.clone(),
                ));
            }
        })?;
        Ok(Forwarder {
            broadcaster,
            pending,
        })
    }

    /// The recorder the controller reports errors with.
    pub fn recorder(&self) -> Recorder {
        self.broadcaster
            .recorder(EventSource::new(super::super::events::COMPONENT, ""))
    }

    /// Delivers what is queued to the watcher, then stops it.
    pub fn shutdown(&self) {
        self.broadcaster.shutdown();
    }

    fn take(&self) -> Vec<Forwarded> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Writes the lines, remembering which keys it has reported.
pub struct Reporter {
    reported: Vec<bool>,
}

/// Where a line's numbers come from.
pub struct Parts<'a> {
    pub controller: &'a Controller<String, RedisQueue<String>>,
    pub reconciler: &'a AsyncReconciler<RedisQueue<String>>,
    pub panics: &'a PanicLog,
    pub events: &'a Forwarder,
}

impl Reporter {
    /// A reporter for a fleet of `objects` keys.
    pub fn new(objects: usize) -> Self {
        Reporter {
            reported: vec![false; objects],
        }
    }

    /// Prints one line on stdout. A failed write is ignored: the parent
    /// is gone, and the closed stdin stops this process anyway.
    pub fn emit(&mut self, parts: &Parts<'_>, done: bool) {
        let fleet = &parts.reconciler.fleet;
        let mut reconciled = Vec::new();
        for (i, seen) in self.reported.iter_mut().enumerate() {
            if !*seen && fleet.was_reconciled(i) {
                *seen = true;
                reconciled.push(i);
            }
        }
        let line = Line {
            counts: parts.controller.counts().into(),
            attempted: fleet.total_attempts(),
            requeued_after: parts.reconciler.requeued_after.load(Ordering::Relaxed),
            last_panic: parts.panics.last(),
            reconciled,
            events: parts.events.take(),
            done,
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.encode());
        let _ = out.flush();
    }
}
