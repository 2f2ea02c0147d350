//! [`KubeEventSink`]: requeue's [`EventSink`] writing core/v1 Events to the
//! API server, as client-go's `EventSinkImpl`.

use k8s_openapi::api::core::v1 as core;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use requeue::events::{Event, EventSink, SinkError};
use tokio::runtime::Handle;

use super::bridge::{Bridge, sink_error};
use super::convert::{from_core_event, to_core_event};

/// Writes core/v1 Events through a [`kube::Client`]: creates (`POST`),
/// updates (`PUT`) and strategic-merge patches (`PATCH`, as client-go's
/// `PatchWithEventNamespace`) in the event's namespace.
///
/// The async methods ([`create_event`](Self::create_event), …) make one
/// request each. The [`EventSink`] methods do the same for requeue's
/// blocking callers (the broadcaster's sink thread applies client-go's
/// retry rules around them); see [`recorder`](super::recorder) for the
/// usual way to use it. They block the calling thread until the request is
/// answered, so they must not be called from an async task (which would
/// stall, or on a current-thread runtime deadlock, the runtime the request
/// runs on).
///
/// Errors map onto requeue's retry classes as client-go sorts them: an
/// error status is final (a `404` on a patch falls back to a create in
/// requeue's rules; a `409` on a create is final, as client-go's), an
/// unreadable answer or a transport error is retried.
///
/// ```
/// # use http::{Request, Response};
/// # use kube::client::Body;
/// use requeue::events::{Event, EventSource, EventType, ObjectReference};
/// use requeue_kube::events::KubeEventSink;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
/// # tokio::spawn(async move {
/// #     while let Some((request, answer)) = server.next_request().await {
/// #         let body = request.into_body().collect_bytes().await.unwrap();
/// #         answer.send_response(Response::builder().status(201).body(Body::from(body.to_vec())).unwrap());
/// #     }
/// # });
/// # let client = kube::Client::new(service, "default");
/// // let client = kube::Client::try_default().await?;
/// let sink = KubeEventSink::new(client)?;
/// let pod = ObjectReference::new("Pod", "shop", "web-0");
/// let event = Event::new(pod, EventType::Normal, "Started", "started",
///     EventSource::new("shop-controller", ""), std::time::SystemTime::now());
/// let stored = sink.create_event(&event).await?;
/// assert_eq!(stored.metadata.name, event.metadata.name);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KubeEventSink {
    client: Client,
    bridge: Bridge,
}

impl std::fmt::Debug for KubeEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEventSink").finish_non_exhaustive()
    }
}

/// The tokio runtime the caller is on, or [`Error::NoRuntime`](super::Error::NoRuntime).
pub(crate) fn current_runtime() -> Result<Handle, super::Error> {
    Handle::try_current().map_err(|_| super::Error::NoRuntime)
}

impl KubeEventSink {
    /// A sink on `client` whose blocking methods run their requests on the
    /// current tokio runtime; fails outside one.
    pub fn new(client: Client) -> Result<Self, super::Error> {
        Ok(Self::with_runtime(client, current_runtime()?))
    }

    /// A sink whose blocking methods run their requests on `runtime`.
    pub fn with_runtime(client: Client, runtime: Handle) -> Self {
        KubeEventSink {
            client,
            bridge: Bridge::new(runtime),
        }
    }

    /// Creates `event` (`POST …/namespaces/{ns}/events`).
    pub async fn create_event(&self, event: &Event) -> Result<Event, SinkError> {
        create(self.client.clone(), event.clone()).await
    }

    /// Replaces the stored `event` (`PUT …/events/{name}`).
    pub async fn update_event(&self, event: &Event) -> Result<Event, SinkError> {
        update(self.client.clone(), event.clone()).await
    }

    /// Applies the strategic-merge `patch` to the stored `event`
    /// (`PATCH …/events/{name}`).
    pub async fn patch_event(
        &self,
        event: &Event,
        patch: &serde_json::Value,
    ) -> Result<Event, SinkError> {
        self::patch(self.client.clone(), event.clone(), patch.clone()).await
    }
}

/// The events API of the event's namespace (the client's default for an
/// event without one).
fn api(client: Client, event: &Event) -> Api<core::Event> {
    if event.metadata.namespace.is_empty() {
        Api::default_namespaced(client)
    } else {
        Api::namespaced(client, &event.metadata.namespace)
    }
}

/// The server's answer as a requeue event; an answer that does not read
/// as one is retried, as client-go's `UnexpectedObjectError`.
fn stored(answer: Result<core::Event, kube::Error>) -> Result<Event, SinkError> {
    let stored = answer.map_err(sink_error)?;
    from_core_event(stored).map_err(|error| SinkError::UnexpectedObject(error.to_string()))
}

async fn create(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, reason = %event.reason, "creating event");
    let api = api(client, &event);
    stored(
        api.create(&PostParams::default(), &to_core_event(&event))
            .await,
    )
}

async fn update(client: Client, event: Event) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, reason = %event.reason, "updating event");
    let api = api(client, &event);
    let name = &event.metadata.name;
    stored(
        api.replace(name, &PostParams::default(), &to_core_event(&event))
            .await,
    )
}

async fn patch(client: Client, event: Event, patch: serde_json::Value) -> Result<Event, SinkError> {
    tracing::debug!(name = %event.metadata.name, count = event.count, "patching event");
    let api = api(client, &event);
    let name = &event.metadata.name;
    stored(
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await,
    )
}

impl EventSink for KubeEventSink {
    fn create(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge.run(create(self.client.clone(), event.clone()))
    }

    fn update(&self, event: &Event) -> Result<Event, SinkError> {
        self.bridge.run(update(self.client.clone(), event.clone()))
    }

    fn patch(&self, event: &Event, patch: &serde_json::Value) -> Result<Event, SinkError> {
        self.bridge.run(self::patch(
            self.client.clone(),
            event.clone(),
            patch.clone(),
        ))
    }
}
