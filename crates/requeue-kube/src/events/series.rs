//! [`series_recorder`]: requeue's [`SeriesRecorder`] (client-go's
//! `tools/events`) writing events.k8s.io/v1 Events to the API server.
//!
//! requeue's `SeriesRecorder` writes on the caller's thread. A controller
//! records from async tasks, which must not block on the API server, so
//! here recording only enqueues (a bounded queue) and a thread of its own
//! runs the recorder; the series jobs (refresh every 30 minutes, finish
//! every 6) run on requeue's threads as in the core crate.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use kube::Client;
use requeue::clock::{self, SharedClock};
use requeue::events::{EventType, Involved, ObjectReference, SeriesRecorder};
use requeue::wait::{Group, Stop};

use super::sink::KubeSeriesSink;
use super::sink::current_runtime;

/// Events a [`SeriesEventRecorder`] may have waiting by default (as the
/// broadcaster's queue, client-go's `maxQueuedEvents`).
pub const DEFAULT_SERIES_QUEUE_CAPACITY: usize = requeue::events::DEFAULT_QUEUE_CAPACITY;

/// What [`series_recorder_with`] sets up.
#[derive(Clone)]
pub struct SeriesOptions {
    /// The reporting controller, e.g. `"example.com/shop-controller"`.
    pub reporting_controller: String,
    /// The reporting instance (client-go uses `<controller>-<hostname>`).
    pub reporting_instance: String,
    /// Events that may wait to be written; new ones beyond it are
    /// dropped (counted in [`SeriesHandle::dropped`] and logged).
    pub queue_capacity: usize,
    /// Time for event timestamps and the series jobs.
    pub clock: SharedClock,
    /// Whether to run the periodic refresh and finish jobs (client-go
    /// always does; tests drive them with [`SeriesHandle::refresh`] and
    /// [`SeriesHandle::finish`] instead).
    pub periodic_jobs: bool,
}

impl fmt::Debug for SeriesOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesOptions")
            .field("reporting_controller", &self.reporting_controller)
            .field("reporting_instance", &self.reporting_instance)
            .field("queue_capacity", &self.queue_capacity)
            .field("periodic_jobs", &self.periodic_jobs)
            .finish_non_exhaustive()
    }
}

impl SeriesOptions {
    /// client-go's defaults for this controller and instance.
    pub fn new(
        reporting_controller: impl Into<String>,
        reporting_instance: impl Into<String>,
    ) -> Self {
        SeriesOptions {
            reporting_controller: reporting_controller.into(),
            reporting_instance: reporting_instance.into(),
            queue_capacity: DEFAULT_SERIES_QUEUE_CAPACITY,
            clock: clock::real(),
            periodic_jobs: true,
        }
    }
}

/// What the recording thread is asked to do.
enum Command {
    /// Boxed: an event is large, the other commands are not.
    Record(Box<Record>),
    Refresh,
    Finish,
    Stop,
}

/// One occurrence to record, as the caller gave it.
struct Record {
    regarding: ObjectReference,
    related: Option<ObjectReference>,
    event_type: EventType,
    reason: String,
    action: String,
    note: String,
}

/// Records events.k8s.io/v1 events (client-go's `tools/events`
/// `EventRecorder`); cheap to clone, never blocks.
#[derive(Clone)]
pub struct SeriesEventRecorder {
    commands: SyncSender<Command>,
    dropped: Arc<AtomicU64>,
}

impl fmt::Debug for SeriesEventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesEventRecorder")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SeriesEventRecorder {
    /// Records an event about `regarding` (client-go's `Eventf`): `action`
    /// is what was done, `note` the human-readable text. The first
    /// occurrence is created; isomorphic repeats are counted in its
    /// `series` (see [`SeriesRecorder`]).
    pub fn eventf(
        &self,
        regarding: &dyn Involved,
        related: Option<&dyn Involved>,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: fmt::Arguments<'_>,
    ) {
        self.send(Command::Record(Box::new(Record {
            regarding: regarding.object_reference(),
            related: related.map(Involved::object_reference),
            event_type,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.to_string(),
        })));
    }

    /// [`eventf`](Self::eventf) with a plain note and no related object.
    pub fn event(
        &self,
        regarding: &dyn Involved,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        self.eventf(
            regarding,
            None,
            event_type,
            reason,
            action,
            format_args!("{note}"),
        );
    }

    fn send(&self, command: Command) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped,
                        "too many queued series events (or shut down); dropping"
                    );
                }
            }
        }
    }
}

/// Owns the threads of a [`series_recorder`]; [`shutdown`](Self::shutdown)
/// ends them. Dropping it stops the periodic jobs and lets the recording
/// thread end once the queued events are written.
pub struct SeriesHandle {
    recorder: SeriesRecorder,
    commands: SyncSender<Command>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    jobs: Option<Group>,
    stop: Stop,
}

