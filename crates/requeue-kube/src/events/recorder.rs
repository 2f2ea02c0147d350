//! [`recorder`]: requeue's broadcaster, correlator and retry rules
//! writing core/v1 Events to the API server, in one call.

use std::sync::Arc;

use kube::Client;
use requeue::events::{Broadcaster, BroadcasterOptions, EventSource, Recorder};

use super::sink::{KubeEventSink, current_runtime};

/// What [`recorder_with`] sets up.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// The reporting component (`source.component`,
    /// `reportingComponent`), e.g. your controller's name.
    pub component: String,
    /// The host or instance (`source.host`, `reportingInstance`); may be
    /// empty.
    pub host: String,
    /// Queue size, retry pause, correlator options and clock. The queue
    /// ([`BroadcasterOptions::queue_capacity`], 1000 by default) bounds
    /// the events waiting for the API server; a full queue drops new ones
    /// (counted in [`EventsHandle::dropped`] and logged).
    pub broadcaster: BroadcasterOptions,
}

impl RecorderOptions {
    /// client-go's defaults for `component` (no host).
    pub fn new(component: impl Into<String>) -> Self {
        RecorderOptions {
            component: component.into(),
            host: String::new(),
            broadcaster: BroadcasterOptions::default(),
        }
    }
}

/// Owns the thread that writes a [`recorder`]'s events. Dropping it leaves
/// that thread running for as long as a [`Recorder`] clone lives;
/// [`shutdown`](Self::shutdown) ends it.
#[derive(Debug)]
pub struct EventsHandle {
    broadcaster: Broadcaster,
}

impl EventsHandle {
    /// The broadcaster behind the recorder, e.g. to also
    /// [`start_logging`](Broadcaster::start_logging) every event.
    pub fn broadcaster(&self) -> &Broadcaster {
        &self.broadcaster
    }

    /// Events dropped because the queue was full (or after shutdown).
    pub fn dropped(&self) -> u64 {
        self.broadcaster.dropped()
    }

    /// Stops accepting events, writes those already queued (a retry in
    /// progress is not waited for) and waits for the writer thread. Runs
    /// the blocking part on tokio's blocking pool.
    pub async fn shutdown(self) {
        let broadcaster = self.broadcaster;
        if let Err(error) = tokio::task::spawn_blocking(move || broadcaster.shutdown()).await {
            tracing::error!(%error, "could not shut the event broadcaster down");
        }
    }
}

/// A [`Recorder`] whose events go to the API server as core/v1 Events,
/// reported by `component`, with client-go's defaults: a correlator that
/// counts repeats (patching the stored event), folds similar events into
/// one aggregate and filters spam, and `recordToSink`'s retries (12 tries,
/// 10 s apart). Call it on a tokio runtime: requests run there.
///
/// Recording never blocks and never fails: the event joins a bounded
/// queue (see [`RecorderOptions::broadcaster`]) read by a thread of its
/// own; write failures are logged through `tracing`.
///
/// ```
/// # use http::{Request, Response};
/// # use kube::client::Body;
/// use k8s_openapi::api::core::v1::Pod;
/// use kube::api::ObjectMeta;
/// use requeue::events::EventType;
/// use requeue_kube::events::InvolvedExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
/// # let server = tokio::spawn(async move {
/// #     let (request, answer) = server.next_request().await.unwrap();
/// #     assert_eq!(request.uri().path(), "/api/v1/namespaces/shop/events");
/// #     let body = request.into_body().collect_bytes().await.unwrap();
/// #     answer.send_response(Response::builder().status(201).body(Body::from(body.to_vec())).unwrap());
/// # });
/// # let client = kube::Client::new(service, "default");
/// // let client = kube::Client::try_default().await?;
/// let (recorder, events) = requeue_kube::events::recorder(client, "shop-controller")?;
///
/// let pod = Pod { metadata: ObjectMeta { name: Some("web-0".into()),
///     namespace: Some("shop".into()), ..ObjectMeta::default() }, ..Pod::default() };
/// recorder.event(&pod.involved(), EventType::Warning, "BackOff", "restarting");
/// # server.await?;
///
/// events.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub fn recorder(
    client: Client,
    component: impl Into<String>,
) -> Result<(Recorder, EventsHandle), super::Error> {
    recorder_with(client, RecorderOptions::new(component))
}

/// [`recorder`] with options (host, queue size, retry pause, correlator).
pub fn recorder_with(
    client: Client,
    options: RecorderOptions,
) -> Result<(Recorder, EventsHandle), super::Error> {
    let sink = KubeEventSink::with_runtime(client, current_runtime()?);
    let broadcaster = Broadcaster::new(options.broadcaster);
    broadcaster.start_recording_to_sink(Arc::new(sink))?;
    let recorder = broadcaster.recorder(EventSource::new(options.component, options.host));
    Ok((recorder, EventsHandle { broadcaster }))
}
