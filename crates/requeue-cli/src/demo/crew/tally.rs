//! What a worker process reports (see [`wire`](super::wire)): its
//! controller's counts, the keys it reconciled for the first time, and the
//! Warning events its controller recorded, which a watcher on its own
//! broadcaster collects for the next line, and the errors of its queue
//! calls worth telling (see [`Watched`](super::watched::Watched)).

use super::super::fleet::Fleet;
use super::super::panics::PanicLog;
use super::super::reconcile::AsyncReconciler;
use super::watched::Listener;
use super::wire::{ERRORS_PER_LINE, Line, WireError};
use requeue::controller::Controller;
use requeue::engine::{AsyncQueue, QueueError};
use requeue::events::{Broadcaster, EventSource, Recorder};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

/// An event as it travels: (fleet position, reason, message).
type Forwarded = (usize, String, String);

/// Distinct errors remembered so that each is sent once; past this the
/// oldest is forgotten (and might be sent again).
const ERRORS_TOLD: usize = 32;

/// The worker's events, collected instead of stored: the parent stores them.
pub struct Forwarder {
    broadcaster: Broadcaster,
    /// Taken at every line (every 200 ms), so it holds what the
    /// controller records in that time: bounded by the reconcile rate.
    pending: Arc<Mutex<Vec<Forwarded>>>,
    errors: Arc<Mutex<Errors>>,
}

/// Errors waiting for the next lines, and the ones already sent.
#[derive(Default)]
struct Errors {
    /// At most [`ERRORS_TOLD`]: only distinct errors get in.
    waiting: VecDeque<WireError>,
    told: VecDeque<String>,
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
            errors: Arc::default(),
        })
    }

    /// Hears the queue's errors: corruption and undecodable keys go on
    /// the next lines, each distinct one once; the rest (connection
    /// errors, a lost lease) the parent sees for itself or expects.
    pub fn listener(&self) -> Listener {
        let errors = self.errors.clone();
        Arc::new(move |error: &QueueError| {
            let corrupt = match error {
                QueueError::Corrupt { .. } => true,
                QueueError::Decode { .. } => false,
                _ => return,
            };
            let text = error.to_string();
            let mut errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
            if errors.told.contains(&text) {
                return;
            }
            if errors.told.len() == ERRORS_TOLD {
                errors.told.pop_front();
            }
            errors.told.push_back(text.clone());
            if errors.waiting.len() < ERRORS_TOLD {
                errors.waiting.push_back(WireError { corrupt, text });
            }
        })
    }

    fn take_errors(&self) -> Vec<WireError> {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let n = errors.waiting.len().min(ERRORS_PER_LINE);
        errors.waiting.drain(..n).collect()
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

/// Writes the lines, remembering which keys it has reported (one flag
/// per object of the fleet: its size is fixed).
pub struct Reporter {
    reported: Vec<bool>,
}

/// Where a line's numbers come from.
pub struct Parts<'a, Q: AsyncQueue<String>> {
    pub controller: &'a Controller<String, Q>,
    pub reconciler: &'a AsyncReconciler<Q>,
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
    pub fn emit<Q: AsyncQueue<String>>(&mut self, parts: &Parts<'_, Q>, done: bool) {
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
            errors: parts.events.take_errors(),
            done,
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.encode());
        let _ = out.flush();
    }
}