impl fmt::Debug for SeriesHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesHandle")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl SeriesHandle {
    /// The requeue recorder behind it, to inspect its cache
    /// ([`SeriesRecorder::cached_events`]). Its writing methods block: do
    /// not call them from an async task; use [`refresh`](Self::refresh)
    /// and [`finish`](Self::finish).
    pub fn recorder(&self) -> &SeriesRecorder {
        &self.recorder
    }

    /// Events dropped because the queue was full (or after shutdown).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a [`SeriesRecorder::refresh_existing_series`] after the
    /// events already queued.
    pub fn refresh(&self) {
        self.command(Command::Refresh);
    }

    /// Queues a [`SeriesRecorder::finish_series`] after the events already
    /// queued.
    pub fn finish(&self) {
        self.command(Command::Finish);
    }

    fn command(&self, command: Command) {
        if self.commands.try_send(command).is_err() {
            tracing::warn!("the series event queue is full (or shut down); skipping a series job");
        }
    }

    /// Writes the events already queued, stops the periodic jobs and waits
    /// for every thread (on tokio's blocking pool). Events recorded later
    /// are dropped.
    pub async fn shutdown(mut self) {
        let commands = self.commands.clone();
        let thread = self.thread.take();
        let jobs = self.jobs.take();
        let stop = self.stop.clone();
        let done = tokio::task::spawn_blocking(move || {
            // Waits for room: every queued event is written first.
            let _ = commands.send(Command::Stop);
            if thread.is_some_and(|thread| thread.join().is_err()) {
                tracing::error!("the series event thread panicked");
            }
            stop.stop();
            if let Some(jobs) = jobs {
                jobs.wait();
            }
        })
        .await;
        if let Err(error) = done {
            tracing::error!(%error, "could not shut the series recorder down");
        }
    }
}

impl Drop for SeriesHandle {
    fn drop(&mut self) {
        self.stop.stop();
        if self.thread.is_some() {
            // The thread ends after what is queued; nobody waits for it.
            let _ = self.commands.try_send(Command::Stop);
        }
    }
}

/// A recorder of events.k8s.io/v1 events with series, as client-go's
/// `tools/events` broadcaster: the first occurrence of an event is created,
/// the second patches `series: {count: 2, lastObservedTime}` onto it
/// (a JSON merge patch; a `404` falls back to a create), later ones are
/// counted and written by the periodic refresh and finish jobs. Call it on
/// a tokio runtime: requests run there.
///
/// ```
/// # use http::{Request, Response};
/// # use kube::client::Body;
/// use requeue::events::{EventType, ObjectReference};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
/// # let server = tokio::spawn(async move {
/// #     for path in ["/apis/events.k8s.io/v1/namespaces/shop/events", "/apis/events.k8s.io/v1/namespaces/shop/events/"] {
/// #         let (request, answer) = server.next_request().await.unwrap();
/// #         assert!(request.uri().path().starts_with(path));
/// #         let body = request.into_body().collect_bytes().await.unwrap();
/// #         let mut event: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// #         if event.get("regarding").is_none() { // a patch: answer with a stored event
/// #             event = serde_json::json!({"metadata": {"name": "web-0.1", "namespace": "shop"},
/// #                 "type": "Warning", "series": event["series"], "eventTime": "2026-01-01T00:00:00.000000Z"});
/// #         }
/// #         answer.send_response(Response::builder().body(Body::from(serde_json::to_vec(&event).unwrap())).unwrap());
/// #     }
/// # });
/// # let client = kube::Client::new(service, "default");
/// // let client = kube::Client::try_default().await?;
/// let (recorder, series) =
///     requeue_kube::events::series_recorder(client, "example.com/shop-controller", "shop-controller-0")?;
/// let pod = ObjectReference::new("Pod", "shop", "web-0");
/// recorder.event(&pod, EventType::Warning, "BackOff", "Restarting", "back-off"); // created
/// recorder.event(&pod, EventType::Warning, "BackOff", "Restarting", "back-off"); // series patched
/// # server.await?;
/// series.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub fn series_recorder(
    client: Client,
    reporting_controller: impl Into<String>,
    reporting_instance: impl Into<String>,
) -> Result<(SeriesEventRecorder, SeriesHandle), super::Error> {
    series_recorder_with(
        client,
        SeriesOptions::new(reporting_controller, reporting_instance),
    )
}

/// [`series_recorder`] with options (queue size, clock, periodic jobs).
pub fn series_recorder_with(
    client: Client,
    options: SeriesOptions,
) -> Result<(SeriesEventRecorder, SeriesHandle), super::Error> {
    let sink = KubeSeriesSink::with_runtime(client, current_runtime()?);
    let recorder = SeriesRecorder::new(
        Arc::new(sink),
        options.reporting_controller,
        options.reporting_instance,
        options.clock,
    );
    let (commands, queue) = sync_channel(options.queue_capacity.max(1));
    let thread = {
        let recorder = recorder.clone();
        std::thread::Builder::new()
            .name("requeue-kube-series".into())
            .spawn(move || run(&recorder, &queue))?
    };
    let stop = Stop::new();
    let jobs = if options.periodic_jobs {
        Some(recorder.spawn_jobs(&stop)?)
    } else {
        None
    };
    let dropped = Arc::new(AtomicU64::new(0));
    let handle = SeriesHandle {
        recorder,
        commands: commands.clone(),
        dropped: Arc::clone(&dropped),
        thread: Some(thread),
        jobs,
        stop,
    };
    Ok((SeriesEventRecorder { commands, dropped }, handle))
}

/// The recording thread: applies each command in order until told to stop
/// (or every sender is gone).
fn run(recorder: &SeriesRecorder, queue: &Receiver<Command>) {
    for command in queue.iter() {
        match command {
            Command::Record(record) => recorder.eventf(
                &record.regarding,
                record.related.as_ref().map(|r| r as &dyn Involved),
                record.event_type,
                &record.reason,
                &record.action,
                format_args!("{}", record.note),
            ),
            Command::Refresh => recorder.refresh_existing_series(),
            Command::Finish => recorder.finish_series(),
            Command::Stop => break,
        }
    }
}
